"""Network-namespace test bed for the differential tests of the iptables engine.

Real kernel, real rules, real sockets: namespaces named ``mo-<id>-<role>`` joined by veth pairs
with addresses in 10.203.0.0/16 (and fd00:203::/64) that exist only inside them; listeners and
clients are small /usr/bin/python3 programs run inside a namespace with ``nsenter`` and, for a
chosen uid/gid, ``setpriv``. Every namespace and process is removed in :meth:`NetLab.close`.
"""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter

from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump

PYTHON = "/usr/bin/python3"  # readable by every uid, unlike the virtualenv under /root

LISTENER = r"""
import json, select, socket, struct, sys
label, log = sys.argv[1], sys.argv[2]
socks = {}
for spec in sys.argv[3:]:
    proto, port = spec.split(":")
    port = int(port)
    family = socket.AF_INET6 if proto.endswith("6") else socket.AF_INET
    kind = socket.SOCK_STREAM if proto.startswith("tcp") else socket.SOCK_DGRAM
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if proto == "tcpt":
        s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT: accept TPROXY-diverted connections
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    socks[s] = (proto, port)
print("ready", flush=True)
while True:
    ready, _w, _x = select.select(list(socks), [], [])
    for s in ready:
        proto, port = socks[s]
        record = {"label": label, "proto": proto, "port": port}
        if proto.startswith("tcp"):
            conn, peer = s.accept()
            record["peer"] = peer[0]
            try:
                record["local"] = "%s:%d" % conn.getsockname()[:2]
                if proto == "tcp":
                    raw = conn.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
                    record["original_dst"] = "%s:%d" % (socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0])
            except OSError:
                record["original_dst"] = None
            conn.sendall(("%s:%d" % (label, port)).encode())
            conn.close()
        else:
            data, peer = s.recvfrom(4096)
            record["peer"] = peer[0]
            record["data"] = data.decode(errors="replace")
        with open(log, "a") as handle:
            handle.write(json.dumps(record) + "\n")
"""

CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
if proto == "tcp":
    try:
        conn = socket.create_connection((host, port), timeout=3)
        print(conn.recv(200).decode())
    except OSError as exc:
        print("error: %s" % exc)
else:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.sendto(sys.argv[4].encode() if len(sys.argv) > 4 else b"query", (host, port))
    print("sent")
