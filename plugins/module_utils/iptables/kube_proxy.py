"""Summarise a node's kube-proxy (iptables mode) services from its nat table.

:func:`kube_proxy_summary` (ruleset) returns ``None`` when the nat table has no KUBE-SERVICES
chain, else a list of services, one per ``namespace/name:port`` (taken from kube-proxy's
comments), each with ``protocol``, ``cluster_ip``, ``port``, ``node_port``, ``chain`` and
``endpoints`` (``address``, ``chain``, ``probability``). Endpoint probabilities are the chance a
new connection picks that endpoint: ``p_i * prod(1 - p_j, j < i)`` over the
``statistic --mode random`` rules of the KUBE-SVC chain.
"""

import re

from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import split_tokens

_CLUSTER_IP = re.compile(r"^(?P<name>\S+) cluster IP$")


_SPEC_OPTION = {
    ("comment", "comment"): "--comment",
    ("ip", "protocol"): "-p",
    ("ip", "destination"): "-d",
    ("statistic", "mode"): "--mode",
    ("statistic", "probability"): "--probability",
    ("tcp", "dport"): "--dport",
    ("udp", "dport"): "--dport",
    ("sctp", "dport"): "--dport",
}
_SPEC_CACHE = {}


def _spec_options(rule):
    """Non-negated ``option -> value`` pairs of a rule, read from its text in one pass without
    building every match (kube-proxy writes iptables-save's short forms). Cached per rule."""
    options = _SPEC_CACHE.get(id(rule))
    if options is None:
        tokens = split_tokens(rule.spec)
        options = {}
        negated = False
        last = len(tokens) - 1
        for index, token in enumerate(tokens):
            if token == "!":
                negated = True
                continue
            if token[:1] == "-" and index < last and not negated and token not in options:
                options[token] = tokens[index + 1]
            negated = False
        _SPEC_CACHE[id(rule)] = options
    return options


def _value(rule, module, options):
    flag = _SPEC_OPTION.get((module, options[0]))
    if flag is not None and rule._matches is None:
        value = _spec_options(rule).get(flag)
        if value is not None:
            return value
    for cond in rule.matches:
        if cond.module == module and cond.option in options and not cond.negated:
            return cond.value
    return None


def _word_after(text, key):
    start = text.find(key)
    if start < 0:
        return None
    start += len(key)
    end = text.find(" ", start)
    return text[start:] if end < 0 else text[start:end]


def _statistic(rule):
    """``(mode, probability)`` of a KUBE-SVC rule's statistic match. kube-proxy writes one
    endpoint rule per endpoint, so this is the audit's innermost loop: the values are found in
    the text after the quoted comment without splitting the rule, unless something there is
    negated or the matches were already parsed (then the general path answers)."""
    if rule._matches is None:
        spec = rule.spec
        cut = spec.rfind('"') + 1
        head, tail = spec[:cut], spec[cut:]
        if "!" not in tail and "statistic" not in head:
            if "-m statistic" not in tail:
                return None, None
            return _word_after(tail, "--mode "), _word_after(tail, "--probability ")
    return _value(rule, "statistic", ("mode",)), _value(rule, "statistic", ("probability",))


def _comment(rule):
    return _value(rule, "comment", ("comment",))


def _svc_chain(nat, chain_name, seen=None):
    """Follow KUBE-EXT / KUBE-FW / KUBE-XLB chains to the KUBE-SVC chain they hand over to."""
    seen = seen or set()
    if chain_name.startswith("KUBE-SVC-") or chain_name in seen:
        return chain_name
    seen.add(chain_name)
    chain = nat.chains.get(chain_name)
    if chain is None:
        return None
    for rule in chain.rules:
        if rule.target and rule.target.startswith(("KUBE-SVC-", "KUBE-SVL-")):
            return rule.target
    for rule in chain.rules:
        if rule.target and rule.target.startswith(("KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-")):
            found = _svc_chain(nat, rule.target, seen)
            if found:
                return found
    return None


def _endpoints(nat, svc_chain):
    chain = nat.chains.get(svc_chain)
    if chain is None:
        return []
    remaining = 1.0
    endpoints = []
    for rule in chain.rules:
        if not (rule.target and rule.target.startswith("KUBE-SEP-")):
            continue
        stat_mode, probability_text = _statistic(rule)
        if stat_mode == "random":
            try:
                p = float(probability_text or 1.0)
            except ValueError as exc:
                raise rule.malformed("statistic --probability is not a number", exc) from None
        elif stat_mode is None:
            p = 1.0
        else:
            p = None
        address = None
        sep = nat.chains.get(rule.target)
        if sep is not None:
            for sep_rule in sep.rules:
                if sep_rule.target == "DNAT":
                    address = sep_rule.target_option("to-destination")
                    break
        if p is None:
            probability = None
        else:
            probability = remaining * p
            remaining *= 1.0 - p
        endpoints.append(
            {
                "address": address,
                "chain": rule.target,
                "probability": None if probability is None else round(probability, 6),
            }
        )
        if p == 1.0:
            break  # later endpoints are unreachable
    return endpoints


def kube_proxy_summary(ruleset):
    try:
        return _summary(ruleset)
    finally:
        _SPEC_CACHE.clear()  # keyed by id(): valid only while the rules are alive


def _summary(ruleset):
    nat = ruleset.table("nat")
    if nat is None or "KUBE-SERVICES" not in nat.chains:
        return None
    services = {}

    def entry(name):
        return services.setdefault(
            name,
            {
                "name": name,
                "protocol": None,
                "cluster_ip": None,
                "port": None,
                "node_port": None,
                "chain": None,
                "endpoints": [],
            },
        )

    for rule in nat.chains["KUBE-SERVICES"].rules:
        comment = _comment(rule) or ""
        match = _CLUSTER_IP.match(comment)
        if not match or not rule.target:
            continue
        svc = entry(match.group("name"))
        svc["protocol"] = _value(rule, "ip", ("protocol",))
        dst = _value(rule, "ip", ("destination",))
        svc["cluster_ip"] = dst.split("/")[0] if dst else None
        port = _value(rule, svc["protocol"] or "tcp", ("dport", "destination-port"))
        svc["port"] = int(port) if port and port.isdigit() else port
        svc["chain"] = _svc_chain(nat, rule.target)
    nodeports = nat.chains.get("KUBE-NODEPORTS")
    if nodeports is not None:
        for rule in nodeports.rules:
            comment = _comment(rule)
            if not comment or not rule.target:
                continue
            name = comment.split(" ")[0]
            svc = entry(name)
            proto = _value(rule, "ip", ("protocol",))
            svc["protocol"] = svc["protocol"] or proto
            port = _value(rule, proto or "tcp", ("dport", "destination-port"))
            svc["node_port"] = int(port) if port and port.isdigit() else port
            svc["chain"] = svc["chain"] or _svc_chain(nat, rule.target)
    for svc in services.values():
        if svc["chain"]:
            svc["endpoints"] = _endpoints(nat, svc["chain"])
    return sorted(services.values(), key=lambda s: s["name"])
