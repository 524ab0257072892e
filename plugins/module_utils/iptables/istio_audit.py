"""Judge whether a ruleset captures traffic the way Istio's istio-init means it to.

:func:`audit` (ruleset, expected=None, local_addresses=None) returns a dict with

* ``capture``: what the rules do (``enabled``, ``mode``, ``inbound_port``, ``outbound_port``,
  ``proxy_uids``, ``proxy_gids``, ``inbound_ports`` (``"*"`` or a list), ``excluded_inbound_ports``,
  ``outbound_include_cidrs`` (``"*"`` or a list), ``outbound_exclude_cidrs``,
  ``excluded_outbound_ports``, ``dns_capture``, ``dns_port``), read from the ISTIO_* chains;
* ``traces``: the standard probes run through the tracer (inbound to an application port, inbound
  to an excluded port, outbound from the application, outbound from the proxy's uid, loopback,
  and DNS when it is captured or expected);
* ``findings``: ``code``, ``severity`` (error | warning | info) and ``message``, from the shape of
  the rules, from the probes' verdicts and from ``expected``;
* ``kube_proxy``: :func:`~.kube_proxy.kube_proxy_summary` when the rules are a node's.

The tunnel port 15008 that istio-init always exempts is not listed in ``excluded_inbound_ports``.
"""

import ipaddress

from ansible_collections.meshops.istio.plugins.module_utils.iptables.capture_probes import (
    CAPTURED,
    NOT_CAPTURED,
    TUNNEL_PORT,
    IdSet,
    standard_probes,
)
from ansible_collections.meshops.istio.plugins.module_utils.iptables.kube_proxy import kube_proxy_summary
from ansible_collections.meshops.istio.plugins.module_utils.iptables.model import no_cyclic_gc
from ansible_collections.meshops.istio.plugins.module_utils.iptables.options import (
    MAX_ID,
    validate_expected,
    validate_local_addresses,
)
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer


def _owner_id(rule, cond):
    """The uid/gid of an owner match as a number, or a range as iptables-save prints it
    (``"1337-1340"``); anything else is a ParseError naming the file and the line."""
    low, sep, high = cond.value.partition("-")
    if low.isdigit() and (not sep or high.isdigit()):
        first, last = int(low), int(high) if sep else int(low)
        if first <= last <= MAX_ID:
            return f"{first}-{last}" if sep else first
    raise rule.malformed(f"owner --{cond.option} {cond.value!r} is not an id (0 to {MAX_ID}) or a range of ids")


def _reachable(table, start):
    """Chains reachable by jumps/gotos from the built-in chain ``start`` of ``table``."""
    seen = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        chain = table.chains.get(name)
        if chain is None:
            continue
        for rule in chain.rules:
            if rule.target in table.chains:
                todo.append(rule.target)
    return seen


def _conds(rule, ignore=("comment",)):
    return [c for c in rule.matches if c.module not in ignore]


def _ports_of(rule):
    """Destination ports named by a rule (--dport or multiport --dports), non-negated, else None."""
    ports = []
    for cond in rule.matches:
        if cond.negated:
            continue
        if cond.option in ("dport", "destination-port", "dports", "destination-ports"):
            for part in cond.value.split(","):
                ports.append(int(part) if part.isdigit() else part)
    return ports or None


def _only(rule, allowed):
    """True when every condition of the rule is one of ``allowed`` (module, option) pairs."""
    for cond in _conds(rule):
        if (cond.module, cond.option) not in allowed and (cond.module, "*") not in allowed:
            return False
    return True


_PROTO = {("ip", "protocol")}
_PORT_CONDS = _PROTO | {
    ("tcp", "dport"),
    ("udp", "dport"),
    ("tcp", "destination-port"),
    ("udp", "destination-port"),
    ("multiport", "dports"),
    ("multiport", "destination-ports"),
}


def _port(rule, option, default=None):
    """The first port of a target option (``15001`` or ``15001-15002``); malformed: ParseError."""
    text = rule.target_option(option)
    if text is None:
        return default
    try:
        port = int(text.split("-")[0])
    except ValueError as exc:
        raise rule.malformed(f"--{option} {text!r} is not a port", exc) from None
    if not 0 <= port <= 65535:
        raise rule.malformed(f"--{option} {text!r} is out of range (0-65535)")
    return port


