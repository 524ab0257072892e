"""The one way the collection runs read-only commands on a node: the ``*-save`` dumps, ``ip``,
``nft`` and the container runtime's CLI.

* one table of the save commands (:data:`SAVE_COMMANDS`);
* one way into a network namespace: :func:`in_netns` runs a function in a short-lived thread
  that joined the namespace with setns(2) (that thread only); a command started from there
  inherits the namespace, as with ``nsenter --net=PATH``, minus one exec;
* every command through one runner, ``runner(argv, timeout=None) -> (rc, stdout, stderr)``:
  the modules pass :func:`module_runner` (the module's environment; output collected in linear
  time, which ``AnsibleModule.run_command`` does not), tests and scripts get
  :func:`default_runner`. A runner raises :class:`CommandTimeout` when ``timeout`` ran out.

Failures carry a structured ``reason`` (see :class:`DumpError`) that callers decide on.
"""

import ctypes
import errno
import os
import shutil
import subprocess
import threading
import time

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import SourceError

SAVE_COMMANDS = {
    ("nft", "ipv4"): "iptables-nft-save",
    ("legacy", "ipv4"): "iptables-legacy-save",
    ("nft", "ipv6"): "ip6tables-nft-save",
    ("legacy", "ipv6"): "ip6tables-legacy-save",
}
# Older distributions ship only the generic name (it is one of the two backends).
GENERIC_SAVE_COMMANDS = {"ipv4": "iptables-save", "ipv6": "ip6tables-save"}
ENV = {"LANG": "C", "LC_ALL": "C"}
# Where get_bin_path looks besides PATH: the save commands live in sbin, often not in a user's PATH.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class CommandTimeout(Exception):
    """A command ran longer than its timeout and was killed."""


class DumpError(SourceError):
    """A read could not be done; the message names the namespace, the command and the cause.

    ``reason`` is the structured cause callers decide on: ``no-namespace`` (it is gone),
    ``permission``, ``not-installed``, ``timeout`` or ``failed``."""

    def __init__(self, message, reason="failed"):
        super().__init__(message)
        self.reason = reason


def default_runner(argv, timeout=None):
    env = dict(os.environ)
    env.update(ENV)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(f"{argv[0]} timed out after {timeout}s") from exc
    return proc.returncode, proc.stdout, proc.stderr


def default_which(name):
    return shutil.which(name) or next(
        (path for path in (shutil.which(name, path=d) for d in _SBIN) if path is not None), None
    )


def module_runner(module):
    """runner(argv, timeout) for a module: the module's environment with LANG=C, no shell, the
    output decoded as ``AnsibleModule.run_command`` decodes it (UTF-8, undecodable bytes kept).

    Not through run_command: it gathers a command's output with ``stdout += chunk`` on bytes, one
    pipe read (up to 32 KiB) at a time, so every read copies all the output so far and the time
    grows with the square of the output. kube-proxy's nftables table of 10k services is 36 MB of
    ``nft -j``: 1,373 reads, 20 GB copied, 7.7 s of CPU beside nft's own 5.7 s. ``subprocess``
    keeps the chunks in a list and joins them once (0.2 s)."""

    def run(argv, timeout=None):
        env = dict(os.environ)
        env.update(module.run_command_environ_update or {})
        env.update(ENV)
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(f"{argv[0]} timed out after {timeout}s") from exc
        return (
            proc.returncode,
            proc.stdout.decode("utf-8", "surrogateescape"),
            proc.stderr.decode("utf-8", "surrogateescape"),
        )

    return run


def module_which(module):
    def which(name):
        return module.get_bin_path(name, required=False)

    return which


def errno_reason(err):
    if err in (errno.ENOENT, errno.ESRCH):
        return "no-namespace"
    if err in (errno.EACCES, errno.EPERM):
        return "permission"
    return "failed"


