"""Generate the iptables-restore text Istio's istio-init (istio-iptables) writes for a sidecar.

Used by the unit tests, the differential tests (loaded with ``iptables-restore`` into a real
network namespace), the pod fixtures of the lab and the benchmarks. The layout (chain names,
rule order, the 127.0.0.6 and uid/gid exemptions, 15008 and DNS handling, TPROXY marks) follows
the public golden files of istio/tools/istio-iptables; this is an independent generator, not a
copy of Istio's code.

API::

    text = istio_capture_rules(CaptureOptions(inbound_ports="*", exclude_inbound_ports=[15021]))
    text = istio_capture_rules(proxy_uid=1337, dns_capture=True, mode="TPROXY", family="ipv6")

:class:`CaptureOptions` fields (all optional):

``proxy_uid`` / ``proxy_gid`` (1337; ``None`` leaves the uid/gid rules out), ``inbound_capture_port``
(15006), ``outbound_capture_port`` (15001), ``inbound_ports`` (``"*"``, a list, or ``[]`` for no
inbound capture), ``exclude_inbound_ports`` (used with ``"*"``), ``outbound_include_cidrs``
(``"*"`` or a list; ``[]`` captures nothing), ``outbound_exclude_cidrs``, ``exclude_outbound_ports``,
``dns_capture`` (False), ``dns_servers`` (addresses whose port 53 is captured; empty: every
destination), ``dns_port`` (15053), ``mode`` (``"REDIRECT"`` | ``"TPROXY"``), ``family``
(``"ipv4"`` | ``"ipv6"``), ``tunnel_port`` (15008), ``broken`` (a set of deliberate faults for
tests: ``"no-inbound-jump"``, ``"no-output-jump"``, ``"no-uid-exemption"``).

The result is one ``*table ... COMMIT`` block per table (raw, mangle, nat as needed), in the
format both ``iptables-restore`` and :func:`~.parser.parse_dump` accept.
"""

from dataclasses import dataclass, field, fields

BROKEN_CHOICES = frozenset(("no-inbound-jump", "no-output-jump", "no-uid-exemption"))


@dataclass
class CaptureOptions:
    proxy_uid: object = 1337  # an int, or None to leave the uid rules out
    proxy_gid: object = 1337
    inbound_capture_port: int = 15006
    outbound_capture_port: int = 15001
    inbound_ports: object = "*"
    exclude_inbound_ports: list = field(default_factory=lambda: [15090, 15021, 15020])
    outbound_include_cidrs: object = "*"
    outbound_exclude_cidrs: list = field(default_factory=list)
    exclude_outbound_ports: list = field(default_factory=list)
    dns_capture: bool = False
    dns_servers: list = field(default_factory=list)
    dns_port: int = 15053
    mode: str = "REDIRECT"
    family: str = "ipv4"
    tunnel_port: int = 15008
    broken: set = field(default_factory=set)

    def __post_init__(self):
        if self.mode not in ("REDIRECT", "TPROXY"):
            raise ValueError(f"mode must be REDIRECT or TPROXY, got {self.mode!r}")
        if self.family not in ("ipv4", "ipv6"):
            raise ValueError(f"family must be ipv4 or ipv6, got {self.family!r}")
        unknown = set(self.broken) - BROKEN_CHOICES
        if unknown:
            raise ValueError(f"unknown broken options {sorted(unknown)} (known: {sorted(BROKEN_CHOICES)})")


def _csv(values):
    return ",".join(str(v) for v in values)


