"""Small helpers to work inside network namespaces without changing the caller's namespace.

``setns(2)`` changes the namespace of the calling *thread* only, so a short-lived thread enters
the namespace, creates its socket (which stays bound to that namespace) and exits.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import socket
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

TCP_STATES = {"0A": "LISTEN", "01": "ESTABLISHED"}


class NetnsError(RuntimeError):
    """A namespace operation failed; the message names the namespace and the command."""


def run_in_netns(netns_path: str | None, func, *args, **kwargs):
    """Run ``func`` in a thread that joined ``netns_path`` (``None``: the current namespace)."""
    if netns_path is None:
        return func(*args, **kwargs)
    box: dict = {}

    def target():
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["error"] = NetnsError(f"cannot open network namespace {netns_path}: {exc}")
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = NetnsError(f"setns({netns_path}) failed: {os.strerror(err)}")
                return
        finally:
            os.close(fd)
        try:
            box["value"] = func(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"netns:{netns_path}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def tcp_connect(netns_path: str | None, host: str, port: int, timeout: float = 3.0, payload: bytes | None = None):
    """Open a TCP connection from inside ``netns_path``; return the first bytes received (or b'')."""

    def work():
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if payload:
                sock.sendall(payload)
                chunks = []
                while True:
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        break
                    if not data:
                        break
                    chunks.append(data)
                return b"".join(chunks)
            return b""

    return run_in_netns(netns_path, work)


def http_get(netns_path: str | None, host: str, port: int, path: str = "/", headers=None, timeout: float = 3.0):
    """HTTP GET from inside ``netns_path``; returns (status, body bytes)."""

    def work():
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    return run_in_netns(netns_path, work)


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of ``pid`` (from /proc/PID/net/tcp{,6})."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return ports


def run(cmd: list[str], *, netns_path: str | None = None, input_text: str | None = None, check: bool = True):
    """Run a command (optionally via ``nsenter --net``) with LANG=C; raise NetnsError on failure."""
    full = (["nsenter", f"--net={netns_path}", "--", *cmd]) if netns_path else list(cmd)
    env = dict(os.environ, LANG="C", LC_ALL="C")
    proc = subprocess.run(full, input=input_text, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(
            f"{' '.join(full)} failed (rc={proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if the pid is gone/zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data.rsplit(")", 1)[1].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def wait_gone(pid: int, start_time: int | None, timeout: float = 5.0) -> bool:
    """Wait until ``pid`` (started at ``start_time``) is gone or a zombie."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = proc_start_time(pid)
        if current is None or (start_time is not None and current != start_time):
            return True
        time.sleep(0.01)
    return False
