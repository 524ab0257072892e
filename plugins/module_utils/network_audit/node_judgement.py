"""Judging the node's own rules: backends in use, kube-proxy's mode and services, and the path of
every NodePort to the pod behind it (the ingress gateway's in particular)."""

from ansible_collections.meshops.istio.plugins.module_utils.network_audit import judge, kube_proxy_modes
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.findings import finding
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.paths import describe_trace


def judge_host(report, parsed, pods, node_addresses, kube_proxy_dumps):
    host = report["host"]
    host["backends_in_use"] = [k for k, rs in parsed.items() if rs.rule_count() > 0]
    rs = parsed.get("nft") if parsed.get("nft") is not None and parsed["nft"].rule_count() else parsed.get("legacy")
    if len(host["backends_in_use"]) > 1:
        report["findings"].append(
            finding(
                "NODE_MIXED_BACKENDS",
                "warning",
                f"the node holds rules in both backends ({', '.join(host['backends_in_use'])})",
            )
        )
    gateway_ips = {ip: p for p in pods if p["role"] == "gateway" for ip in p.get("ips", [])}
    pod_by_ip = {ip: p for p in pods for ip in p.get("ips", [])}
    host["kube_proxy"] = judge.kube_proxy_services(rs) if rs is not None else None
    mode, services, mode_paths, findings = kube_proxy_modes.judge(
        kube_proxy_dumps,
        host["kube_proxy"],
        node_addresses,
        lambda trace, ruleset: describe_trace(trace, ruleset, None, pod_by_ip=pod_by_ip),
        pod_by_ip,
    )
    host["kube_proxy_mode"] = mode
    report["findings"].extend(findings)
    if mode["mode"] in ("nftables", "ipvs"):
        host["kube_proxy"] = services
        for described in mode_paths:
            mark_gateway(described, gateway_ips)
        host["node_port_paths"] = mode_paths
        return
    if rs is None:
        return
    paths = []
    node_ip = node_addresses[0] if node_addresses else None
    for np in nodeports_from_rules(rs)["node_ports"]:
        if node_ip is None:
            break
        spec = {
            "name": f"NodePort {np['node_port']} ({np['service']})",
            "hook": "prerouting",
            "protocol": "tcp",
            "src": "192.0.2.10",
            "dst": node_ip,
            "dport": np["node_port"],
            "in_interface": "eth0",
        }
        (trace,) = judge.trace_all(rs, [spec], node_addresses)
        described = describe_trace(trace, rs, None, pod_by_ip=pod_by_ip)
        described["service"] = np["service"]
        described["node_port"] = np["node_port"]
        mark_gateway(described, gateway_ips)
        paths.append(described)
    host["node_port_paths"] = paths


def mark_gateway(described, gateway_ips):
    targets = described.get("destinations", [])
    described["gateway_pods"] = sorted(
        {gateway_ips[t.split(":")[0]]["display"] for t in targets if t.split(":")[0] in gateway_ips}
    )
    described["ingress_gateway"] = bool(described["gateway_pods"]) or "ingressgateway" in str(described.get("service"))


def nodeports_from_rules(rs):
    """NodePorts from KUBE-NODEPORTS (service from kube-proxy's comment)."""
    chain = rs.chain("nat", "KUBE-NODEPORTS")
    found = []
    for rule in chain.rules if chain else []:
        comment = next((c.value for c in rule.conditions(option="comment")), None)
        dport = next((c.value for c in rule.conditions(option="dport")), None)
        if dport and str(dport).isdigit():
            found.append({"service": (comment or rule.target).strip('"'), "node_port": int(dport)})
    return {"node_ports": found, "detail": "from KUBE-NODEPORTS"}