class _Tables:
    def __init__(self):
        self.chains = {}
        self.rules = {}

    def new(self, table, chain):
        self.chains.setdefault(table, [])
        if chain not in self.chains[table]:
            self.chains[table].append(chain)

    def add(self, table, chain, rule):
        self.rules.setdefault(table, []).append(f"-A {chain} {rule}")

    def text(self, order=("raw", "mangle", "nat")):
        out = []
        builtin = {
            "raw": ("PREROUTING", "OUTPUT"),
            "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
            "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
        }
        for table in order:
            if table not in self.rules and table not in self.chains:
                continue
            out.append(f"*{table}")
            out.extend(f":{chain} ACCEPT [0:0]" for chain in builtin[table])
            out.extend(f":{chain} - [0:0]" for chain in self.chains.get(table, []))
            out.extend(self.rules.get(table, []))
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def istio_capture_rules(options=None, **kwargs):
    """Return iptables-restore text for one family; see the module docstring for options."""
    if options is None:
        names = {f.name for f in fields(CaptureOptions)}
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"unknown capture options {sorted(unknown)}")
        options = CaptureOptions(**kwargs)
    o = options
    v6 = o.family == "ipv6"
    lo_dst = "::1/128" if v6 else "127.0.0.1/32"
    inbound_passthrough_src = "::6/128" if v6 else "127.0.0.6/32"
    t = _Tables()
    owners = []
    if o.proxy_uid is not None:
        owners.append(("uid", o.proxy_uid))
    if o.proxy_gid is not None:
        owners.append(("gid", o.proxy_gid))
    tproxy = o.mode == "TPROXY"

    for chain in ("ISTIO_INBOUND", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT"):
        t.new("nat", chain)
    if o.dns_capture:
        t.new("nat", "ISTIO_OUTPUT_DNS")
    t.add("nat", "ISTIO_INBOUND", f"-p tcp --dport {o.tunnel_port} -j RETURN")
    t.add("nat", "ISTIO_REDIRECT", f"-p tcp -j REDIRECT --to-ports {o.outbound_capture_port}")
    t.add("nat", "ISTIO_IN_REDIRECT", f"-p tcp -j REDIRECT --to-ports {o.inbound_capture_port}")

    # Inbound.
    inbound_table = "mangle" if tproxy else "nat"
    capture_inbound = o.inbound_ports == "*" or bool(o.inbound_ports)
    if tproxy:
        for chain in ("ISTIO_DIVERT", "ISTIO_TPROXY", "ISTIO_INBOUND"):
            t.new("mangle", chain)
        t.add("mangle", "ISTIO_DIVERT", f"-j MARK --set-mark {o.proxy_uid or 1337}")
        t.add("mangle", "ISTIO_DIVERT", "-j ACCEPT")
        t.add(
            "mangle",
            "ISTIO_TPROXY",
            f"! -d {lo_dst} -p tcp -j TPROXY --tproxy-mark "
            f"{o.proxy_uid or 1337}/0xffffffff --on-port {o.inbound_capture_port}",
        )
        mark = o.proxy_uid or 1337
        t.add("mangle", "ISTIO_INBOUND", f"-p tcp -m mark --mark {mark} -j RETURN")
        t.add("mangle", "ISTIO_INBOUND", f"-p tcp -s {inbound_passthrough_src} -i lo -j RETURN")
        t.add("mangle", "ISTIO_INBOUND", f"-p tcp -i lo -m mark ! --mark {mark + 1} -j RETURN")
        t.add("mangle", "ISTIO_INBOUND", f"-p tcp --dport {o.tunnel_port} -j RETURN")
    if capture_inbound and "no-inbound-jump" not in o.broken:
        t.add(inbound_table, "PREROUTING", "-p tcp -j ISTIO_INBOUND")
    if o.inbound_ports == "*":
        for port in o.exclude_inbound_ports:
            t.add(inbound_table, "ISTIO_INBOUND", f"-p tcp --dport {port} -j RETURN")
        if tproxy:
            t.add("mangle", "ISTIO_INBOUND", "-p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT")
            t.add("mangle", "ISTIO_INBOUND", "-p tcp -j ISTIO_TPROXY")
        else:
            t.add("nat", "ISTIO_INBOUND", "-p tcp -j ISTIO_IN_REDIRECT")
    else:
        for port in o.inbound_ports or []:
            if tproxy:
                t.add(
                    "mangle",
                    "ISTIO_INBOUND",
                    f"-p tcp --dport {port} -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT",
                )
                t.add("mangle", "ISTIO_INBOUND", f"-p tcp --dport {port} -j ISTIO_TPROXY")
            else:
                t.add("nat", "ISTIO_INBOUND", f"-p tcp --dport {port} -j ISTIO_IN_REDIRECT")
    if tproxy:
        mark = o.proxy_uid or 1337
        t.add("mangle", "PREROUTING", f"-p tcp -m mark --mark {mark} -j CONNMARK --save-mark")
        t.add("mangle", "OUTPUT", f"-p tcp -o lo -m mark --mark {mark} -j RETURN")
        for kind, ident in owners:
            t.add(
                "mangle",
                "OUTPUT",
                f"! -d {lo_dst} -p tcp -o lo -m owner --{kind}-owner {ident} -j MARK --set-mark {mark + 1}",
            )
        t.add("mangle", "OUTPUT", f"-p tcp -m connmark --mark {mark} -j CONNMARK --restore-mark")

    # Outbound.
    if "no-output-jump" not in o.broken:
        t.add("nat", "OUTPUT", "-j ISTIO_OUTPUT")
    if o.exclude_outbound_ports:
        ports = _csv(o.exclude_outbound_ports)
        t.add("nat", "ISTIO_OUTPUT", f"-p tcp -m multiport --dports {ports} -j RETURN")
        t.add("nat", "ISTIO_OUTPUT", f"-p udp -m multiport --dports {ports} -j RETURN")
    t.add("nat", "ISTIO_OUTPUT", f"-o lo -s {inbound_passthrough_src} -j RETURN")
    for kind, ident in owners:
        if kind == "uid" and o.dns_capture:
            t.add(
                "nat",
                "ISTIO_OUTPUT",
                f"-o lo ! -d {lo_dst} -p tcp -m multiport ! --dports 53,{o.tunnel_port} "
                f"-m owner --uid-owner {ident} -j ISTIO_IN_REDIRECT",
            )
        else:
            t.add(
                "nat",
                "ISTIO_OUTPUT",
                f"-o lo ! -d {lo_dst} -p tcp ! --dport {o.tunnel_port} "
                f"-m owner --{kind}-owner {ident} -j ISTIO_IN_REDIRECT",
            )
        if o.dns_capture:
            t.add("nat", "ISTIO_OUTPUT", f"-o lo -p tcp ! --dport 53 -m owner ! --{kind}-owner {ident} -j RETURN")
        else:
            t.add("nat", "ISTIO_OUTPUT", f"-o lo -m owner ! --{kind}-owner {ident} -j RETURN")
        if "no-uid-exemption" not in o.broken:
            t.add("nat", "ISTIO_OUTPUT", f"-m owner --{kind}-owner {ident} -j RETURN")
    if o.dns_capture:
        t.add("nat", "ISTIO_OUTPUT", "-j ISTIO_OUTPUT_DNS")
        servers = [f"{s}/128" if v6 else f"{s}/32" for s in o.dns_servers] or [None]
        for server in servers:
            dst = f" -d {server}" if server else ""
            t.add("nat", "ISTIO_OUTPUT_DNS", f"-p tcp --dport 53{dst} -j REDIRECT --to-ports {o.dns_port}")
        for kind, ident in owners:
            t.add("nat", "ISTIO_OUTPUT_DNS", f"-p udp --dport 53 -m owner --{kind}-owner {ident} -j RETURN")
        for server in servers:
            dst = f" -d {server}" if server else ""
            t.add("nat", "ISTIO_OUTPUT_DNS", f"-p udp --dport 53{dst} -j REDIRECT --to-port {o.dns_port}")
        # raw: separate conntrack zones for the proxy's and the application's DNS flows.
        t.new("raw", "ISTIO_OUTPUT_DNS")
        t.new("raw", "ISTIO_INBOUND")
        t.add("raw", "OUTPUT", "-j ISTIO_OUTPUT_DNS")
        for kind, ident in owners:
            t.add("raw", "ISTIO_OUTPUT_DNS", f"-p udp --dport 53 -m owner --{kind}-owner {ident} -j CT --zone 1")
            t.add(
                "raw", "ISTIO_OUTPUT_DNS", f"-p udp --sport {o.dns_port} -m owner --{kind}-owner {ident} -j CT --zone 2"
            )
        t.add("raw", "PREROUTING", "-j ISTIO_INBOUND")
        for server in servers:
            if server:
                t.add("raw", "ISTIO_OUTPUT_DNS", f"-p udp --dport 53 -d {server} -j CT --zone 2")
                t.add("raw", "ISTIO_INBOUND", f"-p udp --sport 53 -s {server} -j CT --zone 1")
    t.add("nat", "ISTIO_OUTPUT", f"-d {lo_dst} -j RETURN")
    for cidr in o.outbound_exclude_cidrs:
        t.add("nat", "ISTIO_OUTPUT", f"-d {cidr} -j RETURN")
    if o.outbound_include_cidrs == "*":
        t.add("nat", "ISTIO_OUTPUT", "-j ISTIO_REDIRECT")
    else:
        for cidr in o.outbound_include_cidrs:
            t.add("nat", "ISTIO_OUTPUT", f"-d {cidr} -j ISTIO_REDIRECT")
    return t.text()
