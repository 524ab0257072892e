"""Dump iptables rules, with counters, inside a network namespace without entering it for good.

A short-lived thread joins the namespace with setns(2) (which affects that thread only) and runs
``iptables-<backend>-save -c`` from there; the child process inherits the thread's namespace.
This is what ``nsenter --net=... iptables-save -c`` does, minus one exec. Read-only.
"""

import ctypes
import errno
import os
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

SAVE_COMMANDS = {
    ("nft", "ipv4"): "iptables-nft-save",
    ("legacy", "ipv4"): "iptables-legacy-save",
    ("nft", "ipv6"): "ip6tables-nft-save",
    ("legacy", "ipv6"): "ip6tables-legacy-save",
}
_ENV = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class DumpError(Exception):
    """A dump could not be taken; the message names the namespace, the command and the cause.

    ``reason`` is the structured cause callers decide on: ``no-namespace`` (it is gone),
    ``permission``, ``not-installed``, ``timeout`` or ``failed``."""

    def __init__(self, message, reason="failed"):
        super().__init__(message)
        self.reason = reason


def _errno_reason(err):
    if err in (errno.ENOENT, errno.ESRCH):
        return "no-namespace"
    if err in (errno.EACCES, errno.EPERM):
        return "permission"
    return "failed"


def in_netns(netns_path, func, *args):
    """Call ``func(*args)`` in a thread that joined ``netns_path`` (None: the current namespace)."""
    if netns_path is None:
        return func(*args)
    box = {}

    def target():
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["error"] = DumpError(
                f"cannot open network namespace {netns_path}: {exc.strerror}", _errno_reason(exc.errno)
            )
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = DumpError(
                    f"cannot enter network namespace {netns_path}: {os.strerror(err)}", _errno_reason(err)
                )
                return
        finally:
            os.close(fd)
        try:
            box["value"] = func(*args)
        except Exception as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _save(binary, timeout):
    proc = subprocess.run([binary, "-c"], capture_output=True, text=True, env=_ENV, timeout=timeout, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def save(netns_path, backend, family="ipv4", timeout=30, bin_paths=None):
    """Return ``{"text", "seconds", "command"}`` for one backend/family in one namespace."""
    name = SAVE_COMMANDS[(backend, family)]
    binary = (bin_paths or {}).get(name) or name
    start = time.monotonic()
    try:
        rc, out, err = in_netns(netns_path, _save, binary, timeout)
    except FileNotFoundError as exc:
        raise DumpError(f"{name} is not installed on the node ({exc.strerror})", "not-installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise DumpError(
            f"{name} -c in {netns_path or 'the node namespace'} timed out after {timeout}s", "timeout"
        ) from exc
    if rc != 0:
        where = netns_path or "the node namespace"
        raise DumpError(f"{name} -c in {where} failed (rc={rc}): {err.strip()[:300]}", _rc_reason())
    return {"text": out, "stderr": err.strip(), "seconds": round(time.monotonic() - start, 4), "command": f"{name} -c"}


def _no_legacy_tables(family):
    """True when the calling thread's namespace has no legacy (x_tables) table of ``family``."""
    name = "ip_tables_names" if family == "ipv4" else "ip6_tables_names"
    try:
        with open(f"/proc/thread-self/net/{name}", encoding="ascii") as handle:
            return not handle.read().strip()
    except OSError:
        return False  # cannot tell: dump


def read_namespace(netns_path, wanted, timeout=30, sockets_reader=None, extra_readers=None):
    """Enter ``netns_path`` once and take every dump in ``wanted`` ({key: (backend, family)}).

    Returns ``{key: {"status": "ok"|"error", ...}}`` and, when ``sockets_reader`` is given, the
    listening sockets it returns under the key ``"__sockets__"`` (or the error text).
    ``extra_readers`` ({key: reader(timeout) -> entry}) run in the same namespace; their entries
    come back under ``"__extra__"``.
    """

    def work():
        out = {}
        if extra_readers:
            out["__extra__"] = {key: reader(timeout) for key, reader in extra_readers.items()}
        if sockets_reader is not None:
            try:
                out["__sockets__"] = {"status": "ok", "sockets": sockets_reader()}
            except OSError as exc:
                out["__sockets__"] = {"status": "error", "error": f"sock_diag: {exc}"}
        for key, (backend, family) in wanted.items():
            name = SAVE_COMMANDS[(backend, family)]
            if backend == "legacy" and _no_legacy_tables(family):
                out[key] = {"status": "absent", "detail": "no legacy iptables tables in this namespace"}
                continue
            start = time.monotonic()
            try:
                rc, text, err = _save(name, timeout)
            except FileNotFoundError as exc:
                out[key] = {
                    "status": "error",
                    "reason": "not-installed",
                    "error": f"{name} is not installed on the node ({exc.strerror})",
                }
                continue
            except subprocess.TimeoutExpired:
                out[key] = {"status": "error", "reason": "timeout", "error": f"{name} -c timed out after {timeout}s"}
                continue
            if rc != 0:
                out[key] = {
                    "status": "error",
                    "reason": _rc_reason(),
                    "error": f"{name} -c failed (rc={rc}): {err.strip()[:300]}",
                }
                continue
            out[key] = {
                "status": "ok",
                "text": text,
                "seconds": round(time.monotonic() - start, 4),
                "command": f"{name} -c",
            }
        return out

    try:
        return in_netns(netns_path, work)
    except DumpError as exc:
        out = {key: {"status": "error", "reason": exc.reason, "error": str(exc)} for key in wanted}
        if sockets_reader:
            out["__sockets__"] = {"status": "error", "error": str(exc)}
        if extra_readers:
            out["__extra__"] = {
                key: {"status": "error", "reason": exc.reason, "error": str(exc)} for key in extra_readers
            }
        return out


def _rc_reason():
    # iptables-save exits 1 with "Permission denied (you must be root)" without CAP_NET_ADMIN.
    return "permission" if os.geteuid() != 0 else "failed"
