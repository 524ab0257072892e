"""HTML rendering of one node's audit report, with a diagram (inline SVG) of every packet path."""

from html import escape

from ansible_collections.meshops.istio.plugins.module_utils.network_audit.render import SEVERITY_ORDER

_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#2e7d32", None: "#2e7d32"}
_STYLE = """
body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{font-size:90%}.sev{color:#fff;padding:1px 6px;border-radius:3px}
section{border-top:2px solid #ddd;margin-top:1.5em}svg text{font-family:monospace;font-size:11px}
"""
BOX_W, BOX_H, GAP = 150, 34, 26


def _sev(severity):
    return f'<span class="sev" style="background:{_COLOURS.get(severity, "#555")}">{escape(str(severity))}</span>'


def _table(headers, rows):
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _boxes(path):
    """Chains the packet walks (nat table, as chapter 7 of the tutorial reads them) and where it ends."""
    boxes = []
    last = None
    for step in path.get("steps", []):
        if step["table"] != "nat" or step.get("rule_number") is None:
            continue
        if step["chain"] != last:
            boxes.append((step["chain"], step.get("packets"), "#e3f2fd"))
            last = step["chain"]
    end = path.get("text", "").split(" \u2192 ")
    tail = [part for part in end if part not in {b[0] for b in boxes} and part != "RETURN"]
    for part in tail:
        colour = "#fff3e0" if part.startswith(("REDIRECT", "DNAT", "TPROXY")) else "#e8f5e9"
        if part in ("DROP", "REJECT") or "no listener" in part:
            colour = "#ffebee"
        boxes.append((part, None, colour))
    return boxes


def path_svg(path):
    boxes = _boxes(path)
    width = max(1, len(boxes)) * (BOX_W + GAP)
    parts = [f'<svg width="{width}" height="{BOX_H + 24}" role="img" aria-label="{escape(path.get("text", ""))}">']
    for i, (label, packets, colour) in enumerate(boxes):
        x = i * (BOX_W + GAP)
        short = label if len(label) <= 22 else label[:21] + "\u2026"
        parts.append(
            f'<rect x="{x}" y="2" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{colour}" stroke="#777"/>'
            f'<text x="{x + 6}" y="{BOX_H // 2 + 6}"><title>{escape(label)}</title>{escape(short)}</text>'
        )
        if packets is not None:
            parts.append(f'<text x="{x + 6}" y="{BOX_H + 16}" fill="#555">pkts {packets}</text>')
        if i:
            ax = x - GAP
            parts.append(
                f'<line x1="{ax + 2}" y1="{BOX_H // 2 + 2}" x2="{x - 4}" y2="{BOX_H // 2 + 2}" stroke="#333"/>'
                f'<polygon points="{x - 4},{BOX_H // 2 - 2} {x},{BOX_H // 2 + 2} {x - 4},{BOX_H // 2 + 6}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _path_html(path):
    if "error" in path:
        return f"<p><b>{escape(str(path.get('name')))}</b>: could not be traced: {escape(path['error'])}</p>"
    packet = path.get("packet") or {}
    what = (
        f"{packet.get('protocol')} {packet.get('src')}:{packet.get('sport')} \u2192 "
        f"{packet.get('dst')}:{packet.get('dport')} ({packet.get('hook')})"
    )
    rows = [
        [
            escape(f"{s['table']}/{s['chain']}" + (f" #{s['rule_number']}" if s.get("rule_number") else " (policy)")),
            f"<code>{escape(str(s.get('rule')))}</code>",
            escape(str(s.get("packets", ""))),
            escape(str(s.get("action"))),
        ]
        for s in path.get("steps", [])
    ]
    return (
        f"<h4>{escape(path['name'])} <small>{escape(what)}</small></h4>{path_svg(path)}"
        f"<p><code>{escape(path.get('text', ''))}</code></p>"
        f"<details><summary>rules and counters</summary>{_table(['where', 'rule', 'pkts', 'action'], rows)}"
        "</details>"
    )


def html_node(report, dumps_dir="dumps"):
    node = report.get("node", {})
    summary = report.get("summary", {})
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Network audit {escape(str(node.get('hostname')))}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>Network audit of node {escape(str(node.get('hostname')))}</h1>",
        f"<p>Audited at {escape(str(node.get('audited_at')))}; worst finding {_sev(summary.get('worst_severity'))}; "
        f"{summary.get('sidecar_pods', 0)} sidecar pod(s), {summary.get('gateway_pods', 0)} gateway pod(s).</p>",
    ]
    findings = [(None, f) for f in report.get("findings", [])] + [
        (p.get("display"), f) for p in report.get("pods", []) for f in p.get("findings", []) if f["severity"] != "info"
    ]
    findings.sort(key=lambda pf: SEVERITY_ORDER.index(pf[1]["severity"]))
    out.append("<h2>Findings</h2>")
    out.append(
        _table(
            ["severity", "where", "code", "message"],
            [
                [_sev(f["severity"]), escape(pod or "node"), escape(f["code"]), escape(f["message"])]
                for pod, f in findings
            ],
        )
        if findings
        else "<p>No warnings or errors.</p>"
    )
    for pod in report.get("pods", []):
        out.append(f"<section><h2>{escape(pod.get('display', ''))} {_sev(pod.get('worst_severity'))}</h2>")
        out.append(
            f"<p>netns inode {pod.get('netns_inode')}, addresses {escape(', '.join(pod.get('ips') or []))}, "
            f"named from {escape(str(pod.get('named_by')))}; raw dumps: "
            + ", ".join(
                f"<a href='{escape(dumps_dir)}/{escape(d['file'])}'>{escape(k)}</a>"
                for k, d in (pod.get("dumps") or {}).items()
                if d.get("file")
            )
            + "</p>"
        )
        if pod.get("listening"):
            out.append(
                _table(
                    ["port", "address", "process", "purpose"],
                    [
                        [
                            s["port"],
                            escape(s["address"]),
                            escape(f"{s.get('process')} ({s.get('pid')})"),
                            escape(s.get("purpose", "")),
                        ]
                        for s in pod["listening"]
                    ],
                )
            )
        for path in pod.get("paths", []):
            out.append(_path_html(path))
        out.append("</section>")
    host = report.get("host") or {}
    if host.get("node_port_paths"):
        out.append("<section><h2>NodePort paths on the node</h2>")
        for path in host["node_port_paths"]:
            out.append(_path_html(path))
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
