"""Render audit reports for people (Markdown) and the cluster summary (dict and Markdown).

Runs on the controller (the ``network_audit_report`` action plugin); plain Python.
"""

SEVERITY_ORDER = ("error", "warning", "info")
_ICON = {"error": "ERROR", "warning": "WARN", "info": "ok", None: "ok"}


def _esc(text):
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    out += ["| " + " | ".join(_esc(c) for c in row) + " |" for row in rows]
    return out


def _sorted_findings(findings):
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    return sorted(findings, key=lambda f: (rank.get(f.get("severity"), 9), f.get("code", "")))


def _packet_line(packet):
    if not packet:
        return ""
    who = f", uid {packet['uid']}" if packet.get("uid") is not None else ""
    return (
        f"{packet.get('protocol')} {packet.get('src')}:{packet.get('sport')} \u2192 "
        f"{packet.get('dst')}:{packet.get('dport')} ({packet.get('hook')}{who})"
    )


def _path_block(path, dumps_label=""):
    lines = []
    if "error" in path:
        return [f"- **{path.get('name')}**: could not be traced: {path['error']}"]
    lines.append(f"**{path['name']}** \u2014 {_packet_line(path.get('packet'))}")
    lines.append("")
    if path.get("expect"):
        lines.append(f"    the capture's configuration says: {path['why']} is {path['expect']}")
    lines.append(f"    {path.get('text')}")
    lines.append("")
    rows = []
    for s in path.get("steps", []):
        where = f"{s['table']}/{s['chain']}" + (f" #{s['rule_number']}" if s.get("rule_number") else " (policy)")
        rows.append([where, s.get("rule"), s.get("packets", ""), s.get("bytes", ""), s.get("action")])
    if rows:
        lines += _table(["where", "rule", "pkts", "bytes", "action"], rows)
        lines.append("")
    for b in path.get("branches") or []:
        lines.append(f"- branch p={b['probability']}: {b['text']}")
    if path.get("branches"):
        lines.append("")
    if path.get("unevaluated"):
        lines.append(f"- not evaluated by the engine (both outcomes explored): {', '.join(path['unevaluated'])}")
        lines.append("")
    return lines


def _capture_line(capture):
    if not capture:
        return "no capture rules"
    if not capture.get("enabled"):
        return "capture disabled (no ISTIO_* jump from PREROUTING/OUTPUT)"
    parts = [
        f"mode {capture.get('mode')}",
        f"inbound \u2192 :{capture.get('inbound_port')}",
        f"outbound \u2192 :{capture.get('outbound_port')}",
        f"proxy uids {capture.get('proxy_uids')}",
        f"inbound ports {capture.get('inbound_ports')}",
        f"excluded inbound {capture.get('excluded_inbound_ports')}",
        f"outbound include {capture.get('outbound_include_cidrs')}",
        f"outbound exclude {capture.get('outbound_exclude_cidrs')}",
        f"excluded outbound ports {capture.get('excluded_outbound_ports')}",
        f"DNS capture {'on :' + str(capture.get('dns_port')) if capture.get('dns_capture') else 'off'}",
    ]
    return "; ".join(parts)


def markdown_node(report, dumps_dir="dumps"):
    node = report.get("node", {})
    summary = report.get("summary", {})
    counts = summary.get("findings", {})
    lines = [
        f"# Network audit of node {node.get('hostname')}",
        "",
        f"Audited at {node.get('audited_at')} \u00b7 addresses {', '.join(node.get('addresses') or []) or 'unknown'} "
        f"\u00b7 netns inode {node.get('netns_inode')} \u00b7 took {report.get('timings', {}).get('total')} s",
        "",
        f"**Worst finding: {summary.get('worst_severity') or 'none'}** \u2014 "
        f"{summary.get('sidecar_pods', 0)} sidecar pod(s), {summary.get('gateway_pods', 0)} gateway pod(s), "
        f"{summary.get('pods_not_read', 0)} not read; findings: {counts.get('error', 0)} error, "
        f"{counts.get('warning', 0)} warning, {counts.get('info', 0)} info.",
        "",
    ]
    pods = report.get("pods", [])
    all_findings = [(None, f) for f in report.get("findings", [])] + [
        (p.get("display"), f) for p in pods for f in p.get("findings", []) if f.get("severity") != "info"
    ]
    lines.append("## Findings")
    lines.append("")
    if all_findings:
        ranked = sorted(all_findings, key=lambda pf: SEVERITY_ORDER.index(pf[1].get("severity", "info")))
        lines += _table(
            ["severity", "where", "code", "message"],
            [[f["severity"], pod or "node", f["code"], f["message"]] for pod, f in ranked],
        )
    else:
        lines.append("No warnings or errors.")
    lines.append("")
    lines.append("## Pods")
    lines.append("")
    if pods:
        lines += _table(
            ["pod", "role", "IP", "netns inode", "proxy pid", "capture backend", "worst", "named from"],
            [
                [
                    p.get("display"),
                    p.get("role"),
                    ", ".join(p.get("ips") or []),
                    p.get("netns_inode"),
                    (p.get("proxy") or {}).get("pid"),
                    p.get("capture_backend") or "-",
                    _ICON[p.get("worst_severity")],
                    p.get("named_by"),
                ]
                for p in pods
            ],
        )
    else:
        lines.append("No sidecar found on this node (no envoy/pilot-agent process, nothing running as the proxy uid).")
    lines.append("")
    for p in pods:
        lines += _pod_section(p, dumps_dir)
    lines += _host_section(report, dumps_dir)
    errors = report.get("errors") or []
    unreadable = [p for p in pods if p.get("status") != "ok"]
    if errors or unreadable:
        lines.append("## What could not be read")
        lines.append("")
        for p in unreadable:
            lines.append(f"- {p.get('display')}: {p.get('status')}: {'; '.join(p.get('errors') or [])}")
        for e in errors:
            where = f"pid {e['pid']}" if "pid" in e else "node"
            lines.append(f"- {where}: {e.get('error')}")
        lines.append("")
    if report.get("runtime", {}).get("notes"):
        lines.append("Container runtime: " + "; ".join(report["runtime"]["notes"]))
        lines.append("")
    return "\n".join(lines) + "\n"


