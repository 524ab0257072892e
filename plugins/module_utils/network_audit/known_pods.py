"""Pods from the Kubernetes API reduced to what the audit uses to name a sidecar by its IP."""


def known_pod(pod):
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or [] if entry.get("ip")]
    if status.get("podIP") and status["podIP"] not in ips:
        ips.insert(0, status["podIP"])
    return {
        "ip": ips[0] if ips else None,
        "ips": ips,
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": meta.get("labels") or {},
        "node": (pod.get("spec") or {}).get("nodeName"),
        # hostNetwork pods share the node's address: it names no sidecar namespace.
        "host_network": bool((pod.get("spec") or {}).get("hostNetwork")),
    }
