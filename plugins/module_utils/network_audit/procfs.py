"""Read what a node tells about its processes and network namespaces through /proc.

Nothing here changes anything: it reads files under /proc and nothing else.
"""

import fcntl
import json
import os
import re
import shlex
import socket
import struct

PROC = "/proc"

TCP_LISTEN = "0A"


class ProcessGone(Exception):
    """The process exited while it was being read."""


class ProcInfo:
    __slots__ = ("comm", "gid", "netns_inode", "pid", "uid")

    def __init__(self, pid, comm, uid, gid, netns_inode):
        self.pid = pid
        self.comm = comm
        self.uid = uid
        self.gid = gid
        self.netns_inode = netns_inode

    def __repr__(self):
        return f"<ProcInfo {self.pid} {self.comm} uid={self.uid} netns={self.netns_inode}>"


def _read(path, mode="r"):
    try:
        with open(path, mode) as handle:
            return handle.read()
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise ProcessGone(path) from exc


def scan_processes(proc=PROC):
    """Every process with its comm, uid/gid (owner of /proc/PID) and network-namespace inode.

    Processes that exit during the scan, and kernel threads, are skipped. Returns
    ``(processes, unreadable)`` where ``unreadable`` maps pid -> reason for processes whose
    namespace could not be read (for example EACCES).
    """
    result = []
    unreadable = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        pid = int(name)
        base = f"{proc}/{name}"
        try:
            st = os.stat(base)
            comm = _read(f"{base}/comm").rstrip("\n")
            inode = os.stat(f"{base}/ns/net").st_ino
        except (FileNotFoundError, ProcessLookupError, ProcessGone):
            continue
        except PermissionError as exc:
            unreadable[pid] = f"cannot read {base}/ns/net: {exc.strerror}"
            continue
        result.append(ProcInfo(pid, comm, st.st_uid, st.st_gid, inode))
    return result, unreadable


def cmdline(pid, proc=PROC):
    data = _read(f"{proc}/{pid}/cmdline", "rb")
    return [part.decode("utf-8", "replace") for part in data.split(b"\0") if part]


def environ(pid, proc=PROC, keys=None):
    """Environment of a process (only ``keys`` when given)."""
    data = _read(f"{proc}/{pid}/environ", "rb")
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if not sep:
            continue
        k = key.decode("utf-8", "replace")
        if keys is None or k in keys:
            env[k] = value.decode("utf-8", "replace")
    return env


def process_uids(pid, proc=PROC):
    """Real, effective uid and gid from /proc/PID/status."""
    uid = gid = None
    for line in _read(f"{proc}/{pid}/status").splitlines():
        if line.startswith("Uid:"):
            uid = [int(x) for x in line.split()[1:3]]
        elif line.startswith("Gid:"):
            gid = [int(x) for x in line.split()[1:3]]
    return uid, gid


def cgroup_container_ids(pid, proc=PROC):
    """64-hex container ids found in the cgroup paths of a process (containerd, CRI-O, Docker)."""
    try:
        text = _read(f"{proc}/{pid}/cgroup")
    except ProcessGone:
        return []
    return list(dict.fromkeys(re.findall(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])", text)))


# --- addresses ---------------------------------------------------------------------------------


def local_ipv4_addresses(pid, proc=PROC):
    """IPv4 addresses local to the namespace of ``pid`` (from /proc/PID/net/fib_trie), no loopback."""
    text = _read(f"{proc}/{pid}/net/fib_trie")
    found = []
    last = None
    in_local = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Local:"):
            in_local = True
            continue
        if stripped.startswith("Main:"):
            in_local = False
            continue
        if not in_local:
            continue
        if stripped.startswith("|--") or stripped.startswith("+--"):
            last = stripped[3:].strip().split("/")[0]
        elif "/32 host LOCAL" in stripped and last and not last.startswith("127.") and last not in found:
            found.append(last)
    return found


def local_ipv6_addresses(pid, proc=PROC):
    """Global IPv6 addresses of the namespace of ``pid`` (from /proc/PID/net/if_inet6)."""
    try:
        text = _read(f"{proc}/{pid}/net/if_inet6")
    except ProcessGone:
        return []
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[3] == "00":  # scope global
            found.append(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(fields[0])))
    return found


def interfaces(pid, proc=PROC):
    """Interface names of the namespace of ``pid`` (from /proc/PID/net/dev)."""
    text = _read(f"{proc}/{pid}/net/dev")
    return [line.split(":", 1)[0].strip() for line in text.splitlines()[2:] if ":" in line]


