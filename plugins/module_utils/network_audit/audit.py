"""One node's network audit, in order: options (options.py), discovery and naming
(discovery.py), reading every namespace in threads (reading.py), judging each pod
(pod_judgement.py) and the node (node_judgement.py), and the opt-in probe (probe.py).

``run_audit(options)`` returns ``(report, dumps)``: the report follows
docs/network-audit-schema.md (``schema_version`` 1); ``dumps`` maps a file name to the raw
``iptables-save -c`` text, which the controller saves next to the report. Read-only: it reads
/proc and runs ``iptables-*-save`` (and, only with ``probe``, opens one TCP connection per pod).
"""

import os
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import DumpError, Reader, in_netns
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import (
    discovery,
    node_judgement,
    pod_judgement,
    probe,
    procfs,
    reading,
)
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import runtime as runtimemod
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.findings import finding, worst_severity
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.options import (
    DEFAULTS,
    NodeAuditError,
    validate_options,
)

__all__ = ["DEFAULTS", "SCHEMA_VERSION", "NodeAuditError", "run_audit", "validate_options"]

SCHEMA_VERSION = 1
RUNTIME_TIMEOUT = 10  # seconds for each crictl/docker call: naming pods is a nicety, not the audit


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _node_addresses(node_netns):
    return in_netns(node_netns, procfs.node_ipv4_addresses)


