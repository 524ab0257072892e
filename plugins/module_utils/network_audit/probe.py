"""The opt-in probe: counters before, one TCP connection from the node to the pod's application
port, counters after; which rules moved, next to the tracer's prediction."""

import socket
import time

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import DumpError, in_netns, save
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import judge
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.findings import finding


def probe_pod(pod, opts, node_netns, reader):
    """Counters before, one TCP connection from the node to the app port, counters after."""
    ports = pod.get("app_ports") or []
    ip = next((a for a in pod.get("ips", []) if ":" not in a), None)
    if not ports or not ip or pod.get("role") != "sidecar":
        return {"status": "skipped", "reason": "no application port or address"}
    port = ports[0]
    backend = pod.get("capture_backend") or "nft"
    try:
        before = judge.parse(save(pod["netns_path"], backend, reader=reader)["text"], "probe-before", backend)
        error = None
        start = time.monotonic()

        def connect():
            with socket.create_connection((ip, port), timeout=opts["probe_timeout"]):
                pass

        try:
            in_netns(node_netns, connect)
        except OSError as exc:
            error = str(exc)
        elapsed = time.monotonic() - start
        after = judge.parse(save(pod["netns_path"], backend, reader=reader)["text"], "probe-after", backend)
    except (DumpError, IptablesError) as exc:
        return {"status": "error", "error": str(exc)}
    b, a = judge.counters_map(before), judge.counters_map(after)
    moved = sorted(k for k in a if a[k] > b.get(k, 0))
    moved_desc = [
        {
            "table": t,
            "chain": c,
            "rule_number": n,
            "packets": a[(t, c, n)] - b.get((t, c, n), 0),
            "rule": after.chain(t, c).rules[n - 1].text,
        }
        for t, c, n in moved
    ]
    inbound = next((p for p in pod.get("paths", []) if p["name"] == judge.INBOUND_PROBE), None)
    predicted = [
        (s["table"], s["chain"], s["rule_number"])
        for s in (inbound or {}).get("steps", [])
        if s.get("rule_number") and s["table"] == "nat"
    ]
    missing = [p for p in predicted if p not in moved]
    result = {
        "status": "ok" if error is None else "connect-failed",
        "target": f"{ip}:{port}",
        "connect_seconds": round(elapsed, 4),
        "error": error,
        "moved": moved_desc,
        "predicted": [{"table": t, "chain": c, "rule_number": n} for t, c, n in predicted],
        "agrees": not missing,
    }
    if not predicted:
        result["note"] = "no capture rule was predicted for this connection" + (
            "; none moved either: it went straight to the application" if not moved_desc else ""
        )
    if missing:
        pod["findings"].append(
            finding(
                "PROBE_DISAGREES",
                "error",
                "the probe connection did not move the counters of rules the tracer predicted: "
                + ", ".join(f"{t}/{c}#{n}" for t, c, n in missing),
            )
        )
    if error:
        pod["findings"].append(
            finding("PROBE_CONNECT_FAILED", "warning", f"probe connection to {ip}:{port} from the node failed: {error}")
        )
    return result
