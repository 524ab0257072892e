"""Generate the ``nft -f`` text kube-proxy's nftables mode writes for a list of services.

Independent generator following the table layout kube-proxy documents and tests
(``pkg/proxy/nftables``): table ``ip kube-proxy`` (``ip6`` for IPv6) with the hook chains
``nat-prerouting``/``nat-output`` -> ``services``, the verdict maps ``service-ips``
(address . protocol . port) and ``service-nodeports`` (protocol . port), per service port a
``service-<hash>-<ns>/<name>/<proto>/<port>`` chain that masquerades off-cluster clients and
picks an endpoint with ``numgen random mod N vmap``, an ``external-...`` chain for NodePorts,
``endpoint-...`` chains that ``dnat`` to the endpoint, and ``no-endpoint-services`` /
``no-endpoint-nodeports`` for services without endpoints. Not kube-proxy's code.

Services are dicts as for the iptables generator: ``namespace``, ``name``, ``port_name``,
``protocol`` (tcp), ``cluster_ip``, ``port``, ``node_port`` (optional), ``endpoints``
(``["10.244.1.5:8080", ...]``, may be empty).
"""

import base64
import hashlib
import ipaddress


def _token(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest())[:8].decode()


def chain_names(svc):
    proto = svc.get("protocol", "tcp")
    base = f"{svc['namespace']}/{svc['name']}/{proto}/{svc['port_name']}"
    token = _token(base)
    endpoints = []
    for ep in svc["endpoints"]:
        host, _sep, port = ep.rpartition(":")
        endpoints.append(f"endpoint-{_token(base + ep)}-{base}__{host.strip('[]')}/{port}")
    return f"service-{token}-{base}", f"external-{token}-{base}", endpoints


