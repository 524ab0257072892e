"""kube-proxy in every mode: read its nftables tables and IPVS state on the node, recognise the
mode, and explain the NodePort path in each (the iptables mode is read with the node's dumps).

Readers run inside the node's network namespace (the dump thread calls them with the audit's
reader, :class:`...iptables.reader.Reader`): :func:`read_nft` lists the ``kube-proxy`` table;
:func:`read_ipvs` reads ``/proc/thread-self/net/ip_vs``. Each returns a dump entry
(``status`` ok | absent | error, ``reason``, ``text``). :func:`judge` returns the mode, the
services and the NodePort paths, and the findings for what could not be read.
"""

import json
import os

from ansible_collections.meshops.istio.plugins.module_utils.iptables import ipvs
from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import DumpError
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.findings import finding
from ansible_collections.meshops.istio.plugins.module_utils.nftables.kube_proxy import (
    TABLE,
    kube_proxy_nft_summary,
    kube_proxy_table,
)
from ansible_collections.meshops.istio.plugins.module_utils.nftables.ruleset import parse_json
from ansible_collections.meshops.istio.plugins.module_utils.nftables.tracer import NftTracer


def read_nft(reader, family="ip"):
    """kube-proxy's nftables table of the calling thread's namespace, as nft JSON text.

    One listing of the table (nft reads its whole cache for any listing, so a second call doubles
    the time); only when it fails does ``nft -j list tables`` tell an absent table from an error.
    """
    command = f"nft -j list table {family} {TABLE}"
    nft = reader.which("nft")
    if nft is None:
        return {"status": "error", "reason": "not-installed", "error": "nft is not installed on the node"}
    try:
        rc, out, err = reader.run([nft, "-j", "list", "table", family, TABLE])
    except DumpError as exc:
        return {"status": "error", "reason": exc.reason, "error": str(exc)}
    if rc == 0:
        return {"status": "ok", "text": out, "command": command}
    try:
        rc2, tables_out, _err2 = reader.run([nft, "-j", "list", "tables"])
        tables = [i["table"] for i in json.loads(tables_out or "{}").get("nftables", []) if "table" in i]
    except (DumpError, ValueError, AttributeError, TypeError):
        rc2, tables = 1, []
    if rc2 == 0 and not any(t.get("family") == family and t.get("name") == TABLE for t in tables):
        return {
            "status": "absent",
            "detail": f"no {family} {TABLE} nftables table (kube-proxy is not in nftables mode)",
        }
    reason = "permission" if os.geteuid() != 0 else "failed"
    return {"status": "error", "reason": reason, "error": f"{command} failed (rc={rc}): {err.strip()[:300]}"}


def read_ipvs(_reader=None):
    """IPVS virtual servers of the calling thread's namespace (/proc/net/ip_vs)."""
    try:
        with open("/proc/thread-self/net/ip_vs", encoding="ascii") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {"status": "absent", "detail": "no /proc/net/ip_vs: the kernel has no ip_vs loaded (not ipvs mode)"}
    except OSError as exc:
        return {"status": "error", "reason": "failed", "error": f"/proc/net/ip_vs: {exc.strerror}"}
    return {"status": "ok", "text": text, "command": "cat /proc/net/ip_vs"}


def _nodeport_spec(name, node_ip, port, protocol="tcp"):
    return {
        "name": name,
        "hook": "prerouting",
        "protocol": protocol,
        "src": "192.0.2.10" if ":" not in node_ip else "2001:db8::10",
        "dst": node_ip,
        "dport": port,
        "in_interface": "eth0",
    }


def _ipvs_path(virtual, pod_by_ip):
    reals = virtual["real_servers"]
    branches = []
    for real in reals:
        target = f"{real['address']}:{real['port']}"
        pod = pod_by_ip.get(real["address"])
        text = f"IPVS {virtual['address']}:{virtual['port']} ({virtual['scheduler']}) \u2192 {real['forward']} " + (
            f"pod {pod['display']} ({target})" if pod else target
        )
        branches.append(
            {
                "probability": real["probability"],
                "text": text,
                "steps": [],
                "verdict": {"action": "DNAT", "to_destination": target, "delivered": "forwarded"},
            }
        )
    best = max(branches, key=lambda b: b["probability"]) if branches else None
    return {
        "name": f"NodePort {virtual['port']} (IPVS)",
        "packet": {"protocol": virtual["protocol"], "dst": virtual["address"], "dport": virtual["port"]},
        "text": best["text"] if best else f"IPVS {virtual['address']}:{virtual['port']}: no real server",
        "steps": [],
        "branches": branches,
        "verdict": {"action": "DNAT" if branches else "DROP"},
        "destinations": [b["verdict"]["to_destination"] for b in branches],
        "unevaluated": [],
        "assumptions": [],
    }


