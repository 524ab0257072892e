"""Listening TCP sockets of a network namespace through netlink sock_diag (what ``ss -ltn`` uses).

The kernel answers only for the namespace the netlink socket was created in, and filters on the
LISTEN state itself, so this is much cheaper than reading /proc/PID/net/tcp, which walks the
whole established-connection hash table for every read. Read-only.
"""

import os
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_DONE = 3
NLMSG_ERROR = 2
TCP_LISTEN = 10

_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid (sport, dport, src[16], dst[16], if, cookie[2])
_REQ = struct.Struct("=BBBBI" + "HH16s16sI8s")
# inet_diag_msg: family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode
_MSG = struct.Struct("=BBBB" + "2s2s16s16sI8s" + "IIIII")


def _query(family):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    try:
        req = _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN, 0, 0, b"", b"", 0, b"")
        hdr = _NLMSGHDR.pack(_NLMSGHDR.size + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        sock.sendto(hdr + req, (0, 0))
        found = []
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    (errno,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
                    raise OSError(-errno, os.strerror(-errno))
                fields = _MSG.unpack_from(data, offset + _NLMSGHDR.size)
                fam, state = fields[0], fields[1]
                sport = struct.unpack(">H", fields[4])[0]
                raw = fields[6][:4] if fam == socket.AF_INET else fields[6]
                if state == TCP_LISTEN:
                    found.append(
                        {
                            "address": socket.inet_ntop(fam, raw),
                            "port": sport,
                            "family": "ipv4" if fam == socket.AF_INET else "ipv6",
                            "inode": fields[14],
                        }
                    )
                offset += (length + 3) & ~3
                if length == 0:
                    break
    finally:
        sock.close()


def listening_sockets():
    """LISTEN TCP sockets of the *calling thread's* network namespace (IPv4 and IPv6)."""
    result = _query(socket.AF_INET) + _query(socket.AF_INET6)
    result.sort(key=lambda s: (s["port"], s["family"], s["address"]))
    return result