def _pod_section(p, dumps_dir):
    lines = [f"## {p.get('display')}", ""]
    proxy = p.get("proxy") or {}
    procs = ", ".join(
        f"{x['comm']} pid {x['pid']} uid {x['uid']} (by {'+'.join(x['detected_by'])})"
        for x in proxy.get("processes", [])
    )
    lines.append(f"- network namespace inode {p.get('netns_inode')}, addresses {', '.join(p.get('ips') or []) or '-'}")
    lines.append(f"- proxy: {procs or '-'}; pod named from {p.get('named_by')}")
    if p.get("status") != "ok":
        lines.append(f"- **not read**: {'; '.join(p.get('errors') or [])}")
        lines.append("")
        return lines
    lines.append(
        f"- rules: {', '.join(p.get('backends_in_use') or []) or 'none'}; capture: {_capture_line(p.get('capture'))}"
    )
    dumps = p.get("dumps") or {}
    links = [
        f"[{k}]({dumps_dir}/{d['file']})" if d.get("file") else f"{k}: {d.get('status')}" for k, d in dumps.items()
    ]
    lines.append(f"- raw dumps: {', '.join(links)}")
    lines.append("")
    if p.get("listening"):
        lines.append("Listening sockets (what `netstat -ntlp` shows in chapter 7 of the tutorial):")
        lines.append("")
        lines += _table(
            ["port", "address", "process", "purpose"],
            [
                [
                    s["port"],
                    s["address"],
                    f"{s.get('process')} ({s.get('pid')})" if s.get("pid") else "?",
                    s.get("purpose"),
                ]
                for s in p["listening"]
            ],
        )
        lines.append("")
    if p.get("findings"):
        lines += _table(
            ["severity", "code", "message"],
            [[f["severity"], f["code"], f["message"]] for f in _sorted_findings(p["findings"])],
        )
        lines.append("")
    if p.get("paths"):
        lines.append("### Packet paths")
        lines.append("")
        for path in p["paths"]:
            lines += _path_block(path)
    probe = p.get("probe")
    if probe:
        lines.append("### Probe (one real connection from the node)")
        lines.append("")
        if probe.get("status") in ("ok", "connect-failed"):
            lines.append(
                f"- target {probe['target']}: {probe['status']}"
                + (f" ({probe['error']})" if probe.get("error") else "")
                + f"; agrees with the tracer: **{'yes' if probe.get('agrees') else 'NO'}**"
            )
            if probe.get("note"):
                lines.append(f"- {probe['note']}")
            lines.append("")
            lines += _table(
                ["rule whose counter moved", "pkts"],
                [
                    [f"{m['table']}/{m['chain']} #{m['rule_number']}: {m['rule']}", m["packets"]]
                    for m in probe.get("moved", [])
                ],
            )
        else:
            lines.append(f"- {probe.get('status')}: {probe.get('reason') or probe.get('error')}")
        lines.append("")
    return lines


