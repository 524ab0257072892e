"""Turn an engine trace into the packet path a person reads, as chapter 7 of the tutorial draws it:

    PREROUTING → ISTIO_INBOUND → ISTIO_IN_REDIRECT → REDIRECT :15006 → envoy (pid 4242)

Each step keeps the rule text and the rule's packet/byte counters from the dump.
"""

ARROW = " \u2192 "


def _listener(pod, port):
    for sock in (pod or {}).get("listening", []):
        if sock["port"] == port and sock.get("process"):
            return f"{sock['process']} (pid {sock['pid']}) listening on :{port}"
    return None


def _enrich(steps, ruleset):
    out = []
    for step in steps:
        s = dict(step)
        if s.get("rule_number") is not None:
            chain = ruleset.chain(s["table"], s["chain"])
            if chain is not None and s["rule_number"] <= len(chain.rules):
                rule = chain.rules[s["rule_number"] - 1]
                s["packets"], s["bytes"] = rule.packets, rule.bytes
        else:
            chain = ruleset.chain(s["table"], s["chain"])
            if chain is not None:
                s["packets"], s["bytes"] = chain.packets, chain.bytes
        out.append(s)
    return out


def _path_text(steps, verdict, pod, pod_by_ip):
    # Chapter 7 of the tutorial reads the nat table: the chains a packet walks through, and where it ends.
    parts = []
    last_chain = None
    for s in steps:
        # kube-proxy's nftables table keeps its nat and filter chains together: its steps count too.
        if s["table"] not in ("nat", "kube-proxy") or s.get("rule_number") is None:
            continue
        if s["chain"] != last_chain:
            parts.append(s["chain"])
            last_chain = s["chain"]
        if s.get("action") == "RETURN":
            parts.append("RETURN")
            last_chain = None
    action = verdict.get("action")
    delivered = verdict.get("delivered")
    if action == "REDIRECT":
        parts.append(f"REDIRECT :{verdict.get('to_ports')}")
    elif action in ("DNAT", "TPROXY"):
        parts.append(f"{action} {verdict.get('to_destination')}")
    elif action in ("DROP", "REJECT"):
        parts.append(action)
    if delivered == "local":
        port = verdict.get("local_port")
        parts.append(_listener(pod, port) or f"local port :{port} (no listener found)")
    elif delivered == "forwarded":
        dest = verdict.get("destination") or ""
        host, _sep, port = dest.rpartition(":")
        target = (pod_by_ip or {}).get(host)
        if target:
            parts.append(f"pod {target['display']} ({dest})")
            listener = _listener(target, int(port)) if port.isdigit() else None
            if listener:
                parts.append(listener)
        else:
            parts.append(f"forwarded to {dest}")
    elif delivered == "sent":
        parts.append(f"sent to {verdict.get('destination')}")
    return ARROW.join(parts)


def describe_trace(trace, ruleset, pod, pod_by_ip=None):
    if "error" in trace:
        return {"name": trace.get("name"), "error": trace["error"]}
    result = {
        "name": trace["name"],
        "packet": trace.get("packet"),
        "unevaluated": trace.get("unevaluated", []),
        "assumptions": trace.get("assumptions", []),
    }
    if "expect" in trace:
        result["expect"], result["why"] = trace["expect"], trace["why"]
    branches = trace.get("branches") or []
    if branches:
        result["branches"] = []
        destinations = []
        for b in branches:
            steps = _enrich(b["steps"], ruleset)
            result["branches"].append(
                {
                    "probability": b["probability"],
                    "text": _path_text(steps, b["verdict"], pod, pod_by_ip),
                    "steps": steps,
                    "verdict": b["verdict"],
                }
            )
            if b["verdict"].get("to_destination"):
                destinations.append(b["verdict"]["to_destination"])
        best = max(result["branches"], key=lambda b: b["probability"])
        result.update(text=best["text"], steps=best["steps"], verdict=trace["verdict"], destinations=destinations)
        return result
    steps = _enrich(trace["steps"], ruleset)
    verdict = trace["verdict"]
    result.update(
        text=_path_text(steps, verdict, pod, pod_by_ip),
        steps=steps,
        verdict=verdict,
        destinations=[verdict["to_destination"]] if verdict.get("to_destination") else [],
    )
    return result
