"""Read iptables rules from the host, a network namespace, a process's namespace or a file.

:func:`read_rules` runs only the ``*-save`` commands (read-only) and ``ip -j address``, through
the one reader of :mod:`.reader`: argument lists with ``LANG=C``, a namespace entered with
setns(2) from a thread, every command through the caller's runner. ``backend='auto'`` reads both
iptables-nft and iptables-legacy (and ip6tables) and reports when both hold rules: the kernel runs
both, and a tool that reads one of them misses the other.

A caller may pass ``runner(argv, timeout=None) -> (rc, stdout, stderr)`` (the modules pass a
wrapper around ``AnsibleModule.run_command``) and ``which(name) -> path | None``.
"""

import json
import os

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError, SourceError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump, parse_dumps
from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import (
    DumpError,
    Reader,
    in_netns,
)

BACKENDS = ("auto", "nft", "legacy")
FAMILIES = ("ipv4", "ipv6")


class ReadResult:
    """What was read: ``rulesets[family]`` is the ruleset the engine traces and audits;
    ``by_backend[(family, backend)]`` every ruleset read; ``warnings`` what a person should know."""

    def __init__(self, where):
        self.where = where
        self.rulesets = {}
        self.by_backend = {}
        self.warnings = []
        self.backend = None
        self.local_addresses = None
        self.commands = []
        self.both_backends = []  # families whose rules are in both iptables-nft and iptables-legacy

    def backends_with_rules(self, family):
        return [b for (f, b), rs in self.by_backend.items() if f == family and not rs.is_empty()]


def namespace_path(netns=None, pid=None):
    """Return the path of the network namespace to enter, or None for the host."""
    _refuse_empty(netns=netns)
    if netns and pid is not None:
        raise SourceError("give either netns or pid, not both")
    if netns in (".", ".."):
        # /run/netns/. is the directory itself (or missing where no namespace was ever named):
        # never a name `ip netns` gives, whatever this host has.
        raise SourceError(
            f"network namespace {netns!r}: not a network namespace: give a name from `ip netns list` "
            "or a path such as /proc/PID/ns/net"
        )
    if netns:
        path = netns if "/" in netns else os.path.join("/run/netns", netns)
        _check_path(
            path,
            f"network namespace {netns!r}",
            "(`ip netns list` shows the names; a path such as /proc/PID/ns/net also works)",
        )
        return path
    if pid is not None:
        try:
            pid_number = int(pid)
        except (TypeError, ValueError):
            raise SourceError(f"pid {pid!r} is not a process id") from None
        if pid_number <= 0:
            raise SourceError(f"pid {pid}: a process id is a positive number")
        path = f"/proc/{pid_number}/ns/net"
        _check_path(path, f"process {pid}", "(`pgrep` or `ps` shows the process ids)")
        return path
    return None


def _refuse_empty(**values):
    """An empty netns or src would silently mean the host: refuse it, naming the option."""
    for name, value in values.items():
        if value is not None and not str(value).strip():
            raise SourceError(
                f"{name}: an empty value would read the host's own rules; give a value, or leave {name} out "
                "to read the host on purpose"
            )


def _check_path(path, what, hint):
    try:
        os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"{what} not found: {path} does not exist {hint}") from None
    except PermissionError:
        raise SourceError(
            f"{what}: permission denied on {path} (the module runs as uid {os.geteuid()}); run it as root "
            "(become: true)"
        ) from None
    except OSError as exc:
        raise SourceError(f"{what}: cannot read {path}: {exc.strerror}") from None


def _local_addresses(reader):
    """Addresses of the calling thread's namespace (``ip -j address``), or None when `ip` fails."""
    ip_bin = reader.which("ip")
    if not ip_bin:
        return None
    try:
        rc, out, _err = reader.run([ip_bin, "-j", "address", "show"])
    except DumpError:
        return None
    if rc != 0:
        return None
    try:
        data = json.loads(out or "[]")
    except ValueError:
        return None
    return [info["local"] for link in data for info in link.get("addr_info", []) if info.get("local")]


def read_local_addresses(netns=None, pid=None, runner=None, which=None):
    """Addresses of the host or namespace (``ip -j address``), or None when `ip` is missing."""
    return in_netns(namespace_path(netns, pid), _local_addresses, Reader(runner, which))


