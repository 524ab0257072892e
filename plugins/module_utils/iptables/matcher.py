"""Evaluate rule conditions against a simulated packet.

Every condition evaluates to ``True``, ``False`` or ``None`` (*unevaluated*: the engine cannot
know, for example ``-m socket`` or an owner match on a packet without a uid). The tracer explores
both outcomes of an unevaluated rule and says so in the trace.

:class:`Packet` is the simulated first packet of a new connection (conntrack state NEW); its
fields follow the iptables_trace ``packets`` option.
"""

import ipaddress

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import PacketSpecError

PROTOCOLS = {
    "all": 0,
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
    "gre": 47,
    "esp": 50,
    "ah": 51,
}
PORT_PROTOCOLS = frozenset(("tcp", "udp", "sctp", "udplite", "dccp"))
HOOKS = ("prerouting", "output")
_LOOP4 = ipaddress.ip_network("127.0.0.0/8")
_LOOP6 = ipaddress.ip_network("::1/128")


def parse_int(text):
    return int(text, 0)


def parse_mark(text):
    """'0x539/0xffffffff' or '1337' -> (value, mask)."""
    value, _sep, mask = text.partition("/")
    return parse_int(value), parse_int(mask) if mask else 0xFFFFFFFF


def parse_port(text, what, name="packet"):
    if text is None:
        return None
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise PacketSpecError(f"{name}: {what} {text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise PacketSpecError(f"{name}: {what} {port} is out of range (0-65535)")
    return port


def parse_address(text, what, name="packet"):
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise PacketSpecError(f"{name}: {what} {text!r} is not an IPv4 or IPv6 address") from None


MALFORMED = "cannot read"  # compile_condition's answer for a value iptables-save never prints


# Packet fields whose empty value the engine would read as "not given", and what that means.
_EMPTY_MEANS = {
    "protocol": "tcp",
    "in_interface": "an unknown input interface",
    "out_interface": "the output interface chosen from the destination",
    "mark": "mark 0",
}


def refuse_empty_fields(specs):
    """Refuse packet fields given as an empty string (most often an unset variable in a
    template), which the engine would otherwise read as not given; names packet and field."""
    for index, spec in enumerate(specs):
        label = spec.get("name") or f"packets[{index}]"
        for field, meaning in _EMPTY_MEANS.items():
            value = spec.get(field)
            if isinstance(value, str) and not value.strip():
                raise PacketSpecError(
                    f"{label}: {field} is empty, which would silently mean {meaning}; give a value, or leave "
                    f"{field} out on purpose"
                )


class Packet:
    """The simulated packet (first packet of a connection) and what the rules did to it."""

    __slots__ = (
        "connmark",
        "ctstate",
        "dnat",
        "dport",
        "dst",
        "family",
        "gid",
        "hook",
        "in_interface",
        "local_addresses",
        "local_known",
        "mark",
        "name",
        "orig_dst",
        "out_interface",
        "proto",
        "proto_num",
        "snat",
        "sport",
        "src",
        "uid",
    )

    def __init__(self, spec, local_addresses=None):
        name = spec.get("name") or "packet"
        self.name = name
        hook = (spec.get("hook") or "").lower()
        if hook not in HOOKS:
            raise PacketSpecError(f"{name}: hook {spec.get('hook')!r} must be one of {', '.join(HOOKS)}")
        self.hook = hook
        proto = str(spec.get("protocol") or "tcp").lower()
        if proto.isdigit():
            number = int(proto)
            proto = next((k for k, v in PROTOCOLS.items() if v == number and k != "all"), proto)
        if proto not in PROTOCOLS and not proto.isdigit():
            raise PacketSpecError(
                f"{name}: protocol {spec.get('protocol')!r} is unknown "
                f"(use one of {', '.join(sorted(PROTOCOLS))} or a number)"
            )
        if proto.isdigit() and not 0 <= int(proto) <= 255:
            raise PacketSpecError(f"{name}: protocol {spec.get('protocol')!r} is out of range (0-255, or a name)")
        self.proto = proto
        self.proto_num = PROTOCOLS.get(proto, int(proto) if proto.isdigit() else -1)
        if spec.get("dst") in (None, ""):
            raise PacketSpecError(f"{name}: dst (destination address) is required")
        self.dst = parse_address(spec["dst"], "dst", name)
        if spec.get("src") in (None, ""):
            raise PacketSpecError(f"{name}: src (source address) is required")
        self.src = parse_address(spec["src"], "src", name)
        if self.src.version != self.dst.version:
            raise PacketSpecError(f"{name}: src {self.src} and dst {self.dst} are of different IP versions")
        self.family = "ipv6" if self.dst.version == 6 else "ipv4"
        self.sport = parse_port(spec.get("sport"), "sport", name)
        self.dport = parse_port(spec.get("dport"), "dport", name)
        if proto in PORT_PROTOCOLS:
            if self.dport is None:
                raise PacketSpecError(f"{name}: dport is required for protocol {proto}")
            if self.sport is None:
                self.sport = 40000
        self.in_interface = spec.get("in_interface") or None
        self.out_interface = spec.get("out_interface") or None
        for key in ("uid", "gid"):
            value = spec.get(key)
            if value is not None:
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise PacketSpecError(f"{name}: {key} {value!r} is not a number") from None
                if not 0 <= value <= 0xFFFFFFFE:
                    raise PacketSpecError(f"{name}: {key} {value} is out of range (0 to 4294967294)")
            setattr(self, key, value)
        mark = spec.get("mark")
        try:
            self.mark = 0 if mark in (None, "") else (int(mark) if isinstance(mark, int) else parse_int(str(mark)))
        except ValueError:
            raise PacketSpecError(f"{name}: mark {mark!r} is not a number (decimal or 0x hex)") from None
        if not 0 <= self.mark <= 0xFFFFFFFF:
            raise PacketSpecError(f"{name}: mark {mark!r} is out of range (a 32-bit value, 0 to 0xffffffff)")
        self.connmark = 0
        self.ctstate = "NEW"
        self.dnat = False
        self.snat = False
        self.orig_dst = self.dst
        if local_addresses:
            addrs = set()
            for text in local_addresses:
                addrs.add(parse_address(str(text).split("/", maxsplit=1)[0], "local address", "local_addresses"))
            self.local_addresses = addrs
            self.local_known = True
        else:
            self.local_addresses = set()
            self.local_known = False

    def copy(self):
        other = Packet.__new__(Packet)
        for slot in Packet.__slots__:
            setattr(other, slot, getattr(self, slot))
        return other

    def is_loopback(self, addr):
        return addr in (_LOOP6 if addr.version == 6 else _LOOP4)

    def is_local(self, addr):
        """True/False, or None when the engine cannot know (no local_addresses given)."""
        if self.is_loopback(addr) or addr in self.local_addresses:
            return True
        if self.local_known:
            return False
        if self.hook == "prerouting":
            if addr == self.orig_dst:
                return True  # documented assumption: a packet arriving from outside is addressed to us
            return None
        return False  # documented assumption: an output packet to a non-loopback address leaves the host

    def to_dict(self):
        return {
            "name": self.name,
            "hook": self.hook,
            "protocol": self.proto,
            "src": str(self.src),
            "dst": str(self.dst),
            "sport": self.sport,
            "dport": self.dport,
            "in_interface": self.in_interface,
            "out_interface": self.out_interface,
            "uid": self.uid,
            "gid": self.gid,
            "mark": self.mark,
        }


def _always(pkt):
    return True


def _never(pkt):
    return False


def _has_socket(pkt):
    return pkt.hook == "output"


# --- condition compilers: each returns a function pkt -> True | False | None --------------------


def _iface_match(pattern, name):
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


def _compile_iface(value, outgoing):
    def check(pkt):
        name = pkt.out_interface if outgoing else pkt.in_interface
        if name is None:
            if value == "lo":
                # Loopback carries only packets whose other end is this host.
                local = pkt.is_local(pkt.dst if outgoing else pkt.src)
                return local
            return None
        return _iface_match(value, name)

    return check


def _compile_net(value, attr):
    net = ipaddress.ip_network(value, strict=False)

    def check(pkt):
        addr = getattr(pkt, attr)
        if addr.version != net.version:
            return False
        return addr in net

    return check


def _compile_proto(value):
    value = value.lower()
    if value in ("all", "0"):
        return lambda pkt: True
    if value.isdigit():
        number = int(value)
        return lambda pkt: pkt.proto_num == number
    number = PROTOCOLS.get(value)
    if number is None:
        return lambda pkt: pkt.proto == value
    return lambda pkt: pkt.proto_num == number


def parse_port_spec(text):
    """'80' -> (80, 80); '1000:2000' -> (1000, 2000); ':1024' / '1024:'. ValueError when malformed."""
    if ":" in text:
        low, _sep, high = text.partition(":")
        low, high = (int(low) if low else 0, int(high) if high else 65535)
    elif "-" in text:
        low, _sep, high = text.partition("-")
        low, high = (int(low), int(high))
    else:
        low = high = int(text)
    if not 0 <= low <= 65535 or not 0 <= high <= 65535:
        raise ValueError(f"port {text} is out of range (0-65535)")
    return (low, high)


def _compile_port(value, attr):
    low, high = parse_port_spec(value)

    def check(pkt):
        port = getattr(pkt, attr)
        if port is None:
            return False
        return low <= port <= high

    return check


def _compile_multiport(value, attrs):
    ranges = [parse_port_spec(part) for part in value.split(",")]

    def check(pkt):
        for attr in attrs:
            port = getattr(pkt, attr)
            if port is not None and any(lo <= port <= hi for lo, hi in ranges):
                return True
        return False

    return check


def _compile_id_range(value, attr):
    low, _sep, high = value.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        return None  # user/group names: resolvable only on the host that wrote them

    def check(pkt):
        if pkt.hook != "output":
            return False  # no local socket: the owner match fails (and its negation matches)
        ident = getattr(pkt, attr)
        if ident is None:
            return None
        return lo <= ident <= hi

    return check


def _compile_mark(value, attr):
    mark, mask = parse_mark(value)

    def check(pkt):
        return (getattr(pkt, attr) & mask) == mark

    return check


def _addr_type(pkt, addr):
    if addr.is_multicast:
        return "MULTICAST"
    if addr.version == 4 and str(addr) == "255.255.255.255":
        return "BROADCAST"
    local = pkt.is_local(addr)
    if local is None:
        return None
    if local:
        return "LOCAL"
    if addr.is_unspecified:
        return "UNSPEC"
    return "UNICAST"


def _compile_addrtype(value, attr):
    wanted = {v.upper() for v in value.split(",")}

    def check(pkt):
        kind = _addr_type(pkt, getattr(pkt, attr))
        if kind is None:
            return None
        return kind in wanted

    return check


def _compile_ctstate(value):
    wanted = {v.upper() for v in value.split(",")}

    def check(pkt):
        states = {pkt.ctstate}
        if pkt.dnat:
            states.add("DNAT")
        if pkt.snat:
            states.add("SNAT")
        return bool(states & wanted)

    return check


def _compile_iprange(value, attr):
    low, _sep, high = value.partition("-")
    lo = ipaddress.ip_address(low)
    hi = ipaddress.ip_address(high or low)

    def check(pkt):
        addr = getattr(pkt, attr)
        return addr.version == lo.version and lo <= addr <= hi

    return check


def _tcp_flags(value):
    mask, _sep, comp = value.partition(" ")

    def names(text):
        return {f for f in text.upper().split(",") if f and f != "NONE"}

    mask_set = names(mask)
    if "ALL" in mask_set:
        mask_set = {"SYN", "ACK", "FIN", "RST", "URG", "PSH"}
    comp_set = names(comp)
    if "ALL" in comp_set:
        comp_set = {"SYN", "ACK", "FIN", "RST", "URG", "PSH"}
    return lambda pkt: ({"SYN"} & mask_set) == comp_set  # first packet: SYN only


def compile_condition(cond):
    """Return ``check(pkt) -> bool | None`` for one condition (negation included), or a string
    saying why it cannot be evaluated."""
    module, option, value = cond.module, cond.option, cond.value
    check = None
    try:
        if module == "ip":
            if option == "source":
                check = _compile_net(value, "src")
            elif option == "destination":
                check = _compile_net(value, "dst")
            elif option == "in-interface":
                check = _compile_iface(value, False)
            elif option == "out-interface":
                check = _compile_iface(value, True)
            elif option == "protocol":
                check = _compile_proto(value)
            elif option == "fragment":
                check = _never  # a first packet is never a later fragment
        elif module in PORT_PROTOCOLS:
            if option in ("dport", "destination-port", "dports"):
                check = _compile_port(value, "dport") if "," not in value else _compile_multiport(value, ("dport",))
            elif option in ("sport", "source-port", "sports"):
                check = _compile_port(value, "sport") if "," not in value else _compile_multiport(value, ("sport",))
            elif option == "syn":
                check = _always  # the simulated packet opens the connection
            elif option == "tcp-flags":
                check = _tcp_flags(value)
        elif module == "multiport":
            attrs = {
                "dports": ("dport",),
                "destination-ports": ("dport",),
                "sports": ("sport",),
                "source-ports": ("sport",),
                "ports": ("sport", "dport"),
            }.get(option)
            if attrs:
                check = _compile_multiport(value, attrs)
        elif module == "owner":
            if option == "uid-owner":
                check = _compile_id_range(value, "uid")
            elif option == "gid-owner":
                check = _compile_id_range(value, "gid")
            elif option == "socket-exists":
                check = _has_socket
            elif option == "suppl-groups":
                check = _always  # modifies --gid-owner; the primary gid is simulated
        elif module == "mark" and option == "mark":
            check = _compile_mark(value, "mark")
        elif module == "connmark" and option == "mark":
            check = _compile_mark(value, "connmark")
        elif module == "comment":
            check = _always
        elif module == "addrtype":
            if option == "dst-type":
                check = _compile_addrtype(value, "dst")
            elif option == "src-type":
                check = _compile_addrtype(value, "src")
        elif module in ("conntrack", "state"):
            if option in ("ctstate", "state"):
                check = _compile_ctstate(value)
            elif option == "ctdir":
                # The simulated packet travels in the original direction.
                check = _always if value.upper() == "ORIGINAL" else _never
        elif module == "iprange":
            if option == "src-range":
                check = _compile_iprange(value, "src")
            elif option == "dst-range":
                check = _compile_iprange(value, "dst")
    except (ValueError, TypeError) as exc:
        return f"{MALFORMED} {module} option --{option} {value!r}: {exc}"
    if check is None:
        return f"match {module} --{option} is not evaluated by the engine"
    if cond.negated:

        def negated(pkt, inner=check):
            result = inner(pkt)
            return None if result is None else not result

        return negated
    return check
