"""Summarise kube-proxy's ``nftables`` mode from its ``kube-proxy`` table.

:func:`kube_proxy_nft_summary` (ruleset, family) returns ``None`` when the rule set has no
``kube-proxy`` table of that family, else the services in the shape the iptables summary uses
(``name`` ``namespace/service:port``, ``protocol``, ``cluster_ip``, ``port``, ``node_port``,
``chain``, ``endpoints`` with ``address``, ``chain`` and ``probability``), read from the verdict
maps ``service-ips`` and ``service-nodeports``, the ``service-...`` chains (``numgen random mod N``:
each endpoint 1/N) and the ``endpoint-...`` chains' ``dnat``. Services without endpoints come
from ``no-endpoint-services`` (kube-proxy's element comments name them) with ``endpoints: []``.
"""

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError

TABLE = "kube-proxy"
NFT_FAMILY = {"ipv4": "ip", "ipv6": "ip6"}


def kube_proxy_table(ruleset, family="ipv4"):
    return ruleset.table(NFT_FAMILY[family], TABLE)


def _target(verdict):
    if isinstance(verdict, dict):
        for kind in ("goto", "jump"):
            if kind in verdict:
                return verdict[kind].get("target")
    return None


def _name_of(chain_name):
    """'service-ULMVA6XW-ns1/svc1/tcp/p80' -> ('ns1/svc1:p80', 'tcp')."""
    _kind, _sep, rest = chain_name.partition("-")
    _token, _sep, path = rest.partition("-")
    parts = path.split("/")
    if len(parts) >= 4:
        return f"{parts[0]}/{parts[1]}:{'/'.join(parts[3:])}", parts[2]
    return path or chain_name, None


def _endpoints(table, chain_name):
    chain = table.chain(chain_name)
    if chain is None:
        return []
    endpoints = []
    for rule in chain.rules:
        for expr in rule.expr:
            vmap = expr.get("vmap") if isinstance(expr, dict) else None
            if not vmap or not isinstance(vmap.get("key"), dict) or "numgen" not in vmap["key"]:
                continue
            modulus = int(vmap["key"]["numgen"].get("mod") or 1)
            data = vmap.get("data")
            pairs = data.get("set") if isinstance(data, dict) else table.maps.get(str(data)[1:], [])
            for pair in pairs or []:
                target = _target(pair[1])
                endpoints.append(
                    {"address": _dnat_of(table, target), "chain": target, "probability": round(1.0 / modulus, 6)}
                )
    return endpoints


def _dnat_of(table, chain_name):
    chain = table.chain(chain_name) if chain_name else None
    for rule in chain.rules if chain else []:
        for expr in rule.expr:
            if isinstance(expr, dict) and "dnat" in expr:
                addr, port = expr["dnat"].get("addr"), expr["dnat"].get("port")
                host = f"[{addr}]" if ":" in str(addr) else str(addr)
                return f"{host}:{port}" if port is not None else host
    return None


def kube_proxy_nft_summary(ruleset, family="ipv4"):
    table = kube_proxy_table(ruleset, family)
    if table is None:
        return None
    services = {}

    def service(chain_name):
        base = chain_name.split("-", 1)[1] if "-" in chain_name else chain_name
        key = base.split("-", 1)[1] if "-" in base else base
        if key not in services:
            name, protocol = _name_of(chain_name)
            services[key] = {
                "name": name,
                "protocol": protocol or "tcp",
                "cluster_ip": None,
                "port": None,
                "node_port": None,
                "external_ips": [],
                "chain": None,
                "endpoints": [],
            }
        return services[key]

    try:
        for key, verdict in table.maps.get("service-ips", []):
            target = _target(verdict)
            if not target or not isinstance(key, dict) or len(key.get("concat", [])) != 3:
                continue
            address, _proto, port = key["concat"]
            svc = service(target)
            if target.startswith("service-"):
                svc["cluster_ip"], svc["port"], svc["chain"] = address, int(port), target
                svc["endpoints"] = _endpoints(table, target)
            else:
                svc["external_ips"].append(address)
        for key, verdict in table.maps.get("service-nodeports", []):
            target = _target(verdict)
            if not target or not isinstance(key, dict) or len(key.get("concat", [])) != 2:
                continue
            service(target)["node_port"] = int(key["concat"][1])
        comments = table.map_comments.get("no-endpoint-services", {})
        for index, (key, _verdict) in enumerate(table.maps.get("no-endpoint-services", [])):
            if not isinstance(key, dict) or len(key.get("concat", [])) != 3:
                continue
            address, proto, port = key["concat"]
            name = comments.get(index) or f"{address}:{port}"
            entry = services.setdefault(
                f"no-endpoints {name}",
                {
                    "name": name,
                    "protocol": proto,
                    "cluster_ip": address,
                    "port": int(port),
                    "node_port": None,
                    "external_ips": [],
                    "chain": None,
                    "endpoints": [],
                },
            )
            entry.setdefault("no_endpoints", True)
    except (TypeError, ValueError) as exc:
        raise IptablesError(
            f"{ruleset.source}: the kube-proxy table's maps are not as kube-proxy writes them: {exc}"
        ) from None
    return sorted(services.values(), key=lambda s: s["name"])


def nodeports(ruleset, family="ipv4"):
    """[{service, node_port, protocol}] from ``service-nodeports``."""
    return [
        {"service": s["name"], "node_port": s["node_port"], "protocol": s["protocol"]}
        for s in kube_proxy_nft_summary(ruleset, family) or []
        if s["node_port"]
    ]
