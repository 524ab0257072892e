"""Judging one sidecar pod's capture rules (the engine's audit, adapted to what discovery found)
and comparing the pods of a node with each other."""

from collections import Counter

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import judge
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.discovery import PROXY_NAMES
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.findings import finding
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.paths import describe_trace


def listening_app_ports(pod):
    ports = [s["port"] for s in pod.get("listening", []) if s["purpose"] == "application"]
    return sorted(set(ports))


def dump_key(backend, family):
    return backend if family == "ipv4" else f"{backend}-ipv6"


def capture_ruleset(parsed, families=("ipv4", "ipv6")):
    """The ruleset that holds the capture rules: the first family read (IPv4 before IPv6), the
    first backend with ISTIO_* chains."""
    for family in families:
        for backend in ("nft", "legacy"):
            rs = parsed.get(dump_key(backend, family))
            if rs is not None and judge.has_capture_chains(rs):
                return backend, rs
    return None, None


def backends_not_read(pod, opts):
    """The backends left out by ``backends`` that may hold this pod's capture rules: iptables-nft
    always (nothing cheap tells that it is empty), iptables-legacy unless the namespace has no
    legacy table (``pod["legacy_tables"] == []``)."""
    missing = []
    for backend in ("nft", "legacy"):
        if backend in opts["backends"] or (backend == "legacy" and pod.get("legacy_tables") == []):
            continue
        missing.append(f"the iptables-{backend} rules (backends does not include {backend})")
    return missing


def judge_pod(pod, parsed, opts, unread):
    backends_with_rules = [k for k, rs in parsed.items() if not k.endswith("ipv6") and rs.rule_count() > 0]
    pod["backends_in_use"] = backends_with_rules
    capture_backend, ruleset = capture_ruleset(parsed, opts["families"])
    pod["capture_backend"] = capture_backend
    if len([k for k in backends_with_rules if k in ("nft", "legacy")]) > 1:
        pod["findings"].append(
            finding(
                "POD_MIXED_BACKENDS",
                "warning",
                f"rules exist in both iptables-nft and iptables-legacy ({', '.join(backends_with_rules)}): the kernel "
                "runs both; the capture may not be what one backend's listing shows",
            )
        )
    pod["app_ports"] = listening_app_ports(pod)
    if pod["role"] == "gateway":
        pod["capture"] = None
        pod["findings"].append(
            finding(
                "GATEWAY_NO_CAPTURE_EXPECTED",
                "info",
                "ingress/egress gateway: Envoy is the application, no capture rules are expected",
            )
        )
        return
    if ruleset is None and "ipv4" not in opts["families"]:
        unread = [*unread, "the IPv4 rules (families does not include ipv4)"]
    if ruleset is None:
        unread = [*unread, *backends_not_read(pod, opts)]
    if ruleset is None and unread:
        # No judgement from rules that were not read: the capture may be in the dump that failed.
        pod["capture"] = None
        pod["findings"].append(
            finding(
                "CAPTURE_NOT_JUDGED",
                "warning",
                f"no capture rules were found in the dumps that could be read, but {', '.join(unread)} could not "
                "be read (see DUMP_FAILED): whether this pod's traffic is captured is unknown",
            )
        )
        return
    if ruleset is None:
        pod["capture"] = {"enabled": False}
        pod["findings"].append(
            finding(
                "MESH_BYPASS_NO_CAPTURE",
                "error",
                "Envoy runs in this pod but no ISTIO_* capture rules exist on any backend: the pod is in the mesh "
                "but its traffic bypasses the sidecar",
            )
        )
        return
    app_ports = pod["app_ports"]
    v6 = ruleset.family == "ipv6"
    ip = next((a for a in pod["ips"] if (":" in a) == v6), None)
    local = [*pod["ips"], "::1", "::6"] if v6 else [*pod["ips"], "127.0.0.1", "127.0.0.6"]
    expected = dict(opts["expected"])
    if ip:
        expected.setdefault("pod_ip", ip)
    if app_ports:
        expected.setdefault("app_port", app_ports[0])
    try:
        audited = judge.sidecar_audit(ruleset, expected, local)
        # The traces are kept once, as paths: the engine's steps and verdict plus counters and listeners.
        paths = [describe_trace(t, ruleset, pod) for t in audited.get("traces") or []]
    except IptablesError as exc:
        pod["capture"] = None
        pod["findings"].append(finding("ENGINE_ERROR", "error", f"the rules could not be judged: {exc}"))
        return
    pod["capture"] = audited.get("capture")
    pod["findings"].extend(dict(f, source="engine") for f in audited.get("findings") or [])
    check_capture_ports(pod)
    pod["paths"] = paths


def check_capture_ports(pod):
    """The rules send captured traffic to ports; someone in the pod must listen there."""
    capture = pod.get("capture") or {}
    listening = {sock["port"]: sock for sock in pod.get("listening", [])}
    for direction, enabled in (("inbound", "inbound_enabled"), ("outbound", "outbound_enabled")):
        port = capture.get(f"{direction}_port")
        if not capture.get(enabled) or port is None or port in listening:
            continue
        proxy_ports = sorted(p for p, s in listening.items() if s.get("process") in PROXY_NAMES)
        pod["findings"].append(
            finding(
                "CAPTURE_PORT_NOT_LISTENING",
                "error",
                f"the {direction} capture rules redirect to port {port}, but nothing listens there in this pod "
                f"(the proxy listens on {', '.join(map(str, proxy_ports)) or 'no port'}): captured {direction} "
                "connections are refused",
            )
        )


def majority(pods, parsed_by_pod, opts):
    """Find pods whose capture rules differ from the most common ruleset on this node."""
    texts = {}
    for pod in pods:
        if pod["role"] != "sidecar" or pod["status"] != "ok":
            continue
        _backend, rs = capture_ruleset(parsed_by_pod.get(pod["id"], {}), opts["families"])
        if rs is not None:  # pods without capture rules have their own (error) finding
            texts[pod["id"]] = rs.normalized_text()
    if len(texts) < 3:
        return None
    counts = Counter(texts.values())
    ((common, n),) = counts.most_common(1)
    if n * 2 <= len(texts):
        return {"majority": None, "pods": len(texts)}
    for pod in pods:
        if pod["id"] in texts and texts[pod["id"]] != common:
            pod["findings"].append(
                finding(
                    "RULES_DIFFER_FROM_MAJORITY",
                    "warning",
                    f"this pod's capture rules differ from those of {n} of the {len(texts)} sidecar pods on the node",
                )
            )
    return {"majority_pods": n, "pods": len(texts)}
