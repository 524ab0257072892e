"""Ask the container runtime (when the node has one) which pod a container belongs to.

Read-only calls only: ``crictl ps``/``crictl pods`` (containerd, CRI-O) and ``docker ps``.
Each runtime that is absent or fails is skipped and noted; the audit falls back to what the
processes themselves tell (environment, Envoy bootstrap) and finally to the pod IP.
"""

import json
import shutil
import subprocess

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"


def _run(argv, timeout):
    env = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def container_index(timeout=10, which=shutil.which):
    """Map container (and sandbox) id -> {pod, namespace, container, labels, runtime}.

    Returns ``(index, notes)``; ``notes`` says which runtimes were asked and what failed.
    """
    index = {}
    notes = []
    crictl = which("crictl")
    if crictl:
        try:
            pods = _run([crictl, "pods", "-o", "json"], timeout)
            ctrs = _run([crictl, "ps", "-a", "-o", "json"], timeout)
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
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            notes.append(f"crictl could not be used: {exc}")
    docker = which("docker")
    if docker:
        try:
            out = _run([docker, "ps", "--no-trunc", "--format", "{{json .}}"], timeout)
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
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            notes.append(f"docker could not be used: {exc}")
    if not crictl and not docker:
        notes.append("no container runtime CLI (crictl, docker) on the node: pods named from their processes")
    return index, notes
