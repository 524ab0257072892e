"""The standard probes of a sidecar capture audit, each with what the capture's configuration says
must happen to it.

A capture narrowed the way the ``traffic.sidecar.istio.io/*`` annotations narrow it (include and
exclude CIDRs, inbound ports ``*`` or a list, excluded inbound and outbound ports, the proxy's
uids and gids, DNS capture) deliberately leaves some traffic alone. The probes therefore pick
destinations that the configuration says must be captured (inside the include ranges, outside
every exclusion) and destinations it says must not be, and each probe carries that expectation
(``expect``: ``captured`` or ``not captured``, and ``why``). Where no such destination exists
(an include range wholly inside the exclusions) the probe is left out and a ``gap`` says so: the
audit reports it, it does not guess.

The configuration is the ``expected`` values the user gave, else what the rules declare
(:func:`~.istio_audit.summarize_capture`).
"""

import ipaddress

TUNNEL_PORT = 15008
CAPTURED = "captured"
NOT_CAPTURED = "not captured"

_PLACEHOLDER_POD = {"ipv4": "192.0.2.10", "ipv6": "2001:db8::10"}
_PLACEHOLDER_PEER = {"ipv4": "192.0.2.200", "ipv6": "2001:db8::200"}
_PLACEHOLDER_DNS = {"ipv4": "198.51.100.53", "ipv6": "2001:db8:1::53"}
_LOOPBACK = {"ipv4": "127.0.0.1", "ipv6": "::1"}
# Documentation ranges first (never a real peer), then the whole space when they are excluded.
_REMOTE_CANDIDATES = {
    "ipv4": ("198.51.100.10/32", "203.0.113.10/32", "192.0.2.100/32", "0.0.0.0/0"),
    "ipv6": ("2001:db8:1::10/128", "2001:db8:2::10/128", "::/0"),
}
_PORT_CANDIDATES = (80, 8080, 9080, 8000, 443, 3000, 5000)


class IdSet:
    """The uids (or gids) an owner match exempts: numbers, and ranges ``"low-high"`` as
    iptables-save prints them (``--uid-owner 1337-1340``); ``in`` covers the ranges."""

    def __init__(self, values=()):
        self.values = []
        for value in values:
            self.add(value)

    def add(self, value):
        self.values.append(value)

    def __contains__(self, ident):
        for value in self.values:
            low, high = id_bounds(value)
            if low <= ident <= high:
                return True
        return False


def id_bounds(value):
    """(low, high) of a uid/gid or of a range ``"low-high"`` (as the audit stores them)."""
    if isinstance(value, int):
        return value, value
    low, _sep, high = str(value).partition("-")
    return int(low), int(high)


def first_id(values, default):
    """The first id the owner matches name (the low end of a range), or ``default``."""
    return id_bounds(values[0])[0] if values else default