def kube_proxy_nft_rules(
    services,
    family="ip",
    pod_cidr="10.244.0.0/16",
    service_cidr="10.96.0.0/12",
    node_ips=("192.168.0.2",),
    masquerade_mark="0x4000",
):
    addr = "ipv4_addr" if family == "ip" else "ipv6_addr"
    ip = family  # "ip" or "ip6" selector in rules
    t = f"{family} kube-proxy"
    out = [
        f'add table {t} {{ comment "rules for kube-proxy" ; }}',
        f"flush table {t}",
        f'add set {t} cluster-ips {{ type {addr} ; comment "Active ClusterIPs" ; }}',
        f'add set {t} nodeport-ips {{ type {addr} ; comment "IPs that accept NodePort traffic" ; }}',
        f"add map {t} firewall-ips {{ type {addr} . inet_proto . inet_service : verdict ; }}",
        f"add map {t} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; }}",
        f"add map {t} no-endpoint-services {{ type {addr} . inet_proto . inet_service : verdict ; }}",
        f"add map {t} service-ips {{ type {addr} . inet_proto . inet_service : verdict ; "
        'comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
        f'add map {t} service-nodeports {{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }}',
        f"add chain {t} cluster-ips-check",
        f"add chain {t} filter-prerouting-pre-dnat {{ type filter hook prerouting priority -110 ; }}",
        f"add chain {t} filter-output-pre-dnat {{ type filter hook output priority -110 ; }}",
        f"add chain {t} filter-forward {{ type filter hook forward priority 0 ; }}",
        f"add chain {t} filter-input {{ type filter hook input priority 0 ; }}",
        f"add chain {t} filter-output {{ type filter hook output priority 0 ; }}",
        f"add chain {t} firewall-check",
        f"add chain {t} mark-for-masquerade",
        f"add chain {t} masquerading",
        f"add chain {t} nat-output {{ type nat hook output priority -100 ; }}",
        f"add chain {t} nat-postrouting {{ type nat hook postrouting priority 100 ; }}",
        f"add chain {t} nat-prerouting {{ type nat hook prerouting priority -100 ; }}",
        f"add chain {t} nodeport-endpoints-check",
        f'add chain {t} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}',
        f"add chain {t} services",
        f"add chain {t} service-endpoints-check",
        f"add rule {t} cluster-ips-check {ip} daddr @cluster-ips reject",
        f"add rule {t} cluster-ips-check {ip} daddr {{ {service_cidr} }} drop",
        f"add rule {t} filter-prerouting-pre-dnat ct state new jump firewall-check",
        f"add rule {t} filter-forward ct state new jump service-endpoints-check",
        f"add rule {t} filter-forward ct state new jump cluster-ips-check",
        f"add rule {t} filter-input ct state new jump nodeport-endpoints-check",
        f"add rule {t} filter-input ct state new jump service-endpoints-check",
        f"add rule {t} filter-output ct state new jump service-endpoints-check",
        f"add rule {t} filter-output-pre-dnat ct state new jump firewall-check",
        f"add rule {t} filter-output ct state new jump cluster-ips-check",
        f"add rule {t} firewall-check {ip} daddr . meta l4proto . th dport vmap @firewall-ips",
        f"add rule {t} mark-for-masquerade mark set mark or {masquerade_mark}",
        f"add rule {t} masquerading mark and {masquerade_mark} == 0 return",
        f"add rule {t} masquerading mark set mark xor {masquerade_mark}",
        f"add rule {t} masquerading masquerade fully-random",
        f"add rule {t} nat-output jump services",
        f"add rule {t} nat-postrouting jump masquerading",
        f"add rule {t} nat-prerouting jump services",
        f"add rule {t} nodeport-endpoints-check {ip} daddr @nodeport-ips "
        "meta l4proto . th dport vmap @no-endpoint-nodeports",
        f"add rule {t} reject-chain reject",
        f"add rule {t} services {ip} daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services {ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
        f"add rule {t} service-endpoints-check {ip} daddr . meta l4proto . th dport vmap @no-endpoint-services",
    ]
    if node_ips:
        out.append(f"add element {t} nodeport-ips {{ {', '.join(node_ips)} }}")
    for svc in services:
        proto = svc.get("protocol", "tcp")
        service_chain, external_chain, endpoint_chains = chain_names(svc)
        label = f"{svc['namespace']}/{svc['name']}:{svc['port_name']}"
        cluster, port = svc["cluster_ip"], svc["port"]
        out.append(f"add element {t} cluster-ips {{ {cluster} }}")
        if not svc["endpoints"]:
            out.append(
                f'add element {t} no-endpoint-services {{ {cluster} . {proto} . {port} comment "{label}" '
                ": goto reject-chain }"
            )
            if svc.get("node_port"):
                out.append(
                    f'add element {t} no-endpoint-nodeports {{ {proto} . {svc["node_port"]} comment "{label}" '
                    ": goto reject-chain }"
                )
            continue
        # Endpoint chains first: the service chain's vmap refers to them.
        for ep, name in zip(svc["endpoints"], endpoint_chains, strict=True):
            host, _sep, ep_port = ep.rpartition(":")
            host = host.strip("[]")
            target = f"{host}:{ep_port}" if family == "ip" else f"[{host}]:{ep_port}"
            out.append(f"add chain {t} {name}")
            out.append(f"add rule {t} {name} {ip} saddr {host} jump mark-for-masquerade")
            out.append(f"add rule {t} {name} meta l4proto {proto} dnat to {target}")
        out.append(f"add chain {t} {service_chain}")
        out.append(
            f"add rule {t} {service_chain} {ip} daddr {cluster} {ip} saddr != {pod_cidr} jump mark-for-masquerade"
        )
        choices = " , ".join(f"{i} : goto {name}" for i, name in enumerate(endpoint_chains))
        out.append(f"add rule {t} {service_chain} numgen random mod {len(endpoint_chains)} vmap {{ {choices} }}")
        out.append(f"add element {t} service-ips {{ {cluster} . {proto} . {port} : goto {service_chain} }}")
        if svc.get("node_port"):
            out.append(f"add chain {t} {external_chain}")
            out.append(f"add rule {t} {external_chain} jump mark-for-masquerade")
            out.append(f"add rule {t} {external_chain} goto {service_chain}")
            out.append(f"add element {t} service-nodeports {{ {proto} . {svc['node_port']} : goto {external_chain} }}")
    return "\n".join(out) + "\n"


def synthetic_services(count, endpoints_per_service=3, service_cidr="10.96.0.0/12", pod_cidr="10.244.0.0/16"):
    """``count`` services, every second one a NodePort (30000 upwards)."""
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
            "cluster_ip": str(ipaddress.ip_address(svc_base + i)),
            "port": 80,
            "endpoints": endpoints,
        }
        if i % 2 == 0:
            svc["node_port"] = 30000 + i // 2
        services.append(svc)
    return services
