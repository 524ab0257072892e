"""Generate a node's nat table the way kube-proxy (iptables mode) writes it.

Used by the unit and differential tests and by the benchmarks. Layout facts (chain names
KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-*, KUBE-EXT-*, KUBE-SEP-*, KUBE-MARK-MASQ,
KUBE-POSTROUTING, the comments, the 0x4000 masquerade mark and the ``statistic --mode random``
probabilities 1/n, 1/(n-1), ...) follow kube-proxy's public output; the generator is our own.

API::

    text = kube_proxy_rules([
        {"namespace": "default", "name": "web", "port_name": "http", "protocol": "tcp",
         "cluster_ip": "10.96.0.20", "port": 80, "node_port": 30080,
         "endpoints": ["10.244.1.5:8080", "10.244.2.7:8080"]},
    ], cluster_cidr="10.244.0.0/16")
    services = synthetic_services(1000, endpoints_per_service=3)   # for benchmarks

Every service dict needs ``namespace``, ``name``, ``cluster_ip``, ``port`` and ``endpoints``
(``"ip:port"`` strings); ``port_name`` (default ``"http"``), ``protocol`` (``"tcp"``) and
``node_port`` are optional. :func:`rule_count` tells how many rules a service list produces.
"""

import base64
import hashlib
import ipaddress


def chain_name(prefix, *parts):
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def _svc_name(svc):
    return f"{svc['namespace']}/{svc['name']}:{svc.get('port_name', 'http')}"


def rule_count(services):
    total = 8  # portal jumps, KUBE-MARK-MASQ, KUBE-POSTROUTING and the KUBE-NODEPORTS jump
    for svc in services:
        n = len(svc["endpoints"])
        total += 1 + 1 + n + 2 * n
        if svc.get("node_port"):
            total += 1 + 2
    return total


def kube_proxy_rules(services, cluster_cidr="10.244.0.0/16", masquerade_mark="0x4000"):
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    rules = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {masquerade_mark}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {masquerade_mark}/{masquerade_mark} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {masquerade_mark}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    ]
    services_rules = []
    nodeport_rules = []
    svc_rules = []
    for svc in services:
        name = _svc_name(svc)
        proto = svc.get("protocol", "tcp").lower()
        cip = ipaddress.ip_address(svc["cluster_ip"])
        host_len = 128 if cip.version == 6 else 32
        svc_chain = chain_name("KUBE-SVC-", name, proto)
        chains.append(svc_chain)
        services_rules.append(
            f"-A KUBE-SERVICES -d {cip}/{host_len} -p {proto} -m comment --comment "
            f'"{name} cluster IP" -m {proto} --dport {svc["port"]} -j {svc_chain}'
        )
        if svc.get("node_port"):
            ext_chain = chain_name("KUBE-EXT-", name, proto)
            chains.append(ext_chain)
            nodeport_rules.append(
                f'-A KUBE-NODEPORTS -p {proto} -m comment --comment "{name}" -m {proto} '
                f"--dport {svc['node_port']} -j {ext_chain}"
            )
            svc_rules.append(
                f'-A {ext_chain} -m comment --comment "masquerade traffic for {name} external '
                f'destinations" -j KUBE-MARK-MASQ'
            )
            svc_rules.append(f"-A {ext_chain} -j {svc_chain}")
        svc_rules.append(
            f"-A {svc_chain} ! -s {cluster_cidr} -d {cip}/{host_len} -p {proto} -m comment "
            f'--comment "{name} cluster IP" -m {proto} --dport {svc["port"]} -j KUBE-MARK-MASQ'
        )
        endpoints = list(svc["endpoints"])
        count = len(endpoints)
        for index, endpoint in enumerate(endpoints):
            sep_chain = chain_name("KUBE-SEP-", name, proto, endpoint)
            chains.append(sep_chain)
            statistic = ""
            if index < count - 1:
                statistic = f" -m statistic --mode random --probability {1.0 / (count - index):.10f}"
            svc_rules.append(f'-A {svc_chain} -m comment --comment "{name} -> {endpoint}"{statistic} -j {sep_chain}')
            host = endpoint.rsplit(":", 1)[0].strip("[]")
            svc_rules.append(f'-A {sep_chain} -s {host}/{host_len} -m comment --comment "{name}" -j KUBE-MARK-MASQ')
            svc_rules.append(
                f'-A {sep_chain} -p {proto} -m comment --comment "{name}" -m {proto} '
                f"-j DNAT --to-destination {endpoint}"
            )
    services_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this '
        'must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    lines = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
    ]
    lines.extend(f":{c} - [0:0]" for c in chains)
    lines.extend(rules)
    lines.extend(nodeport_rules)
    lines.extend(services_rules)
    lines.extend(svc_rules)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def synthetic_services(
    count, endpoints_per_service=3, node_ports=True, service_cidr="10.96.0.0/12", pod_cidr="10.244.0.0/16"
):
    """``count`` services with ``endpoints_per_service`` endpoints each (every second one a NodePort)."""
    svc_base = int(ipaddress.ip_network(service_cidr).network_address) + 10
    pod_base = int(ipaddress.ip_network(pod_cidr).network_address) + 2
    services = []
    for i in range(count):
        endpoints = [
            f"{ipaddress.ip_address(pod_base + i * endpoints_per_service + j)}:8080"
            for j in range(endpoints_per_service)
        ]
        svc = {
            "namespace": f"ns{i % 50}",
            "name": f"svc{i}",
            "port_name": "http",
            "protocol": "tcp",
            "cluster_ip": str(ipaddress.ip_address(svc_base + i)),
            "port": 80,
            "endpoints": endpoints,
        }
        if node_ports and i % 2 == 0 and i // 2 < 2767:
            svc["node_port"] = 30000 + i // 2
        services.append(svc)
    return services
