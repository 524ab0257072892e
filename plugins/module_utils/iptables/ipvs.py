"""Read kube-proxy's ``ipvs`` mode: IPVS virtual servers and their real servers.

Three read-only sources, one result: :func:`parse_proc` reads ``/proc/net/ip_vs`` (addresses in
hex; present only when the kernel has the ip_vs module loaded), :func:`parse_list` reads
``ipvsadm -Ln`` and :func:`parse_save` reads ``ipvsadm --save -n``. Each returns a list of virtual
servers ``{protocol, address, port, scheduler, real_servers: [{address, port, forward, weight,
probability}]}``; ``probability`` is the share of new connections a real server gets under a
round-robin or weighted scheduler (weight / sum of weights; a weight of 0 takes none).
:func:`paths_to` answers which real servers a packet to ``address:port`` reaches.
"""

import ipaddress
import socket
import struct

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError

FORWARD = {
    "Masq": "masquerade",
    "Route": "route",
    "Tunnel": "tunnel",
    "Local": "local",
    "m": "masquerade",
    "g": "route",
    "i": "tunnel",
}


def _shares(virtual):
    total = sum(r["weight"] for r in virtual["real_servers"])
    for real in virtual["real_servers"]:
        real["probability"] = round(real["weight"] / total, 6) if total else 0.0
    return virtual


def _hostport(text, source, lineno):
    """'10.96.0.1:443' or '[fd00::1]:443' -> (address, port)."""
    try:
        if text.startswith("["):
            host, _sep, port = text[1:].partition("]:")
        else:
            host, _sep, port = text.rpartition(":")
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        raise ParseError(f"{text!r} is not an address:port", source, lineno) from None


def _hex_hostport(text, source, lineno):
    """'0A600001:01BB' (IPv4) or '[FD000000...]:01BB' -> (address, port)."""
    try:
        host, _sep, port = text.rpartition(":")
        host = host.strip("[]")
        if ":" in host:  # IPv6 is printed in full colon-separated hex
            address = str(ipaddress.ip_address(host))
        elif len(host) == 8:
            address = socket.inet_ntop(socket.AF_INET, struct.pack("!I", int(host, 16)))
        else:
            raise ValueError(host)
        return address, int(port, 16)
    except ValueError:
        raise ParseError(f"{text!r} is not a hex address:port of /proc/net/ip_vs", source, lineno) from None


def _int(text, what, source, lineno):
    try:
        return int(text)
    except ValueError:
        raise ParseError(f"{what} {text!r} is not a number", source, lineno) from None


def _parse_table(text, source, hostport):
    virtuals = []
    current = None
    for lineno, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("IP Virtual Server", "Prot LocalAddress", "-> RemoteAddress")):
            continue
        fields = line.split()
        if fields[0] in ("TCP", "UDP", "SCTP", "FWM"):
            if fields[0] == "FWM" or len(fields) < 3:
                current = None  # firewall-mark services: kube-proxy does not write them
                continue
            address, port = hostport(fields[1], source, lineno)
            current = {
                "protocol": fields[0].lower(),
                "address": address,
                "port": port,
                "scheduler": fields[2],
                "real_servers": [],
            }
            virtuals.append(current)
        elif fields[0] == "->":
            if current is None or len(fields) < 4:
                raise ParseError("a real server line outside a virtual server", source, lineno, raw)
            address, port = hostport(fields[1], source, lineno)
            current["real_servers"].append(
                {
                    "address": address,
                    "port": port,
                    "forward": FORWARD.get(fields[2], fields[2].lower()),
                    "weight": _int(fields[3], "weight", source, lineno),
                }
            )
        else:
            raise ParseError("unrecognised line", source, lineno, raw)
    return [_shares(v) for v in virtuals]


def parse_list(text, source="ipvsadm -Ln"):
    return _parse_table(text, source, _hostport)


def parse_proc(text, source="/proc/net/ip_vs"):
    return _parse_table(text, source, _hex_hostport)


def parse_save(text, source="ipvsadm --save -n"):
    """``-A -t 10.96.0.1:443 -s rr`` / ``-a -t 10.96.0.1:443 -r 10.244.1.5:6443 -m -w 1``."""
    virtuals = {}
    order = []
    kinds = {"-t": "tcp", "-u": "udp", "--sctp-service": "sctp"}
    for lineno, raw in enumerate((text or "").splitlines(), 1):
        fields = raw.split()
        if not fields:
            continue
        if fields[0] not in ("-A", "-a") or len(fields) < 3 or fields[1] not in kinds:
            raise ParseError("unrecognised line (expected -A or -a with -t/-u)", source, lineno, raw)
        key = (kinds[fields[1]], *_hostport(fields[2], source, lineno))
        options = {}
        rest = fields[3:]
        while rest:
            flag = rest.pop(0)
            if flag in ("-m", "-g", "-i"):  # forwarding method: no value
                options["forward"] = FORWARD[flag[1:]]
            elif rest:
                options[flag] = rest.pop(0)
        if fields[0] == "-A":
            virtuals[key] = {
                "protocol": key[0],
                "address": key[1],
                "port": key[2],
                "scheduler": options.get("-s", "wlc"),
                "real_servers": [],
            }
            order.append(key)
            continue
        if key not in virtuals:
            raise ParseError("a real server of a virtual server not added before", source, lineno, raw)
        address, port = _hostport(options.get("-r", ""), source, lineno)
        forward = options.get("forward", "route")
        virtuals[key]["real_servers"].append(
            {
                "address": address,
                "port": port,
                "forward": forward,
                "weight": _int(options.get("-w", "1"), "weight", source, lineno),
            }
        )
    return [_shares(virtuals[k]) for k in order]


def paths_to(virtuals, protocol, address, port):
    """The virtual server a packet to ``address:port`` meets, or None."""
    address = str(ipaddress.ip_address(address))
    for virtual in virtuals:
        if (virtual["protocol"], virtual["address"], virtual["port"]) == (protocol, address, port):
            return virtual
    return None
