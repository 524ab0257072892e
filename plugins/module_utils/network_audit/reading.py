"""Reading each namespace once, in a thread of its own: the iptables dumps it needs (with the
legacy dump skipped where no legacy table exists), its listening sockets, and on the node
kube-proxy's nftables table and IPVS state; then parsing the dumps."""

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import dumps as dumpmod
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


def read_target(path, legacy_tables, opts, with_sockets):
    wanted, absent = dump_plan(opts["backends"], opts["families"], legacy_tables)
    out = dumpmod.read_namespace(
        path,
        wanted,
        timeout=opts["dump_timeout"],
        sockets_reader=sockdiag.listening_sockets if with_sockets else None,
        # The node only: kube-proxy's nftables table and IPVS state (its other modes).
        extra_readers=None
        if with_sockets
        else {"nft-kube-proxy": kube_proxy_modes.read_nft, "ipvs": kube_proxy_modes.read_ipvs},
    )
    out.update(absent)
    return out


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