class CaptureConfig:
    """What the capture is configured to do: ``expected`` where the user said, else the rules."""

    def __init__(self, capture, expected, family):
        def pick(key, rules_key=None):
            value = expected.get(key)
            return value if value is not None else capture[rules_key or key]

        self.family = family
        self.version = 6 if family == "ipv6" else 4
        self.inbound_enabled = capture["inbound_enabled"]
        self.outbound_enabled = capture["outbound_enabled"]
        self.inbound_port = capture["inbound_port"]
        self.outbound_port = capture["outbound_port"]
        self.dns_port = capture["dns_port"]
        self.inbound_ports = pick("inbound_ports")
        self.excluded_inbound_ports = {int(p) for p in pick("excluded_inbound_ports") if str(p).isdigit()}
        self.excluded_outbound_ports = {int(p) for p in pick("excluded_outbound_ports") if str(p).isdigit()}
        self.include = self._nets(pick("outbound_include_cidrs"))
        self.exclude = self._nets(pick("outbound_exclude_cidrs")) or []
        self.proxy_uids = IdSet(capture["proxy_uids"])
        self.proxy_gids = IdSet(capture["proxy_gids"])
        if expected.get("proxy_uid") is not None:
            self.proxy_uids.add(expected["proxy_uid"])
        if expected.get("proxy_gid") is not None:
            self.proxy_gids.add(expected["proxy_gid"])
        self.dns_capture = bool(capture["dns_capture"])

    def _nets(self, value):
        if value == "*":
            return "*"
        nets = []
        for cidr in value or []:
            net = ipaddress.ip_network(str(cidr), strict=False)
            if net.version == self.version:
                nets.append(net)
        return nets

    # -- what the configuration says ---------------------------------------------------------
    def inbound_captured(self, port):
        if not self.inbound_enabled or port == TUNNEL_PORT:
            return False
        if self.inbound_ports == "*":
            return port not in self.excluded_inbound_ports
        return port in {int(p) for p in self.inbound_ports if str(p).isdigit()}

    def excluded_destination(self, address):
        address = ipaddress.ip_address(address)
        return address.is_loopback or any(address in net for net in self.exclude)

    def included_destination(self, address):
        address = ipaddress.ip_address(address)
        return self.include == "*" or any(address in net for net in self.include)

    def outbound_captured(self, address, port, uid, gid):
        return (
            self.outbound_enabled
            and uid not in self.proxy_uids
            and gid not in self.proxy_gids
            and port not in self.excluded_outbound_ports
            and not self.excluded_destination(address)
            and self.included_destination(address)
        )

    # -- choosing probe values ---------------------------------------------------------------
    def captured_destination(self, avoid=()):
        """An address inside the include ranges and outside every exclusion, or None."""
        ranges = self.include
        if ranges == "*":
            ranges = [ipaddress.ip_network(c) for c in _REMOTE_CANDIDATES[self.family]]
        avoid = {ipaddress.ip_address(a) for a in avoid}
        for net in ranges:
            for piece in _subtract(net, self.exclude):
                address = _host_of(piece, avoid)
                if address is not None:
                    return str(address)
        return None

    def uncaptured_destination(self, avoid=()):
        """An address the configuration leaves alone (excluded, or outside every include range)."""
        avoid = {ipaddress.ip_address(a) for a in avoid}
        for net in self.exclude:
            address = _host_of(net, avoid)
            if address is not None:
                return str(address), f"inside the excluded range {net}"
        if self.include != "*":
            for cidr in _REMOTE_CANDIDATES[self.family]:
                for piece in _subtract(ipaddress.ip_network(cidr), self.include):
                    address = _host_of(piece, avoid)
                    if address is not None:
                        return str(address), "outside every included range"
        return None, None

    def free_uid(self, wanted):
        uid = wanted
        while uid in self.proxy_uids or uid in self.proxy_gids:
            uid += 1
        return uid

    def captured_outbound_port(self):
        return next((p for p in _PORT_CANDIDATES if p not in self.excluded_outbound_ports), None) or next(
            (p for p in range(1024, 65536) if p not in self.excluded_outbound_ports), None
        )

    def captured_inbound_port(self):
        if self.inbound_ports != "*":
            listed = [int(p) for p in self.inbound_ports if str(p).isdigit() and self.inbound_captured(int(p))]
            return listed[0] if listed else None
        return next((p for p in _PORT_CANDIDATES if self.inbound_captured(p)), None) or next(
            (p for p in range(1024, 65536) if self.inbound_captured(p)), None
        )

    def uncaptured_inbound_port(self, expected_excluded):
        """A port the configuration leaves alone: an excluded one, or one outside the list."""
        for port in list(expected_excluded or []) + sorted(self.excluded_inbound_ports):
            if str(port).isdigit() and not self.inbound_captured(int(port)):
                return int(port), "an excluded inbound port"
        if self.inbound_ports != "*":
            port = next((p for p in _PORT_CANDIDATES if not self.inbound_captured(p) and p != TUNNEL_PORT), None)
            if port is not None:
                return port, "not among the captured inbound ports"
        return None, None


def _subtract(net, exclusions):
    """The parts of ``net`` outside every network of ``exclusions`` (a list), largest first."""
    pieces = [net]
    for ex in exclusions or []:
        nxt = []
        for piece in pieces:
            if piece.version != ex.version or not piece.overlaps(ex):
                nxt.append(piece)
            elif ex.subnet_of(piece):
                nxt.extend(piece.address_exclude(ex))
            # else the piece lies inside the exclusion: dropped
        pieces = nxt
    return sorted(pieces, key=lambda n: (n.prefixlen, n.network_address))


def _host_of(net, avoid):
    """A usable host address of ``net`` (not loopback, unspecified, multicast, nor in ``avoid``)."""
    candidates = [net.network_address + 1, net.network_address] if net.num_addresses > 2 else list(net)
    if net.prefixlen == 0 or (net.version == 4 and net.network_address.packed[0] == 0):
        candidates = [ipaddress.ip_address(int(net.network_address) + (1 << (net.max_prefixlen - 8)) + 1)]
    for address in candidates:
        if address in net and not (
            address.is_loopback or address.is_unspecified or address.is_multicast or address in avoid
        ):
            return address
    return None


def _pod_address(expected, local_addresses, family):
    version = 6 if family == "ipv6" else 4
    if expected.get("pod_ip"):
        return expected["pod_ip"]
    for addr in local_addresses or []:
        ip = ipaddress.ip_address(str(addr).split("/", maxsplit=1)[0])
        if ip.version == version and not ip.is_loopback and not ip.is_link_local:
            return str(ip)
    return _PLACEHOLDER_POD[family]


