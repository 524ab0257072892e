"""Rules the pod lab loads: istio-init capture rules per pod, kube-proxy chains per node.

Both come from the collection's own generators in
``plugins/module_utils/iptables/{istio_capture_rules,kube_proxy_rules}.py`` (the engine,
issue 3). Until those land, a small stop-gap generator below (``_stopgap_*``) writes the same
layout so the lab can run; it is used only when the engine's modules cannot be imported.
Broken variants are derived here from the healthy text, so they stay in step with the generator.
"""

from __future__ import annotations

import hashlib
import importlib
import re

_ENGINE = "ansible_collections.meshops.istio.plugins.module_utils.iptables"


def _engine(name: str):
    try:
        return importlib.import_module(f"{_ENGINE}.{name}")
    except ImportError:
        return None


def capture_options_dict(opts) -> dict:
    data = opts.to_dict() if hasattr(opts, "to_dict") else dict(opts)
    data.pop("backend", None)
    data.pop("broken", None)
    return data


def capture_ruleset(opts) -> str:
    """iptables-restore text for one pod, healthy or broken as ``opts.broken`` says."""
    module = _engine("istio_capture_rules")
    options = capture_options_dict(opts)
    if module is not None and hasattr(module, "render_capture_rules"):
        text = module.render_capture_rules(options)
    else:
        text = _stopgap_capture_rules(**options)
    return break_ruleset(text, getattr(opts, "broken", None), options)


def break_ruleset(text: str, broken: str | None, options: dict) -> str:
    """Apply one known mistake to a healthy capture ruleset."""
    if not broken:
        return text
    uid = str(options.get("proxy_uid", 1337))
    gid = str(options.get("proxy_gid", 1337))
    lines = text.splitlines()
    if broken == "missing_prerouting_jump":
        out = [ln for ln in lines if not (ln.startswith("-A PREROUTING") and "ISTIO_INBOUND" in ln)]
    elif broken == "missing_output_jump":
        out = [ln for ln in lines if not (ln.startswith("-A OUTPUT") and "ISTIO_OUTPUT" in ln)]
    elif broken == "missing_uid_exemption":
        # Drop the RETURN rules that exempt the proxy's own uid/gid from redirection.
        out = [
            ln
            for ln in lines
            if not (
                ln.startswith("-A ISTIO_OUTPUT")
                and ln.rstrip().endswith("-j RETURN")
                and re.search(rf"--(uid|gid)-owner ({uid}|{gid})\b", ln)
                and "! --" not in ln
            )
        ]
    elif broken == "wrong_inbound_port":
        port = str(options.get("inbound_capture_port", 15006))
        out = [
            ln.replace(f"--to-ports {port}", "--to-ports 15007") if ln.startswith("-A ISTIO_IN_REDIRECT") else ln
            for ln in lines
        ]
    elif broken == "no_rules":
        return ""
    else:
        raise ValueError(f"unknown broken variant {broken!r}")
    if out == lines:
        raise ValueError(f"broken variant {broken!r} changed nothing in the generated rules")
    return "\n".join(out) + "\n"


def node_ruleset(services: list[dict], node_ip: str | None = None, pod_cidr: str | None = None) -> str:
    """iptables-restore text for the node's nat table with kube-proxy style chains."""
    module = _engine("kube_proxy_rules")
    if module is not None and hasattr(module, "render_kube_proxy_rules"):
        return module.render_kube_proxy_rules(services, node_ip=node_ip, cluster_cidr=pod_cidr)
    return _stopgap_kube_proxy_rules(services, node_ip=node_ip, cluster_cidr=pod_cidr)


# --- stop-gap generators (removed once the engine's generators exist) -------------------------


def _ports(value) -> str:
    return ",".join(str(p) for p in value)


