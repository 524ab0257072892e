"""Sidecar captures narrowed the way the ``traffic.sidecar.istio.io/*`` annotations narrow them.

Shared by the unit tests (the audit on the generated rules) and the network-namespace tests (the
same rules in a real kernel). Each case names the annotations, the generator options that produce
the rules Istio's init would write for them, and the ``expected`` the audit is given. ``oracle``
says, from the annotations alone, whether a probe packet must reach the sidecar.
"""

import ipaddress
import itertools

APP_PORT = 8080

INBOUND = {
    "inbound *": {"inbound_ports": "*", "exclude_inbound_ports": [15020, 15021, 15090]},
    "inbound * excluding the app port": {"inbound_ports": "*", "exclude_inbound_ports": [APP_PORT, 15021]},
    "inbound ports 80,9080": {"inbound_ports": [80, 9080], "exclude_inbound_ports": []},
    "inbound ports 80,8080": {"inbound_ports": [80, APP_PORT], "exclude_inbound_ports": []},
    "no inbound capture": {"inbound_ports": [], "exclude_inbound_ports": []},
}
OUTBOUND = {
    "outbound *": {"outbound_include_cidrs": "*", "outbound_exclude_cidrs": []},
    "outbound * excluding 198.51.100.0/24": {
        "outbound_include_cidrs": "*",
        "outbound_exclude_cidrs": ["198.51.100.0/24"],
    },
    "include 10.0.0.0/8 excluding 10.0.0.0/24": {
        "outbound_include_cidrs": ["10.0.0.0/8"],
        "outbound_exclude_cidrs": ["10.0.0.0/24"],
    },
    "include 10.96.0.0/12 wholly excluded": {
        "outbound_include_cidrs": ["10.96.0.0/12"],
        "outbound_exclude_cidrs": ["10.0.0.0/8"],
    },
    "no outbound capture": {"outbound_include_cidrs": [], "outbound_exclude_cidrs": []},
}
PORTS = {
    "no excluded outbound ports": {"exclude_outbound_ports": []},
    "excluded outbound ports 80,8080,53": {"exclude_outbound_ports": [80, 8080, 53]},
}
EXTRAS = {
    "": {},
    "DNS capture": {"dns_capture": True},
    "TPROXY": {"mode": "TPROXY"},
}


def cases():
    """Every combination: (id, generator options, expected)."""
    out = []
    for parts in itertools.product(INBOUND.items(), OUTBOUND.items(), PORTS.items(), EXTRAS.items()):
        options = {}
        for _name, values in parts:
            options.update(values)
        name = ", ".join(n for n, _v in parts if n)
        out.append((name, options, expected_of(options)))
    return out


def expected_of(options):
    """What a user who set these annotations tells the audit."""
    expected = {
        "inbound_ports": options["inbound_ports"],
        "outbound_include_cidrs": options["outbound_include_cidrs"],
        "outbound_exclude_cidrs": options["outbound_exclude_cidrs"],
        "excluded_outbound_ports": options["exclude_outbound_ports"],
        "dns_capture": options.get("dns_capture", False),
        "mode": options.get("mode", "REDIRECT"),
        "app_port": APP_PORT,
    }
    if options["inbound_ports"] == "*":
        expected["excluded_inbound_ports"] = options["exclude_inbound_ports"]
    return expected


def oracle(options, packet):
    """True when the annotations say this packet must be captured by the sidecar."""
    port = packet["dport"]
    if packet["hook"] == "prerouting":
        inbound = options["inbound_ports"]
        if port == 15008:
            return False
        if inbound == "*":
            return port not in options["exclude_inbound_ports"]
        return port in inbound
    if packet["uid"] == 1337 or packet["gid"] == 1337 or packet["dst"] in ("127.0.0.1", "::1"):
        return False
    if port in options["exclude_outbound_ports"]:
        return False
    if packet["protocol"] == "udp" or port == 53:
        return bool(options.get("dns_capture"))
    dst = ipaddress.ip_address(packet["dst"])
    if any(dst in ipaddress.ip_network(c) for c in options["outbound_exclude_cidrs"]):
        return False
    include = options["outbound_include_cidrs"]
    return include == "*" or any(dst in ipaddress.ip_network(c) for c in include)


def reaches_sidecar(trace):
    verdict = trace["verdict"]
    return verdict["action"] in ("REDIRECT", "TPROXY") and verdict.get("to_ports") in (15001, 15006, 15053)