def run_audit(options, after_discovery=None, runner=None, which=None):
    """Audit the node; ``after_discovery`` (tests only) is called between discovery and reading.

    ``runner`` and ``which`` run every command (see :mod:`...iptables.reader`); the module
    passes ``AnsibleModule.run_command`` and ``get_bin_path``."""
    opts = validate_options(options)
    reader = Reader(runner, which, timeout=opts["dump_timeout"])
    timings = {}
    t0 = time.monotonic()
    node_netns = opts["node_netns"]
    try:
        node_inode = discovery.netns_key(node_netns or "/proc/self/ns/net")
    except OSError as exc:
        raise NodeAuditError(
            f"cannot read the node network namespace {node_netns or '/proc/self/ns/net'}: {exc.strerror}"
        ) from exc
    report = {
        "schema_version": SCHEMA_VERSION,
        "node": {"hostname": socket.gethostname(), "netns_inode": node_inode, "audited_at": _now()},
        "options": {k: opts[k] for k in ("proxy_uids", "proxy_names", "backends", "families", "probe")},
        "runtime": {},
        "host": {},
        "host_proxies": [],
        "pods": [],
        "findings": [],
        "errors": [],
    }
    raw = {}
    sidecars, host_proxies, unreadable, uid_only = discovery.discover(opts, node_inode)
    report["host_proxies"] = host_proxies
    for entry in uid_only:
        procs = ", ".join(f"{p['comm']} pid {p['pid']} uid {p['uid']}" for p in entry["processes"])
        report["findings"].append(
            finding(
                "PROXY_UID_WITHOUT_PROXY",
                "info",
                f"network namespace inode {entry['inode']}: {procs} run as a proxy uid but no envoy or pilot-agent "
                "runs there (istiod's pilot-discovery does so by design): not audited as a sidecar",
            )
        )
    for pid, reason in sorted(unreadable.items()):
        report["errors"].append({"pid": pid, "error": reason})
    if unreadable and os.geteuid() != 0:
        report["findings"].append(
            finding(
                "AUDIT_NOT_ROOT",
                "error",
                f"the audit runs as uid {os.geteuid()}, not root: the network namespaces of {len(unreadable)} "
                "process(es) could not be read, so sidecars among them were neither found nor audited; run the "
                "audit as root (become: true)",
            )
        )
    # Even root may be refused (pid 1 of a sandbox, a process in another user namespace): those
    # stay in report["errors"] and summary.processes_not_read, without a finding.
    runtime_pool = ThreadPoolExecutor(max_workers=1)
    runtime_future = (
        runtime_pool.submit(runtimemod.container_index, Reader(runner, which, timeout=RUNTIME_TIMEOUT))
        if opts["runtime_lookup"]
        else None
    )
    if after_discovery is not None:
        after_discovery()
    pods = [discovery.describe_pod(entry, opts) for entry in sidecars]
    try:
        node_addresses = _node_addresses(node_netns)
    except (OSError, procfs.ProcessGone, DumpError) as exc:
        node_addresses = []
        report["errors"].append({"node": True, "error": f"node addresses not readable: {exc}"})
    report["node"]["addresses"] = node_addresses
    timings["discovery"] = time.monotonic() - t0

    t1 = time.monotonic()
    results = reading.read_all(node_netns, pods, opts, reader)
    for pod in pods:
        if pod["id"] in results:
            reading.attach_sockets(pod, results[pod["id"]].pop("__sockets__", None))
    host_dumps = results.pop("host")
    kube_proxy_dumps = host_dumps.pop("__extra__", {})
    if opts["known_pods"]:
        discovery.api_names(pods, opts["known_pods"])
    if runtime_future is not None:
        runtime_index, notes = runtime_future.result()
        report["runtime"]["notes"] = notes
        if runtime_index:
            for index, entry in enumerate(sidecars):
                discovery.runtime_name(entry, pods[index], runtime_index)
    runtime_pool.shutdown()
    if host_dumps and all(d.get("reason") == "not-installed" for d in host_dumps.values()):
        report["findings"].append(
            finding(
                "NODE_NO_IPTABLES",
                "error",
                "no iptables-*-save command works on this node: " + "; ".join(d["error"] for d in host_dumps.values()),
            )
        )
    else:
        for key, d in host_dumps.items():
            if d["status"] == "error":
                report["findings"].append(
                    finding("NODE_DUMP_FAILED", "error", f"the node's {key} rules could not be read: {d['error']}")
                )
    timings["dumps"] = time.monotonic() - t1

    t2 = time.monotonic()
    parsed_by_pod = {}
    for pod in pods:
        if pod["status"] != "ok":
            pod["findings"].append(
                finding(
                    "POD_GONE" if pod["status"] == "gone" else "NAMESPACE_UNREADABLE",
                    "warning" if pod["status"] == "gone" else "error",
                    "; ".join(pod["errors"]) or pod["status"],
                )
            )
            continue
        dumps = results.get(pod["id"], {})
        for d in dumps.values():
            if d["status"] == "error" and d.get("reason") == "no-namespace":
                pod["status"] = "gone"
        if pod["status"] == "gone":
            pod["errors"].append("the pod's network namespace disappeared during the audit")
            pod["findings"].append(
                finding("POD_GONE", "warning", "the pod exited during the audit; its rules could not be read")
            )
            continue
        parsed = reading.parse_dumps(dumps, pod["display"])
        parsed_by_pod[pod["id"]] = parsed
        pod["dumps"] = {}
        unread = []
        for key, d in dumps.items():
            if "text" in d:
                fname = f"{pod['id']}.{key}.rules"
                raw[fname] = d.pop("text")
                d["file"] = fname
            if d["status"] == "error":
                unread.append(key)
                pod["errors"].append(d["error"])
                pod["findings"].append(finding("DUMP_FAILED", "error", f"{key} rules not readable: {d['error']}"))
            pod["dumps"][key] = d
        try:
            pod_judgement.judge_pod(pod, parsed, opts, unread)
        except Exception as exc:  # one pod's bad rules must not sink the node's audit
            pod["errors"].append(f"judgement failed: {type(exc).__name__}: {exc}")
            pod["findings"].append(
                finding(
                    "ENGINE_ERROR",
                    "error",
                    f"this pod's rules could not be judged ({type(exc).__name__}: {exc}); the other pods were audited",
                )
            )
    majority = pod_judgement.majority(pods, parsed_by_pod, opts)
    backends = Counter(p.get("capture_backend") for p in pods if p.get("capture_backend"))
    if len(backends) > 1:
        report["findings"].append(
            finding(
                "NODE_PODS_MIXED_BACKENDS",
                "warning",
                "sidecar pods on this node use different iptables backends: "
                + ", ".join(f"{n} on {b}" for b, n in sorted(backends.items())),
            )
        )
    host_parsed = reading.parse_dumps(host_dumps, "node")
    report["host"]["dumps"] = {}
    for key, d in host_dumps.items():
        if "text" in d:
            raw[f"host.{key}.rules"] = d.pop("text")
            d["file"] = f"host.{key}.rules"
        report["host"]["dumps"][key] = d
    report["host"]["kube_proxy_sources"] = {}
    for key, d in kube_proxy_dumps.items():
        entry = {k: v for k, v in d.items() if k != "text"}
        if "text" in d:
            entry["file"] = f"host.{key}.{'json' if key.startswith('nft') else 'txt'}"
            raw[entry["file"]] = d["text"]
        report["host"]["kube_proxy_sources"][key] = entry
    try:
        node_judgement.judge_host(report, host_parsed, pods, node_addresses, kube_proxy_dumps)
    except Exception as exc:  # the pods' judgement stands without the node's
        report["findings"].append(
            finding(
                "ENGINE_ERROR",
                "error",
                f"the node's own rules could not be judged ({type(exc).__name__}: {exc}); the pods were audited",
            )
        )
    node_backend = report["host"].get("backends_in_use") or []
    if backends and node_backend and set(backends) - set(node_backend):
        report["findings"].append(
            finding(
                "PODS_AND_NODE_DIFFERENT_BACKENDS",
                "info",
                f"the node's own rules are on {', '.join(node_backend)}, "
                f"sidecar capture on {', '.join(sorted(backends))}",
            )
        )
    timings["judgement"] = time.monotonic() - t2

    if opts["probe"]:
        t3 = time.monotonic()
        for pod in pods:
            if pod["status"] == "ok":
                pod["probe"] = probe.probe_pod(pod, opts, node_netns, reader)
        timings["probe"] = time.monotonic() - t3

    for pod in pods:
        pod["worst_severity"] = worst_severity(pod["findings"])
    report["pods"] = pods
    all_findings = report["findings"] + [f for p in pods for f in p["findings"]]
    by_sev = Counter(f["severity"] for f in all_findings)
    report["summary"] = {
        "sidecar_pods": sum(1 for p in pods if p.get("role") == "sidecar"),
        "gateway_pods": sum(1 for p in pods if p.get("role") == "gateway"),
        "pods_not_read": sum(1 for p in pods if p["status"] != "ok"),
        "processes_not_read": len(unreadable),
        "findings": {s: by_sev.get(s, 0) for s in ("error", "warning", "info")},
        "worst_severity": worst_severity(all_findings),
        "majority": majority,
        "capture_backends": dict(backends),
    }
    timings["total"] = time.monotonic() - t0
    report["timings"] = {k: round(v, 4) for k, v in timings.items()}
    return report, raw