# --- sockets -----------------------------------------------------------------------------------


def _decode_addr(hexaddr, family):
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hexaddr, 16)))
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_sockets(pid, proc=PROC):
    """TCP sockets in LISTEN state in the namespace of ``pid``: dicts address, port, family, inode."""
    result = []
    for name, family in (("tcp", 4), ("tcp6", 6)):
        try:
            text = _read(f"{proc}/{pid}/net/{name}")
        except ProcessGone:
            if name == "tcp":
                raise
            continue
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            addr, port = fields[1].rsplit(":", 1)
            result.append(
                {
                    "address": _decode_addr(addr, family),
                    "port": int(port, 16),
                    "family": f"ipv{family}",
                    "inode": int(fields[9]),
                }
            )
    result.sort(key=lambda s: (s["port"], s["family"], s["address"]))
    return result


def socket_owners(pids, proc=PROC):
    """Map socket inode -> (pid, comm) for the sockets held open by ``pids``."""
    owners = {}
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
            comm = _read(f"{proc}/{pid}/comm").rstrip("\n")
        except (FileNotFoundError, ProcessLookupError, PermissionError, ProcessGone):
            continue
        for fd in names:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(int(target[8:-1]), (pid, comm))
    return owners


def legacy_tables_loaded(pid, proc=PROC):
    """Names of legacy (x_tables) iptables tables that exist in the namespace of ``pid``.

    An empty list means ``iptables-legacy-save`` would print nothing there, so it need not run.
    ``None`` when the kernel does not expose the file (no x_tables support loaded at all).
    """
    try:
        text = _read(f"{proc}/{pid}/net/ip_tables_names")
    except ProcessGone:
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


# --- envoy bootstrap ---------------------------------------------------------------------------


def envoy_config_path(argv):
    """The ``-c`` / ``--config-path`` argument of an Envoy command line, if any."""
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config-path") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config-path="):
            return arg.split("=", 1)[1]
    return None


def envoy_bootstrap_node(pid, argv, proc=PROC):
    """Envoy's node id and metadata read from its bootstrap file, as seen by the process itself.

    Returns ``{}`` when there is no readable JSON bootstrap (YAML bootstraps are searched for the
    ``id`` only).
    """
    path = envoy_config_path(argv)
    if not path:
        return {}
    full = f"{proc}/{pid}/root{path}" if path.startswith("/") else f"{proc}/{pid}/cwd/{path}"
    try:
        with open(full, encoding="utf-8", errors="replace") as handle:
            text = handle.read(1 << 20)
    except OSError:
        return {}
    try:
        data = json.loads(text)
        node = data.get("node") or {}
        return {"id": node.get("id"), "cluster": node.get("cluster"), "metadata": node.get("metadata") or {}}
    except ValueError:
        match = re.search(r"^\s*id:\s*[\"']?([^\"'\n]+)", text, re.M)
        return {"id": match.group(1).strip()} if match else {}


def parse_istio_node_id(node_id):
    """``sidecar~10.244.1.5~name.ns~ns.svc.cluster.local`` -> dict(kind, ip, pod, namespace)."""
    if not node_id:
        return {}
    parts = node_id.split("~")
    if len(parts) != 4:
        return {}
    kind, ip, pod_ns, _domain = parts
    pod, _dot, namespace = pod_ns.rpartition(".")
    return {"kind": kind, "ip": ip, "pod": pod or pod_ns, "namespace": namespace or None}


def describe_cmdline(argv, limit=240):
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


SIOCGIFADDR = 0x8915


def interface_ipv4(ifname):
    """Primary IPv4 address of an interface of the *calling thread's* namespace, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            data = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(data[20:24])


def default_route_interface(proc_dir="/proc/thread-self"):
    """Interface of the IPv4 default route of the calling thread's namespace, or None."""
    try:
        text = _read(f"{proc_dir}/net/route")
    except ProcessGone:
        return None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            return fields[0]
    return None


def node_ipv4_addresses():
    """IPv4 addresses of the calling thread's namespace, the default route's interface first."""
    first = default_route_interface()
    addresses = []
    if first:
        addr = interface_ipv4(first)
        if addr:
            addresses.append(addr)
    for addr in local_ipv4_addresses("thread-self"):
        if addr not in addresses:
            addresses.append(addr)
    return addresses