def _host_section(report, dumps_dir):
    host = report.get("host") or {}
    lines = ["## The node's own rules", ""]
    dumps = host.get("dumps") or {}
    for key, d in dumps.items():
        link = f"[{d['file']}]({dumps_dir}/{d['file']})" if d.get("file") else ""
        extra = d.get("error") or d.get("detail") or f"{d.get('rule_count', 0)} rules"
        lines.append(f"- {key}: {d.get('status')} \u2014 {extra} {link}".rstrip())
    lines.append(f"- backends holding rules: {', '.join(host.get('backends_in_use') or []) or 'none'}")
    lines.append("")
    mode = host.get("kube_proxy_mode") or {}
    if mode:
        evidence = "; ".join(mode.get("evidence") or []) or "no kube-proxy rules found"
        lines.append(f"- kube-proxy mode: **{mode.get('mode')}** ({evidence})")
        for what in mode.get("not_read") or []:
            lines.append(f"- not read: {what}")
        lines.append("")
    services = host.get("kube_proxy") or []
    if services:
        lines.append("### kube-proxy services")
        lines.append("")
        rows = []
        for s in services:
            eps = ", ".join(
                f"{e.get('address') or e.get('endpoint') or e}"
                + (f" (p={e['probability']:.3g})" if isinstance(e, dict) and e.get("probability") is not None else "")
                for e in s.get("endpoints") or []
            )
            rows.append([s.get("name"), s.get("cluster_ip"), s.get("port"), s.get("node_port") or "-", eps])
        lines += _table(["service", "ClusterIP", "port", "NodePort", "endpoints"], rows)
        lines.append("")
    for path in host.get("node_port_paths") or []:
        title = "Ingress gateway NodePort path" if path.get("ingress_gateway") else "NodePort path"
        lines.append(f"### {title}: {path.get('service')} :{path.get('node_port')}")
        lines.append("")
        if path.get("gateway_pods"):
            lines.append(f"Gateway pod(s) on this node: {', '.join(path['gateway_pods'])}")
            lines.append("")
        lines += _path_block(path)
    return lines


def summary(reports):
    """Cluster summary dict from {host: report}."""
    nodes = {}
    totals = {s: 0 for s in SEVERITY_ORDER}
    by_code = {}
    pods = []
    for host, report in sorted(reports.items()):
        if not report:
            nodes[host] = {"status": "not audited"}
            continue
        s = report.get("summary", {})
        nodes[host] = {
            "worst_severity": s.get("worst_severity"),
            "findings": s.get("findings"),
            "sidecar_pods": s.get("sidecar_pods"),
            "gateway_pods": s.get("gateway_pods"),
            "pods_not_read": s.get("pods_not_read"),
            "seconds": report.get("timings", {}).get("total"),
        }
        for sev in SEVERITY_ORDER:
            totals[sev] += (s.get("findings") or {}).get(sev, 0)
        for f in report.get("findings", []):
            by_code.setdefault(f["code"], {"severity": f["severity"], "count": 0})["count"] += 1
        for p in report.get("pods", []):
            for f in p.get("findings", []):
                by_code.setdefault(f["code"], {"severity": f["severity"], "count": 0})["count"] += 1
            pods.append(
                {
                    "node": host,
                    "pod": p.get("display"),
                    "role": p.get("role"),
                    "worst_severity": p.get("worst_severity"),
                    "findings": [f["code"] for f in p.get("findings", []) if f.get("severity") != "info"],
                }
            )
    worst = next((s for s in SEVERITY_ORDER if totals[s] and s != "info"), None) or ("info" if totals["info"] else None)
    return {
        "schema_version": 1,
        "worst_severity": worst,
        "findings": totals,
        "by_code": by_code,
        "nodes": nodes,
        "pods": pods,
    }


def markdown_summary(summ):
    t = summ["findings"]
    lines = [
        "# Network audit \u2014 cluster summary",
        "",
        f"**Worst finding: {summ.get('worst_severity') or 'none'}** \u2014 {t['error']} error, {t['warning']} warning, "
        f"{t['info']} info across {len(summ['nodes'])} node(s) and {len(summ['pods'])} pod(s).",
        "",
        "## Per node",
        "",
    ]
    lines += _table(
        ["node", "worst", "errors", "warnings", "sidecars", "gateways", "not read", "seconds", "report"],
        [
            [
                h,
                _ICON.get(n.get("worst_severity"), n.get("status")),
                (n.get("findings") or {}).get("error", "-"),
                (n.get("findings") or {}).get("warning", "-"),
                n.get("sidecar_pods", "-"),
                n.get("gateway_pods", "-"),
                n.get("pods_not_read", "-"),
                n.get("seconds", "-"),
                f"[{h}]({h}.md)",
            ]
            for h, n in summ["nodes"].items()
        ],
    )
    lines += ["", "## Findings by code", ""]
    lines += _table(
        ["code", "severity", "count"],
        [
            [c, v["severity"], v["count"]]
            for c, v in sorted(summ["by_code"].items(), key=lambda kv: (SEVERITY_ORDER.index(kv[1]["severity"]), kv[0]))
        ],
    )
    bad = [p for p in summ["pods"] if p["findings"]]
    lines += ["", "## Pods with warnings or errors", ""]
    if bad:
        lines += _table(
            ["node", "pod", "role", "worst", "findings"],
            [[p["node"], p["pod"], p["role"], p["worst_severity"], ", ".join(p["findings"])] for p in bad],
        )
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"
