"""Start, identify and stop the lab's processes, by PID, verified through /proc.

A PID alone can be reused; each started process is recorded with its /proc start time and its
executable, and only a process matching all three is ever signalled.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.cluster.errors import LabError

_POPEN: dict[int, subprocess.Popen] = {}  # handles of children started by this process


@dataclass
class Proc:
    name: str
    pid: int
    starttime: int  # field 22 of /proc/PID/stat
    exe: str
    argv: list[str]
    log: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Proc:
        return cls(**d)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, starttime) of a PID, or None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def is_ours(p: Proc) -> bool:
    """The recorded process still runs (not a zombie) and is the same process we started."""
    st = _stat(p.pid)
    if st is None or st[0] in ("Z", "X") or st[1] != p.starttime:
        return False
    try:
        exe = os.readlink(f"/proc/{p.pid}/exe")
    except OSError:
        return False
    return exe.removesuffix(" (deleted)") == p.exe


def start(name: str, argv: list[str], log: Path, env: dict | None = None) -> Proc:
    """Start ``argv`` in its own session, output to ``log``; returns its record."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            raise LabError(f"cannot start {argv[0]}: {exc}", component=name) from exc
    _POPEN[popen.pid] = popen
    st = _stat(popen.pid)
    exe = os.path.realpath(argv[0])
    if st is None:
        raise LabError("exited immediately", component=name, log_tail=tail(log))
    return Proc(name, popen.pid, st[1], exe, argv, str(log))


def exited(p: Proc) -> bool:
    popen = _POPEN.get(p.pid)
    if popen is not None and popen.poll() is not None:
        return True
    return not is_ours(p)


def stop(p: Proc, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; returns True if it was running and is now gone."""
    if not is_ours(p):
        _reap(p.pid)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(p.pid)
        if not is_ours(p):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _reap(p.pid)
        if not is_ours(p):
            return True
        time.sleep(0.05)
    raise LabError(f"process {p.pid} did not exit after SIGKILL", component=p.name)


def _reap(pid: int) -> None:
    popen = _POPEN.get(pid)
    if popen is not None:
        with contextlib.suppress(Exception):
            popen.poll()


def tail(path: Path | str, lines: int = 20) -> str:
    try:
        data = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(data[-lines:])


# --------------------------------------------------------------------------------------------
# ports


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str, avoid: set[int]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise LabError(f"no free TCP port found on {host}")


def check_local_address(address: str, what: str) -> None:
    """Raise a clear error unless ``address`` is assigned to an interface of this host."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise LabError(
                    f"{address} is not an address of this host, so nothing can listen on it. For a podman "
                    "network, pass its gateway address once the network exists (e.g. after the node "
                    "container started: `podman network inspect <net>` shows the gateway)",
                    component=what,
                ) from exc
            raise LabError(f"cannot bind {address}: {exc}", component=what) from exc


def port_holder(port: int) -> str:
    """Best effort: who listens on a TCP port (from /proc/net/tcp*), for error messages."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    if not inodes:
        return ""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        comm = Path(f"/proc/{pid}/comm").read_text().strip()
                        return f"pid {pid} ({comm})"
    return "another process"