def judge(host_dumps, iptables_services, node_addresses, describe, pod_by_ip, family="ipv4"):
    """Recognise kube-proxy's mode and explain its NodePorts.

    ``iptables_services`` is the iptables-mode summary (None without KUBE-SERVICES);
    ``describe(trace, ruleset)`` turns a trace into a path. Returns ``(mode, services, paths,
    findings)``, where ``mode`` is ``{"mode", "evidence", "not_read"}``.
    """
    evidence, not_read, findings = [], [], []
    services, paths = None, []
    node_ip = next((a for a in node_addresses if (":" in a) == (family == "ipv6")), None)

    nft_entry = host_dumps.get("nft-kube-proxy") or {}
    nft_services = None
    nft_ruleset = None
    if nft_entry.get("status") == "ok":
        try:
            nft_ruleset = parse_json(nft_entry["text"], source="node kube-proxy nftables table")
            nft_services = kube_proxy_nft_summary(nft_ruleset, family)
        except IptablesError as exc:
            findings.append(
                finding("KUBE_PROXY_NOT_READ", "error", f"kube-proxy's nftables table could not be read: {exc}")
            )
            not_read.append("nftables")
    elif nft_entry.get("status") == "error":
        not_read.append(f"nftables ({nft_entry.get('error')})")

    ipvs_entry = host_dumps.get("ipvs") or {}
    virtuals = []
    if ipvs_entry.get("status") == "ok":
        try:
            virtuals = ipvs.parse_proc(ipvs_entry["text"], source="node /proc/net/ip_vs")
        except IptablesError as exc:
            findings.append(finding("KUBE_PROXY_NOT_READ", "error", f"the IPVS table could not be read: {exc}"))
            not_read.append("ipvs")
    elif ipvs_entry.get("status") == "error":
        not_read.append(f"ipvs ({ipvs_entry.get('error')})")

    iptables_has_endpoints = bool(iptables_services) and any(s.get("endpoints") for s in iptables_services)
    if nft_services:
        mode = "nftables"
        evidence.append(
            f"table {kube_proxy_table(nft_ruleset, family).family} kube-proxy with {len(nft_services)} services"
        )
        services = nft_services
        table = kube_proxy_table(nft_ruleset, family)
        tracer = NftTracer(table, local_addresses=node_addresses)
        for svc in nft_services:
            if not svc["node_port"] or node_ip is None:
                continue
            spec = _nodeport_spec(
                f"NodePort {svc['node_port']} ({svc['name']})", node_ip, svc["node_port"], svc["protocol"]
            )
            try:
                described = describe(tracer.trace(spec), nft_ruleset)
            except IptablesError as exc:
                described = {"name": spec["name"], "error": str(exc)}
            described["service"], described["node_port"] = svc["name"], svc["node_port"]
            paths.append(described)
    elif virtuals and not iptables_has_endpoints:
        mode = "ipvs"
        evidence.append(f"{len(virtuals)} IPVS virtual servers")
        services = [
            {
                "name": f"{v['protocol']}/{v['address']}:{v['port']}",
                "protocol": v["protocol"],
                "cluster_ip": v["address"],
                "port": v["port"],
                "node_port": v["port"] if v["address"] in node_addresses else None,
                "endpoints": [
                    {"address": f"{r['address']}:{r['port']}", "probability": r["probability"]}
                    for r in v["real_servers"]
                ],
            }
            for v in virtuals
        ]
        for virtual in virtuals:
            if virtual["address"] in node_addresses:
                path = _ipvs_path(virtual, pod_by_ip)
                path["service"], path["node_port"] = f"IPVS {virtual['address']}:{virtual['port']}", virtual["port"]
                paths.append(path)
    elif iptables_services is not None:
        mode = "iptables"
        evidence.append(f"KUBE-SERVICES with {len(iptables_services)} services")
    else:
        mode = "unknown"
        if not_read:
            findings.append(
                finding(
                    "KUBE_PROXY_NOT_READ",
                    "warning",
                    "no kube-proxy rules were found in iptables, and "
                    + "; ".join(not_read)
                    + " could not be read: whether kube-proxy runs in nftables or ipvs mode is unknown, "
                    "so no NodePort path is explained",
                )
            )
    return {"mode": mode, "evidence": evidence, "not_read": not_read}, services, paths, findings