def _read_live(reader, wanted, families, counters, local_addresses, where):
    """In the namespace: {(family, backend): entry or DumpError}, and the addresses."""
    dumps = {}
    for family in families:
        for name in wanted:
            try:
                dumps[(family, name)] = reader.save(name, family, counters=counters, generic=True)
            except DumpError as exc:
                dumps[(family, name)] = exc
    return dumps, (_local_addresses(reader) if local_addresses else None)


def read_rules(
    src=None,
    netns=None,
    pid=None,
    backend="auto",
    families=FAMILIES,
    runner=None,
    which=None,
    counters=True,
    local_addresses=True,
):
    """Read and parse rules; see the module docstring."""
    if backend not in BACKENDS:
        raise SourceError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    _refuse_empty(src=src, netns=netns)
    if src and (netns or pid is not None):
        raise SourceError("src reads a saved dump; it cannot be combined with netns or pid")
    if src:
        result = ReadResult(f"file {src}")
        if not os.path.isfile(src):
            what = "is not a regular file" if os.path.exists(src) else "no such file"
            raise SourceError(f"src {src}: {what}; give the path of a saved iptables-save or iptables -S dump")
        try:
            with open(src, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise SourceError(f"src {src}: cannot read: {exc}") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise SourceError(
                f"src {src}: line {line} is not UTF-8 text (byte {exc.start}): not a saved dump; give the path of "
                "a saved iptables-save or iptables -S dump"
            ) from exc
        rulesets = parse_dumps(text, source=src, backend="file")
        for ruleset in rulesets:
            if ruleset.family in result.rulesets:
                raise ParseError(f"the file holds two {ruleset.family} dumps", src)
            ruleset.backend = ruleset.dialect or "file"
            result.rulesets[ruleset.family] = ruleset
            result.by_backend[(ruleset.family, ruleset.backend)] = ruleset
            result.warnings.extend(ruleset.warnings)
            result.warnings.extend(ruleset.header_notes)
        result.backend = "file"
        return result

    path = namespace_path(netns, pid)
    where = f"network namespace {netns}" if netns else (f"network namespace of pid {pid}" if pid else "host")
    result = ReadResult(where)
    wanted = ("nft", "legacy") if backend == "auto" else (backend,)
    # One entry into the namespace for every dump and the addresses.
    dumps, addresses = in_netns(
        path, _read_live, Reader(runner, which), wanted, families, counters, local_addresses, where
    )
    used = set()
    for family in families:
        read_any = False
        errors = []
        for name in wanted:
            entry = dumps[(family, name)]
            if isinstance(entry, DumpError):
                errors.append(str(entry))
                continue
            result.commands.append(entry["argv"])
            label = f"{where} ({os.path.basename(entry['argv'][0])})"
            ruleset = parse_dump(entry["text"], source=label, family=family, backend=name)
            if ruleset.dialect and ruleset.dialect != name and backend != "auto":
                result.warnings.append(f"{label}: asked for the {name} backend but the dump is {ruleset.dialect}")
            result.by_backend[(family, name)] = ruleset
            # The dump's own notes (iptables-nft-save's "legacy tables present") are left out:
            # this reader reads both backends and says so itself.
            result.warnings.extend(ruleset.warnings)
            read_any = True
        if not read_any:
            if backend != "auto" or family == "ipv4":
                raise SourceError(f"cannot read {family} rules of the {where}: {'; '.join(errors)}")
            result.warnings.append(f"{family} rules not read: {'; '.join(errors)}")
            continue
        with_rules = result.backends_with_rules(family)
        if len(with_rules) > 1:
            result.both_backends.append(family)
            result.warnings.append(
                f"both iptables-nft and iptables-legacy hold {family} rules in the {where}: the kernel "
                "runs both sets; the trace and audit use the nft rules, the legacy rules are listed "
                "separately"
            )
        chosen = (
            "nft"
            if ("nft" in with_rules or not with_rules) and (family, "nft") in result.by_backend
            else next(b for f, b in result.by_backend if f == family)
        )
        if with_rules and chosen not in with_rules:
            chosen = with_rules[0]
        result.rulesets[family] = result.by_backend[(family, chosen)]
        used.add(chosen)
    result.backend = "+".join(sorted(used)) if used else backend
    result.local_addresses = addresses
    return result