"""


def run(cmd, input_text=None, check=True):
    env = dict(os.environ, LANG="C", LC_ALL="C")
    proc = subprocess.run(cmd, input=input_text, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed rc={proc.returncode}: {proc.stderr.strip()}")
    return proc


class NetLab:
    """Namespaces, links, listeners and clients for one test; use as a context manager."""

    def __init__(self):
        self.id = uuid.uuid4().hex[:6]
        self.namespaces = []
        self.procs = []
        self.workdir = tempfile.mkdtemp(prefix=f"mo-iptables-{self.id}-")
        os.chmod(self.workdir, 0o755)
        self.listener = os.path.join(self.workdir, "listener.py")
        self.client = os.path.join(self.workdir, "client.py")
        for path, text in ((self.listener, LISTENER), (self.client, CLIENT)):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(path, 0o644)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- topology ---------------------------------------------------------------------------
    def netns(self, role):
        name = f"mo-{self.id}-{role}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def path(self, ns):
        return f"/run/netns/{ns}"

    def link(self, ns_a, addr_a, ns_b, addr_b, name_a=None, name_b=None, v6=None):
        """veth between two namespaces; ``addr_*`` like '10.203.1.1/30'; ``v6``: (addr_a, addr_b)."""
        tmp_a = f"mo{self.id}{len(self.namespaces)}a{uuid.uuid4().hex[:3]}"
        tmp_b = f"mo{self.id}{len(self.namespaces)}b{uuid.uuid4().hex[:3]}"
        run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
        run(["ip", "link", "set", tmp_a, "netns", ns_a])
        run(["ip", "link", "set", tmp_b, "netns", ns_b])
        names = []
        for ns, tmp, wanted, addr, addr6 in (
            (ns_a, tmp_a, name_a, addr_a, v6 and v6[0]),
            (ns_b, tmp_b, name_b, addr_b, v6 and v6[1]),
        ):
            name = wanted or tmp
            if wanted:
                run(["ip", "-n", ns, "link", "set", tmp, "name", wanted])
            run(["ip", "-n", ns, "addr", "add", addr, "dev", name])
            if addr6:
                run(["ip", "-n", ns, "addr", "add", addr6, "dev", name, "nodad"])
            run(["ip", "-n", ns, "link", "set", name, "up"])
            names.append(name)
        return names

    def route(self, ns, *args):
        run(["ip", "-n", ns, "route", "add", *args])

    def sysctl_in_ns(self, ns, key, value):
        # Per-namespace sysctl (net.ipv4.ip_forward is per network namespace): never the host's.
        run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])

    # -- rules ----------------------------------------------------------------------------
    def restore(self, ns, backend, text, family="ipv4"):
        tool = f"{'ip6tables' if family == 'ipv6' else 'iptables'}-{backend}-restore"
        run(["nsenter", f"--net={self.path(ns)}", "--", tool], input_text=text)

    def save(self, ns, backend, family="ipv4", counters=True):
        tool = f"{'ip6tables' if family == 'ipv6' else 'iptables'}-{backend}-save"
        argv = ["nsenter", f"--net={self.path(ns)}", "--", tool] + (["-c"] if counters else [])
        return run(argv).stdout

    def counters(self, ns, backend, family="ipv4"):
        ruleset = parse_dump(self.save(ns, backend, family), source=f"{ns} {backend}", family=family)
        values = {}
        for table in ruleset.tables.values():
            for chain in table.chains.values():
                if chain.builtin:
                    values[(table.name, chain.name, "policy")] = chain.packets or 0
                for rule in chain.rules:
                    values[(table.name, chain.name, rule.number)] = rule.packets or 0
        return values

    # -- processes --------------------------------------------------------------------------
    def _prefix(self, ns, uid=None, gid=None):
        prefix = ["nsenter", f"--net={self.path(ns)}", "--"]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={gid if gid is not None else uid}", "--clear-groups"]
        return prefix

    def listen(self, ns, label, specs, uid=None, gid=None):
        """Start a listener for specs like ['tcp:15006', 'udp:15053']; returns its log path."""
        log = os.path.join(self.workdir, f"{label}-{len(self.procs)}.log")
        with open(log, "w", encoding="utf-8"):
            pass
        os.chmod(log, 0o666)
        proc = subprocess.Popen(
            [*self._prefix(ns, uid, gid), PYTHON, self.listener, label, log, *specs],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"listener {label} {specs} did not start: {proc.stderr.read()}")
        return log

    def connect(self, ns, proto, host, port, uid=None, gid=None, payload=None):
        argv = [*self._prefix(ns, uid, gid), PYTHON, self.client, proto, host, str(port)]
        if payload:
            argv.append(payload)
        return run(argv).stdout.strip()

    def records(self, log, timeout=2.0, want=1):
        deadline = time.monotonic() + timeout
        while True:
            with open(log, encoding="utf-8") as handle:
                lines = [json.loads(line) for line in handle if line.strip()]
            if len(lines) >= want or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def close(self):
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self.procs = []
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns], check=False)
        self.namespaces = []
        shutil.rmtree(self.workdir, ignore_errors=True)


def moved(before, after, tables=None):
    """Counter of (table, chain, rule_number | 'policy') -> packets added between two snapshots."""
    delta = Counter()
    for key, value in after.items():
        if tables is not None and key[0] not in tables:
            continue
        diff = value - before.get(key, 0)
        if diff:
            delta[key] = diff
    return delta


def step_keys(steps, tables=None):
    return Counter(
        (s["table"], s["chain"], s["rule_number"] if s["rule_number"] is not None else "policy")
        for s in steps
        if tables is None or s["table"] in tables
    )