def in_netns(netns_path, func, *args):
    """Call ``func(*args)`` in a thread that joined ``netns_path`` (None: the current namespace).

    Raises :class:`DumpError` (``no-namespace``, ``permission``, ``failed``) when the namespace
    cannot be entered; what ``func`` raises is raised here."""
    if netns_path is None:
        return func(*args)
    box = {}

    def target():
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["error"] = DumpError(
                f"cannot open network namespace {netns_path}: {exc.strerror}", errno_reason(exc.errno)
            )
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                # EINVAL: the file is not a network namespace (a directory, a regular file, a
                # namespace of another type); say so rather than "Invalid argument" alone.
                hint = (
                    " (not a network namespace: give a name from `ip netns list` or a path such as /proc/PID/ns/net)"
                    if err == errno.EINVAL
                    else ""
                )
                box["error"] = DumpError(
                    f"cannot enter network namespace {netns_path}: {os.strerror(err)}{hint}", errno_reason(err)
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


def no_legacy_tables(family):
    """True when the calling thread's namespace has no legacy (x_tables) table of ``family``."""
    name = "ip_tables_names" if family == "ipv4" else "ip6_tables_names"
    try:
        with open(f"/proc/thread-self/net/{name}", encoding="ascii") as handle:
            return not handle.read().strip()
    except OSError:
        return False  # cannot tell: dump


def command_text(argv):
    """The command as a person would type it: the program's name, not its path."""
    return " ".join([os.path.basename(argv[0]), *argv[1:]])


def _rc_reason():
    # iptables-save exits 1 with "Permission denied (you must be root)" without CAP_NET_ADMIN.
    return "permission" if os.geteuid() != 0 else "failed"


class Reader:
    """Runs read-only commands through one runner, with binaries looked up once.

    ``timeout`` (seconds, None: no limit) applies to every command it runs."""

    def __init__(self, runner=None, which=None, timeout=None):
        self.runner = runner or default_runner
        self._which = which or default_which
        self.timeout = timeout
        self._paths = {}
        self._lock = threading.Lock()

    def which(self, name):
        with self._lock:
            if name not in self._paths:
                self._paths[name] = self._which(name)
            return self._paths[name]

    def run(self, argv, where=None):
        """(rc, stdout, stderr) of ``argv``; a missing program or a timeout is a DumpError."""
        where = f" in {where}" if where else ""
        try:
            return self.runner(argv, timeout=self.timeout)
        except CommandTimeout as exc:
            raise DumpError(f"{command_text(argv)}{where} timed out after {self.timeout}s", "timeout") from exc
        except FileNotFoundError as exc:
            name = os.path.basename(argv[0])
            raise DumpError(f"{name} is not installed on the node ({exc.strerror})", "not-installed") from exc
        except OSError as exc:
            reason = "permission" if exc.errno in (errno.EACCES, errno.EPERM) else "failed"
            raise DumpError(f"{command_text(argv)}{where} could not be run: {exc.strerror}", reason) from exc

    def save_binary(self, backend, family, generic=False):
        """Path of the save command of ``backend``/``family``; ``generic`` allows iptables-save."""
        path = self.which(SAVE_COMMANDS[(backend, family)])
        if path is None and generic:
            path = self.which(GENERIC_SAVE_COMMANDS[family])
        return path

    def save(self, backend, family="ipv4", counters=True, where=None, generic=False):
        """Dump one backend/family of the calling thread's namespace.

        Returns ``{"text", "stderr", "seconds", "command", "argv"}``; raises :class:`DumpError`."""
        name = SAVE_COMMANDS[(backend, family)]
        binary = self.save_binary(backend, family, generic)
        if binary is None:
            raise DumpError(f"{name} is not installed on the node (not found in PATH or sbin)", "not-installed")
        argv = [binary, "-c"] if counters else [binary]
        start = time.monotonic()
        rc, out, err = self.run(argv, where)
        if rc != 0:
            place = f" in {where}" if where else ""
            detail = (err or out).strip()[:300]
            raise DumpError(f"{command_text(argv)}{place} failed (rc={rc}): {detail}", _rc_reason())
        return {
            "text": out,
            "stderr": (err or "").strip(),
            "seconds": round(time.monotonic() - start, 4),
            "command": command_text(argv),
            "argv": argv,
        }


def save(netns_path, backend, family="ipv4", reader=None, counters=True):
    """Dump one backend/family of the namespace at ``netns_path`` (None: the current one)."""
    reader = reader or Reader()
    return in_netns(netns_path, reader.save, backend, family, counters, netns_path)