def _network(rule, text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise rule.malformed(f"{text!r} is not an address or CIDR", exc) from None


def summarize_capture(ruleset):
    nat = ruleset.table("nat")
    mangle = ruleset.table("mangle")
    capture = {
        "enabled": False,
        "mode": None,
        "inbound_port": None,
        "outbound_port": None,
        "proxy_uids": [],
        "proxy_gids": [],
        "inbound_ports": [],
        "excluded_inbound_ports": [],
        "outbound_include_cidrs": [],
        "outbound_exclude_cidrs": [],
        "excluded_outbound_ports": [],
        "dns_capture": False,
        "dns_port": None,
        "inbound_enabled": False,
        "outbound_enabled": False,
        "istio_chains": [],
    }
    for table in ruleset.tables.values():
        for name in table.chains:
            if name.startswith("ISTIO_"):
                capture["istio_chains"].append(f"{table.name}/{name}")
    tproxy_rule = None
    if mangle is not None:
        for rule in mangle.chains.get("ISTIO_TPROXY", None).rules if "ISTIO_TPROXY" in mangle.chains else []:
            if rule.target == "TPROXY":
                tproxy_rule = rule
    capture["mode"] = "TPROXY" if tproxy_rule is not None else ("REDIRECT" if capture["istio_chains"] else None)
    if nat is not None and "ISTIO_IN_REDIRECT" in nat.chains:
        for rule in nat.chains["ISTIO_IN_REDIRECT"].rules:
            if rule.target == "REDIRECT" and rule.target_option("to-ports"):
                capture["inbound_port"] = _port(rule, "to-ports")
    if tproxy_rule is not None and tproxy_rule.target_option("on-port"):
        capture["inbound_port"] = _port(tproxy_rule, "on-port")
    if nat is not None and "ISTIO_REDIRECT" in nat.chains:
        for rule in nat.chains["ISTIO_REDIRECT"].rules:
            if rule.target == "REDIRECT" and rule.target_option("to-ports"):
                capture["outbound_port"] = _port(rule, "to-ports")

    # Inbound: ISTIO_INBOUND of nat (REDIRECT) or mangle (TPROXY).
    inbound_table = mangle if capture["mode"] == "TPROXY" else nat
    capture_targets = ("ISTIO_TPROXY",) if capture["mode"] == "TPROXY" else ("ISTIO_IN_REDIRECT",)
    if inbound_table is not None and "ISTIO_INBOUND" in inbound_table.chains:
        capture["inbound_enabled"] = "ISTIO_INBOUND" in _reachable(inbound_table, "PREROUTING") - {"PREROUTING"}
        listed = []
        wildcard = False
        for rule in inbound_table.chains["ISTIO_INBOUND"].rules:
            ports = _ports_of(rule)
            if rule.target in capture_targets:
                if ports:
                    listed.extend(ports)
                elif _only(rule, _PROTO):
                    wildcard = True
            elif rule.target == "RETURN" and ports and not wildcard and _only(rule, _PORT_CONDS):
                capture["excluded_inbound_ports"].extend(p for p in ports if p != TUNNEL_PORT)
        capture["inbound_ports"] = "*" if wildcard else listed
        if not wildcard:
            capture["excluded_inbound_ports"] = []

    # Outbound: ISTIO_OUTPUT of nat.
    if nat is not None and "ISTIO_OUTPUT" in nat.chains:
        capture["outbound_enabled"] = "ISTIO_OUTPUT" in _reachable(nat, "OUTPUT") - {"OUTPUT"}
        include = []
        for rule in nat.chains["ISTIO_OUTPUT"].rules:
            conds = _conds(rule)
            if rule.target == "RETURN" and conds and all(c.module == "owner" and not c.negated for c in conds):
                for c in conds:
                    if c.option == "uid-owner":
                        capture["proxy_uids"].append(_owner_id(rule, c))
                    elif c.option == "gid-owner":
                        capture["proxy_gids"].append(_owner_id(rule, c))
            elif (
                rule.target == "RETURN"
                and len(conds) == 1
                and conds[0].option == "destination"
                and not conds[0].negated
            ):
                net = _network(rule, conds[0].value)
                if not (net.num_addresses == 1 and net.network_address.is_loopback):
                    capture["outbound_exclude_cidrs"].append(str(net))
            elif rule.target == "RETURN" and _ports_of(rule) and _only(rule, _PORT_CONDS):
                for port in _ports_of(rule):
                    if port not in capture["excluded_outbound_ports"]:
                        capture["excluded_outbound_ports"].append(port)
            elif rule.target == "ISTIO_REDIRECT":
                if not conds:
                    include = "*"
                elif include != "*" and len(conds) == 1 and conds[0].option == "destination" and not conds[0].negated:
                    include.append(str(_network(rule, conds[0].value)))
        capture["outbound_include_cidrs"] = include
        # DNS: a REDIRECT of udp port 53 reachable from nat OUTPUT.
        for name in _reachable(nat, "OUTPUT"):
            chain = nat.chains.get(name)
            for rule in chain.rules if chain else []:
                if (
                    rule.target == "REDIRECT"
                    and 53 in (_ports_of(rule) or [])
                    and any(c.option == "protocol" and c.value == "udp" for c in rule.matches)
                ):
                    capture["dns_capture"] = True
                    capture["dns_port"] = _port(rule, "to-ports" if rule.target_option("to-ports") else "to-port", 53)
    capture["enabled"] = capture["inbound_enabled"] or capture["outbound_enabled"]
    return capture


def _dns_servers(ruleset):
    nat = ruleset.table("nat")
    servers = []
    if nat is not None and "ISTIO_OUTPUT_DNS" in nat.chains:
        for rule in nat.chains["ISTIO_OUTPUT_DNS"].rules:
            for c in rule.matches:
                if c.option == "destination" and not c.negated:
                    servers.append(c.value.split("/")[0])
    return servers


def _finding(findings, code, severity, message):
    findings.append({"code": code, "severity": severity, "message": message})


def _compare_expected(capture, expected, findings):
    def mismatch(field, want, have, hint):
        _finding(findings, "EXPECTED_MISMATCH", "error", f"expected {field} {want}, the rules have {have}: {hint}")

    if expected.get("proxy_uid") is not None and expected["proxy_uid"] not in IdSet(capture["proxy_uids"]):
        mismatch(
            "proxy_uid",
            expected["proxy_uid"],
            capture["proxy_uids"] or "no uid exemption",
            "the proxy's own traffic would be captured again",
        )
    if expected.get("proxy_gid") is not None and expected["proxy_gid"] not in IdSet(capture["proxy_gids"]):
        mismatch(
            "proxy_gid",
            expected["proxy_gid"],
            capture["proxy_gids"] or "no gid exemption",
            "the proxy's own traffic would be captured again",
        )
    for key in ("inbound_port", "outbound_port", "mode", "dns_port"):
        if expected.get(key) is not None and expected[key] != capture[key]:
            mismatch(key, expected[key], capture[key], "the sidecar listens elsewhere than the rules send traffic")
    if expected.get("dns_capture") is not None and bool(expected["dns_capture"]) != capture["dns_capture"]:
        mismatch(
            "dns_capture",
            expected["dns_capture"],
            capture["dns_capture"],
            "DNS queries are handled differently than configured",
        )

    def norm(value):
        if value == "*" or value is None:
            return value
        return sorted(str(v) for v in value)

    for key in (
        "inbound_ports",
        "excluded_inbound_ports",
        "outbound_include_cidrs",
        "outbound_exclude_cidrs",
        "excluded_outbound_ports",
    ):
        if expected.get(key) is None:
            continue
        want = expected[key]
        if key.endswith("cidrs") and want != "*":
            want = [str(ipaddress.ip_network(c, strict=False)) for c in want]
        if norm(want) != norm(capture[key]):
            mismatch(key, want, capture[key], "traffic is captured differently than configured")


def audit(ruleset, expected=None, local_addresses=None, both_backends=False, where=None):
    """``both_backends``: the reader found rules in both iptables-nft and iptables-legacy (a
    structured field of the read, not a warning's wording); ``where`` names what was read."""
    with no_cyclic_gc():
        return _audit(ruleset, expected, local_addresses, both_backends, where)


def _audit(ruleset, expected, local_addresses, both_backends, where):
    expected = validate_expected(expected)
    local_addresses = validate_local_addresses(local_addresses)
    capture = summarize_capture(ruleset)
    findings = []
    if both_backends:
        _finding(
            findings,
            "BOTH_BACKENDS",
            "warning",
            f"both iptables-nft and iptables-legacy hold {ruleset.family} rules"
            + (f" in the {where}" if where else "")
            + ": the kernel runs both sets; the audit judges the nft rules",
        )
    kube = kube_proxy_summary(ruleset)
    traces = []
    if not capture["istio_chains"]:
        _finding(
            findings,
            "NO_CAPTURE_RULES",
            "error" if expected else "info",
            f"No Istio capture chains (ISTIO_*) in the {ruleset.family} rules: this is not a sidecar's "
            "network namespace, or istio-init (or istio-cni) did not run",
        )
        return _result(capture, findings, traces, kube, None)

    nat = ruleset.table("nat")
    inbound_table = ruleset.table("mangle") if capture["mode"] == "TPROXY" else nat
    if inbound_table is not None and "ISTIO_INBOUND" in inbound_table.chains and not capture["inbound_enabled"]:
        capturing = any(
            r.target in ("ISTIO_IN_REDIRECT", "ISTIO_TPROXY") for r in inbound_table.chains["ISTIO_INBOUND"].rules
        )
        if capturing:
            _finding(
                findings,
                "INBOUND_JUMP_MISSING",
                "error",
                f"PREROUTING ({inbound_table.name} table) never jumps to ISTIO_INBOUND: inbound traffic "
                "bypasses the sidecar",
            )
    if nat is not None and "ISTIO_OUTPUT" in nat.chains and not capture["outbound_enabled"]:
        _finding(
            findings,
            "OUTPUT_JUMP_MISSING",
            "error",
            "OUTPUT (nat table) never jumps to ISTIO_OUTPUT: outbound traffic bypasses the sidecar",
        )
    if capture["outbound_enabled"] and not capture["proxy_uids"] and not capture["proxy_gids"]:
        _finding(
            findings,
            "PROXY_NOT_EXEMPT",
            "error",
            "ISTIO_OUTPUT has no '-m owner --uid-owner <proxy uid> -j RETURN' (nor a gid one): the "
            "proxy's own outbound connections are redirected back to the proxy, a loop",
        )
    if (
        nat is not None
        and "ISTIO_IN_REDIRECT" in nat.chains
        and capture["mode"] == "REDIRECT"
        and capture["inbound_port"] is None
    ):
        _finding(
            findings,
            "INBOUND_REDIRECT_MISSING",
            "error",
            "ISTIO_IN_REDIRECT holds no REDIRECT rule: captured inbound traffic goes nowhere",
        )
    if not capture["dns_capture"]:
        _finding(
            findings,
            "DNS_NOT_CAPTURED",
            "info",
            "DNS queries are not redirected to the proxy's DNS port (DNS capture is off)",
        )
    _compare_expected(capture, expected, findings)

    locals_ = list(local_addresses or [])
    probes, pod_ip, gaps = standard_probes(ruleset, capture, expected, locals_, _dns_servers(ruleset))
    for gap in gaps:
        _finding(findings, "NO_PROBE_DESTINATION", "info", gap)
    if pod_ip not in locals_:
        locals_.append(pod_ip)
    tracer = Tracer(ruleset, local_addresses=locals_)
    by_name = {}
    for probe in probes:
        packet = {k: v for k, v in probe.items() if k not in ("expect", "why")}
        trace = tracer.trace(packet)
        trace["expect"], trace["why"] = probe["expect"], probe["why"]
        traces.append(trace)
        by_name[probe["name"]] = trace
    _judge_probes(capture, probes, by_name, findings)
    if not any(f["severity"] == "error" for f in findings):
        _finding(findings, "CAPTURE_OK", "info", _capture_ok_message(capture, probes))
    return _result(capture, findings, traces, kube, pod_ip)


def _capture_ok_message(capture, probes):
    captured = [p for p in probes if p["expect"] == CAPTURED]
    left = [p for p in probes if p["expect"] == NOT_CAPTURED]
    parts = []
    for probe in captured:
        parts.append(f"{probe['why']} is captured")
    for probe in left:
        parts.append(f"{probe['why']} is left alone")
    return (
        f"Sidecar capture works as its configuration says ({capture['mode']}, inbound to "
        f"{capture['inbound_port']}, outbound to {capture['outbound_port']}): " + "; ".join(parts)
    )


def _ends(trace):
    verdict = trace["verdict"]
    return verdict["action"], verdict.get("to_ports")


def _captured(trace, port):
    """Whether the trace ends at the sidecar's ``port`` (REDIRECT or TPROXY)."""
    action, to_port = _ends(trace)
    return action in ("REDIRECT", "TPROXY") and to_port == port


def _diverted(trace):
    """Whether any outcome of the trace is taken away from its destination by a capture."""
    action, _port = _ends(trace)
    return action in ("REDIRECT", "TPROXY", "MULTIPLE")


def _judge_probes(capture, probes, traces, findings):
    """Each probe against what the configuration says must happen to it (``expect``)."""
    for probe in probes:
        trace = traces[probe["name"]]
        name, expect, why = probe["name"], probe["expect"], probe["why"]
        packet = trace["packet"]
        action, port = _ends(trace)
        if name.startswith("inbound"):
            if expect == CAPTURED and not _captured(trace, capture["inbound_port"]):
                _finding(
                    findings,
                    "INBOUND_NOT_CAPTURED",
                    "error",
                    f"inbound traffic to port {packet['dport']} ({why}) is not captured although the capture's "
                    f"configuration includes it: it ends with {action} instead of reaching the sidecar's inbound "
                    f"port {capture['inbound_port']}",
                )
            elif expect == NOT_CAPTURED and _diverted(trace):
                _finding(
                    findings,
                    "EXCLUDED_PORT_CAPTURED",
                    "error",
                    f"inbound traffic to port {packet['dport']} ({why}) is captured by the sidecar (port {port}) "
                    "although the capture's configuration leaves it alone",
                )
        elif name == "outbound_proxy":
            if _diverted(trace):
                _finding(
                    findings,
                    "PROXY_TRAFFIC_CAPTURED",
                    "error",
                    f"outbound traffic from the proxy (uid {packet['uid']}) is redirected to port {port}: "
                    "the proxy would loop to itself",
                )
        elif name == "loopback":
            if _diverted(trace):
                _finding(
                    findings,
                    "LOOPBACK_CAPTURED",
                    "warning",
                    f"loopback traffic from the application to {packet['dst']}:{packet['dport']} is redirected "
                    f"to port {port}",
                )
        elif name == "dns_from_app":
            if expect == CAPTURED and not _captured(trace, capture["dns_port"]):
                _finding(
                    findings,
                    "DNS_NOT_CAPTURED",
                    "error",
                    f"the application's DNS query to {packet['dst']}:53 is not redirected to {capture['dns_port']}",
                )
            elif expect == NOT_CAPTURED and capture["dns_capture"] and _diverted(trace):
                _finding(
                    findings,
                    "EXCLUDED_PORT_CAPTURED",
                    "error",
                    f"the application's DNS query to {packet['dst']}:53 is redirected to port {port} although "
                    "the capture's configuration leaves port 53 alone",
                )
        elif expect == CAPTURED and not _captured(trace, capture["outbound_port"]):
            _finding(
                findings,
                "OUTBOUND_NOT_CAPTURED",
                "error",
                f"outbound traffic from the application to {packet['dst']}:{packet['dport']} ({why}) is not "
                f"captured although the capture's configuration includes it: it ends with {action} instead of "
                f"reaching port {capture['outbound_port']}",
            )
        elif expect == NOT_CAPTURED and _diverted(trace):
            _finding(
                findings,
                "EXCLUDED_DESTINATION_CAPTURED",
                "error",
                f"outbound traffic from the application to {packet['dst']}:{packet['dport']} ({why}) is "
                f"redirected to port {port} although the capture's configuration leaves it alone",
            )
    for name, trace in traces.items():
        if trace["unevaluated"]:
            _finding(
                findings,
                "UNEVALUATED_RULES",
                "info",
                f"probe {name}: {len(trace['unevaluated'])} rule(s) could not be evaluated; both outcomes "
                "are listed in the trace's branches",
            )


def _result(capture, findings, traces, kube, pod_ip):
    capture = dict(capture)
    return {"capture": capture, "findings": findings, "traces": traces, "kube_proxy": kube, "probe_pod_ip": pod_ip}