def _stopgap_capture_rules(
    proxy_uid=1337,
    proxy_gid=1337,
    inbound_capture_port=15006,
    outbound_capture_port=15001,
    inbound_ports="*",
    exclude_inbound_ports=(15090, 15021, 15020),
    include_outbound_cidrs="*",
    exclude_outbound_cidrs=(),
    exclude_outbound_ports=(),
    include_outbound_ports=(),
    dns_capture=False,
    **_ignored,
) -> str:
    nat = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":ISTIO_INBOUND - [0:0]",
        ":ISTIO_IN_REDIRECT - [0:0]",
        ":ISTIO_OUTPUT - [0:0]",
        ":ISTIO_REDIRECT - [0:0]",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
    ]
    if inbound_ports == "*":
        for port in [15008, *exclude_inbound_ports]:
            nat.append(f"-A ISTIO_INBOUND -p tcp -m tcp --dport {port} -j RETURN")
        nat.append("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
    else:
        for port in inbound_ports:
            nat.append(f"-A ISTIO_INBOUND -p tcp -m tcp --dport {port} -j ISTIO_IN_REDIRECT")
    nat.append(f"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {inbound_capture_port}")
    for port in exclude_outbound_ports:
        nat.append(f"-A ISTIO_OUTPUT -p tcp -m tcp --dport {port} -j RETURN")
    nat.append("-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN")
    for kind, ident in (("uid", proxy_uid), ("gid", proxy_gid)):
        nat += [
            f"-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m owner --{kind}-owner {ident} -j ISTIO_IN_REDIRECT",
            f"-A ISTIO_OUTPUT -o lo -m owner ! --{kind}-owner {ident} -j RETURN",
            f"-A ISTIO_OUTPUT -m owner --{kind}-owner {ident} -j RETURN",
        ]
    if dns_capture:
        nat.append("-A ISTIO_OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053")
    nat.append("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN")
    for cidr in exclude_outbound_cidrs:
        nat.append(f"-A ISTIO_OUTPUT -d {cidr} -j RETURN")
    for port in include_outbound_ports:
        nat.append(f"-A ISTIO_OUTPUT -p tcp -m tcp --dport {port} -j ISTIO_REDIRECT")
    if include_outbound_cidrs == "*":
        nat.append("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
    else:
        for cidr in include_outbound_cidrs:
            nat.append(f"-A ISTIO_OUTPUT -d {cidr} -j ISTIO_REDIRECT")
        nat.append("-A ISTIO_OUTPUT -j RETURN")
    nat.append(f"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {outbound_capture_port}")
    if dns_capture:
        nat.insert(nat.index("-A OUTPUT -p tcp -j ISTIO_OUTPUT") + 1, "-A OUTPUT -p udp -j ISTIO_OUTPUT")
        nat.insert(
            nat.index("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"),
            f"-A ISTIO_OUTPUT -p udp -m udp --dport 53 -m owner --uid-owner {proxy_uid} -j RETURN",
        )
        nat.insert(
            nat.index("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"),
            "-A ISTIO_OUTPUT -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053",
        )
    nat.append("COMMIT")
    return "\n".join(nat) + "\n"


def _chain_hash(prefix: str, *parts) -> str:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest().upper()
    return f"{prefix}-{digest[:16]}"


def _stopgap_kube_proxy_rules(services, node_ip=None, cluster_cidr=None) -> str:
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    body = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
    ]
    services_rules = []
    nodeport_rules = []
    for svc in services:
        ident = f"{svc['namespace']}/{svc['name']}:{svc.get('port_name', 'http')}"
        proto = svc.get("protocol", "tcp")
        svc_chain = _chain_hash("KUBE-SVC", ident, proto)
        chains.append(svc_chain)
        services_rules.append(
            f'-A KUBE-SERVICES -d {svc["cluster_ip"]}/32 -p {proto} -m comment --comment "{ident} cluster IP" '
            f"-m {proto} --dport {svc['port']} -j {svc_chain}"
        )
        if cluster_cidr:
            body.append(
                f"-A {svc_chain} ! -s {cluster_cidr} -d {svc['cluster_ip']}/32 -p {proto} -m comment --comment "
                f'"{ident} cluster IP" -m {proto} --dport {svc["port"]} -j KUBE-MARK-MASQ'
            )
        if svc.get("node_port"):
            ext_chain = _chain_hash("KUBE-EXT", ident, proto)
            chains.append(ext_chain)
            nodeport_rules.append(
                f'-A KUBE-NODEPORTS -p {proto} -m comment --comment "{ident}" -m {proto} '
                f"--dport {svc['node_port']} -j {ext_chain}"
            )
            body.append(
                f'-A {ext_chain} -m comment --comment "masquerade traffic for {ident} external destinations" '
                "-j KUBE-MARK-MASQ"
            )
            body.append(f"-A {ext_chain} -j {svc_chain}")
        endpoints = svc["endpoints"]
        for i, ep in enumerate(endpoints):
            sep = _chain_hash("KUBE-SEP", ident, proto, ep["ip"], ep["port"])
            chains.append(sep)
            remaining = len(endpoints) - i
            stat = f"-m statistic --mode random --probability {1 / remaining:.11f} " if remaining > 1 else ""
            body.append(f'-A {svc_chain} -m comment --comment "{ident} -> {ep["ip"]}:{ep["port"]}" {stat}-j {sep}')
            body.append(f'-A {sep} -s {ep["ip"]}/32 -m comment --comment "{ident}" -j KUBE-MARK-MASQ')
            body.append(
                f'-A {sep} -p {proto} -m comment --comment "{ident}" -m {proto} -j DNAT '
                f"--to-destination {ep['ip']}:{ep['port']}"
            )
    services_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule '
        'in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    lines = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
    ]
    lines += [f":{c} - [0:0]" for c in chains]
    lines += body[:7] + nodeport_rules + services_rules + body[7:]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
