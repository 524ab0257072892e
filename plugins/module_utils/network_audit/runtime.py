"""Ask the container runtime (when the node has one) which pod a container belongs to.

Read-only calls only: ``crictl ps``/``crictl pods`` (containerd, CRI-O) and ``docker ps``.
Each runtime that is absent or fails is skipped and noted; the audit falls back to what the
processes themselves tell (environment, Envoy bootstrap) and finally to the pod IP.
"""

import json
from collections import namedtuple

from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import DumpError, Reader

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"


_Answer = namedtuple("_Answer", "returncode stdout stderr")


def _run(reader, argv):
    rc, out, err = reader.run(argv)
    return _Answer(rc, out or "", err or "")


def container_index(reader=None):
    """Map container (and sandbox) id -> {pod, namespace, container, labels, runtime}.

    ``reader`` (:class:`...iptables.reader.Reader`) runs the commands, with its timeout.
    Returns ``(index, notes)``; ``notes`` says which runtimes were asked and what failed.
    """
    reader = reader or Reader(timeout=10)
    index = {}
    notes = []
    crictl = reader.which("crictl")
    if crictl:
        try:
            pods = _run(reader, [crictl, "pods", "-o", "json"])
            ctrs = _run(reader, [crictl, "ps", "-a", "-o", "json"])
            if pods.returncode != 0 or ctrs.returncode != 0:
                notes.append(f"crictl failed: {(pods.stderr or ctrs.stderr).strip()[:200]}")
            else:
                sandboxes = {}
                for item in json.loads(pods.stdout or "{}").get("items") or []:
                    meta = item.get("metadata") or {}
                    entry = {
                        "pod": meta.get("name"),
                        "namespace": meta.get("namespace"),
                        "container": None,
                        "labels": item.get("labels") or {},
                        "runtime": "cri",
                    }
                    sandboxes[item.get("id")] = entry
                    index[item.get("id")] = entry
                for item in json.loads(ctrs.stdout or "{}").get("containers") or []:
                    labels = item.get("labels") or {}
                    sandbox = sandboxes.get(item.get("podSandboxId")) or {}
                    index[item.get("id")] = {
                        "pod": labels.get(POD_NAME) or sandbox.get("pod"),
                        "namespace": labels.get(POD_NAMESPACE) or sandbox.get("namespace"),
                        "container": labels.get(CONTAINER_NAME) or (item.get("metadata") or {}).get("name"),
                        "labels": sandbox.get("labels") or {},
                        "runtime": "cri",
                    }
                notes.append(f"crictl: {len(index)} containers and sandboxes")
        except (DumpError, ValueError) as exc:
            notes.append(f"crictl could not be used: {exc}")
    docker = reader.which("docker")
    if docker:
        try:
            out = _run(reader, [docker, "ps", "--no-trunc", "--format", "{{json .}}"])
            if out.returncode != 0:
                notes.append(f"docker ps failed: {out.stderr.strip()[:200]}")
            else:
                count = 0
                for line in out.stdout.splitlines():
                    item = json.loads(line)
                    labels = dict(part.split("=", 1) for part in (item.get("Labels") or "").split(",") if "=" in part)
                    if POD_NAME not in labels:
                        continue
                    count += 1
                    index.setdefault(
                        item.get("ID"),
                        {
                            "pod": labels.get(POD_NAME),
                            "namespace": labels.get(POD_NAMESPACE),
                            "container": labels.get(CONTAINER_NAME),
                            "labels": {},
                            "runtime": "docker",
                        },
                    )
                notes.append(f"docker: {count} Kubernetes containers")
        except (DumpError, ValueError) as exc:
            notes.append(f"docker could not be used: {exc}")
    if not crictl and not docker:
        notes.append("no container runtime CLI (crictl, docker) on the node: pods named from their processes")
    return index, notes