def standard_probes(ruleset, capture, expected, local_addresses, dns_servers=()):
    """Return ``(probes, pod_ip, gaps)``: probe dicts (packet fields plus ``expect``/``why``)
    and the messages for probes that could not be chosen."""
    family = ruleset.family
    config = CaptureConfig(capture, expected, family)
    pod_ip = _pod_address(expected, local_addresses, family)
    gaps = []
    probes = []
    app_uid = config.free_uid(expected.get("app_uid", 1000))
    proxy_uid = expected.get("proxy_uid") or first_id(capture["proxy_uids"], 1337)
    proxy_gid = expected.get("proxy_gid") or first_id(capture["proxy_gids"], proxy_uid)

    def inbound(name, port, why):
        expect = CAPTURED if config.inbound_captured(port) else NOT_CAPTURED
        probes.append(
            {
                "name": name,
                "hook": "prerouting",
                "protocol": "tcp",
                "src": _PLACEHOLDER_PEER[family],
                "dst": pod_ip,
                "sport": 40000 + len(probes),
                "dport": port,
                "in_interface": "eth0",
                "expect": expect,
                "why": why,
            }
        )

    def outbound(name, dst, port, uid, gid, why, protocol="tcp"):
        expect = CAPTURED if config.outbound_captured(dst, port, uid, gid) else NOT_CAPTURED
        probes.append(
            {
                "name": name,
                "hook": "output",
                "protocol": protocol,
                "src": pod_ip,
                "dst": dst,
                "sport": 40000 + len(probes),
                "dport": port,
                "out_interface": "eth0",
                "uid": uid,
                "gid": gid,
                "expect": expect,
                "why": why,
            }
        )

    # Inbound: the application's port, judged by what the configuration says about that port.
    app_port = expected.get("app_port")
    if not app_port:
        listed = capture["inbound_ports"] if isinstance(capture["inbound_ports"], list) else []
        app_port = listed[0] if listed else 8080
    inbound("inbound_app_port", app_port, f"the application's port {app_port}")
    if config.inbound_enabled and not config.inbound_captured(app_port):
        port = config.captured_inbound_port()
        if port is None:
            gaps.append("no inbound port is captured by this configuration: no captured inbound probe was traced")
        else:
            inbound("inbound_captured_port", port, f"port {port}, which the inbound configuration captures")
    if config.inbound_enabled:
        port, why = config.uncaptured_inbound_port(expected.get("excluded_inbound_ports"))
        if port is not None:
            inbound("inbound_excluded_port", port, f"port {port}, {why}")

    # Outbound from the application: a destination the configuration captures, and one it does not.
    port = config.captured_outbound_port()
    remote = config.captured_destination(avoid=[pod_ip])
    if remote is None:
        if config.outbound_enabled and config.include != []:
            gaps.append(
                "no destination is captured by this outbound configuration (every included range lies "
                f"inside the excluded ranges {', '.join(map(str, config.exclude))}): no captured outbound "
                "probe was traced"
            )
        remote, _why = config.uncaptured_destination(avoid=[pod_ip])
    if remote is not None and port is not None:
        outbound("outbound_app", remote, port, app_uid, app_uid, f"the application (uid {app_uid}) to {remote}:{port}")
        # The proxy's own traffic is never captured (else it would loop to itself), whatever the
        # rules say about its uid.
        outbound("outbound_proxy", remote, port, proxy_uid, proxy_gid, f"the proxy (uid {proxy_uid}) to {remote}")
        probes[-1]["expect"] = NOT_CAPTURED
    if config.outbound_enabled:
        dst, why = config.uncaptured_destination(avoid=[pod_ip])
        if dst is not None and port is not None and dst != remote:
            outbound("outbound_excluded_destination", dst, port, app_uid, app_uid, f"{dst}, {why}")
        excluded_ports = sorted(config.excluded_outbound_ports)
        if excluded_ports and remote is not None:
            outbound(
                "outbound_excluded_port",
                remote,
                excluded_ports[0],
                app_uid,
                app_uid,
                f"port {excluded_ports[0]}, an excluded outbound port",
            )
    loop_port = app_port
    probes.append(
        {
            "name": "loopback",
            "hook": "output",
            "protocol": "tcp",
            "src": _LOOPBACK[family],
            "dst": _LOOPBACK[family],
            "sport": 40000 + len(probes),
            "dport": loop_port,
            "out_interface": "lo",
            "uid": app_uid,
            "gid": app_uid,
            "expect": NOT_CAPTURED,
            "why": "loopback traffic of the application",
        }
    )
    if config.dns_capture or expected.get("dns_capture"):
        server = (list(dns_servers) or [_PLACEHOLDER_DNS[family]])[0]
        expect = (
            CAPTURED
            if config.dns_capture and 53 not in config.excluded_outbound_ports and app_uid not in config.proxy_uids
            else NOT_CAPTURED
        )
        probes.append(
            {
                "name": "dns_from_app",
                "hook": "output",
                "protocol": "udp",
                "src": pod_ip,
                "dst": server,
                "sport": 40000 + len(probes),
                "dport": 53,
                "out_interface": "eth0",
                "uid": app_uid,
                "gid": app_uid,
                "expect": expect,
                "why": f"the application's DNS query to {server}",
            }
        )
    return probes, pod_ip, gaps
