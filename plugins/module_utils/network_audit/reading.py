"""Reading each namespace once, in a thread of its own: the iptables dumps it needs (with the
legacy dump skipped where no legacy table exists), its listening sockets, and on the node
kube-proxy's nftables table and IPVS state; then parsing the dumps.

Every command goes through the one reader (:mod:`...iptables.reader`) the audit was given."""

import os
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import (
    DumpError,
    in_netns,
    no_legacy_tables,
)
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import (
    judge,
    kube_proxy_modes,
    procfs,
    sockdiag,
)


def attach_sockets(pod, answer):
    """Listening sockets with their owning process (like ``netstat -ntlp``)."""
    member_pids = pod.pop("member_pids", [])
    listen = answer["sockets"] if answer and answer["status"] == "ok" else None
    if listen is None:
        # No sock_diag: /proc/PID/net/tcp{,6} tells the same (slower on a busy node).
        try:
            listen = procfs.listening_sockets(pod["proxy"]["pid"]) if pod.get("proxy") else []
            pod["notes"].append("listening sockets read from /proc/PID/net/tcp (sock_diag unavailable)")
        except (procfs.ProcessGone, PermissionError) as exc:
            pod["notes"].append(f"listening sockets not read: {exc}")
            listen = []
    owners = procfs.socket_owners(member_pids)
    for sock in listen:
        owner = owners.get(sock.pop("inode"))
        sock["pid"], sock["process"] = owner if owner else (None, None)
        sock["purpose"] = judge.ISTIO_PORTS.get(sock["port"], "application")
    pod["listening"] = listen


def dump_plan(backends, families, legacy_tables):
    """{key: (backend, family)} to dump, and {key: entry} for dumps known to be absent."""
    wanted, absent = {}, {}
    for family in families:
        for backend in backends:
            key = backend if family == "ipv4" else f"{backend}-ipv6"
            if backend == "legacy" and family == "ipv4" and legacy_tables == []:
                absent[key] = {"status": "absent", "detail": "no legacy iptables tables in this namespace"}
            else:
                wanted[key] = (backend, family)
    return wanted, absent


def _error_entry(exc):
    return {"status": "error", "reason": exc.reason, "error": str(exc)}


def read_namespace(netns_path, wanted, reader, sockets_reader=None, extra_readers=None):
    """Enter ``netns_path`` once and take every dump in ``wanted`` ({key: (backend, family)}).

    Returns ``{key: {"status": "ok"|"absent"|"error", ...}}`` (an error has a ``reason``) and,
    when ``sockets_reader`` is given, the listening sockets it returns under ``"__sockets__"``.
    ``extra_readers`` ({key: reader_func(reader) -> entry}) run in the same namespace; their
    entries come back under ``"__extra__"``.
    """

    def work():
        out = {}
        if extra_readers:
            out["__extra__"] = {key: func(reader) for key, func in extra_readers.items()}
        if sockets_reader is not None:
            try:
                out["__sockets__"] = {"status": "ok", "sockets": sockets_reader()}
            except OSError as exc:
                out["__sockets__"] = {"status": "error", "error": f"sock_diag: {exc}"}
        for key, (backend, family) in wanted.items():
            if backend == "legacy" and no_legacy_tables(family):
                out[key] = {"status": "absent", "detail": "no legacy iptables tables in this namespace"}
                continue
            try:
                entry = reader.save(backend, family)
            except DumpError as exc:
                out[key] = _error_entry(exc)
                continue
            out[key] = {"status": "ok", **{k: entry[k] for k in ("text", "seconds", "command")}}
        return out

    try:
        return in_netns(netns_path, work)
    except DumpError as exc:  # the namespace itself could not be entered
        out = {key: _error_entry(exc) for key in wanted}
        if sockets_reader:
            out["__sockets__"] = {"status": "error", "error": str(exc)}
        if extra_readers:
            out["__extra__"] = {key: _error_entry(exc) for key in extra_readers}
        return out


def read_target(path, legacy_tables, opts, with_sockets, reader):
    wanted, absent = dump_plan(opts["backends"], opts["families"], legacy_tables)
    out = read_namespace(
        path,
        wanted,
        reader,
        sockets_reader=sockdiag.listening_sockets if with_sockets else None,
        # The node only: kube-proxy's nftables table and IPVS state (its other modes).
        extra_readers=None
        if with_sockets
        else {"nft-kube-proxy": kube_proxy_modes.read_nft, "ipvs": kube_proxy_modes.read_ipvs},
    )
    out.update(absent)
    return out


def read_all(node_netns, pods, opts, reader):
    """Read the node and every readable pod, each namespace in a thread of its own.

    Returns ``{"host": entries, pod_id: entries}`` (see :func:`read_namespace`)."""
    workers = opts["workers"] or max(2, (os.cpu_count() or 2) * 2)
    jobs = {"host": (node_netns, None)}
    for pod in pods:
        if pod["status"] == "ok":
            jobs[pod["id"]] = (pod["netns_path"], pod.get("legacy_tables"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            key: pool.submit(read_target, path, legacy, opts, key != "host", reader)
            for key, (path, legacy) in jobs.items()
        }
        return {key: fut.result() for key, fut in futures.items()}


def parse_dumps(dumps, source):
    parsed = {}
    for key, dump in dumps.items():
        if dump["status"] != "ok":
            continue
        try:
            ruleset = judge.parse(dump["text"], f"{source} ({dump['command']})", key.split("-")[0])
        except IptablesError as exc:
            dump["status"] = "error"
            dump["error"] = f"could not parse: {exc}"
            continue
        dump["rule_count"] = ruleset.rule_count()
        if ruleset.rule_count() == 0 and ruleset.is_empty():
            dump["status"] = "empty"
        parsed[key] = ruleset
    return parsed
