"""One node's network audit: discovery, dumps, judgement (and the opt-in probe).

``run_audit(options)`` returns ``(report, dumps)``: the report follows
docs/network-audit-schema.md (``schema_version`` 1); ``dumps`` maps a file name to the raw
``iptables-save -c`` text, which the controller saves next to the report. Read-only: it reads
/proc and runs ``iptables-*-save`` (and, only with ``probe``, opens one TCP connection per pod).
"""

import json
import os
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.options import (
    MAX_ID,
    OptionError,
    validate_expected,
)
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import dumps as dumpmod
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import (
    judge,
    kube_proxy_modes,
    procfs,
    sockdiag,
)
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import runtime as runtimemod
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.findings import finding, worst_severity
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.paths import describe_trace

SCHEMA_VERSION = 1
PROXY_NAMES = ("envoy", "pilot-agent")
GATEWAY_LABELS = ("ingressgateway", "egressgateway")
ENV_KEYS = ("POD_NAME", "POD_NAMESPACE", "INSTANCE_IP", "ISTIO_META_WORKLOAD_NAME", "ISTIO_METAJSON_LABELS")

DEFAULTS = {
    "proxy_uids": [1337],
    "proxy_names": list(PROXY_NAMES),
    "backends": ["nft", "legacy"],
    "families": ["ipv4"],
    "node_netns": None,
    "netns_include": [],
    "runtime_lookup": True,
    "probe": False,
    "probe_timeout": 2.0,
    "workers": 0,
    "dump_timeout": 30,
    "expected": {},
    "known_pods": [],
}


class NodeAuditError(Exception):
    """The node itself cannot be audited (no /proc, no iptables at all), or an option is unusable."""


MAX_DUMP_TIMEOUT = 3600
MAX_PROBE_TIMEOUT = 300


def _number(opts, key, low, high, kind=float):
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NodeAuditError(f"{key}: {value!r} is not a number; give seconds between {low} and {high}")
    if not low < value <= high:
        raise NodeAuditError(f"{key}: {value} is out of range; give seconds above {low} and at most {high}")
    return kind(value)


def validate_options(options):
    """The audit's options, checked before anything is read; bad values name the option and the fix."""
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in (options or {}).items() if v is not None})
    opts["dump_timeout"] = _number(opts, "dump_timeout", 0, MAX_DUMP_TIMEOUT)
    opts["probe_timeout"] = _number(opts, "probe_timeout", 0, MAX_PROBE_TIMEOUT)
    workers = opts["workers"]
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 256:
        raise NodeAuditError(f"workers: {workers!r} must be a whole number from 0 (automatic) to 256")
    for key, known in (("families", ("ipv4", "ipv6")), ("backends", ("nft", "legacy"))):
        values = list(opts[key] or [])
        if not values or any(v not in known for v in values):
            raise NodeAuditError(f"{key}: {values!r} must be a non-empty list of {', '.join(known)}")
        opts[key] = list(dict.fromkeys(values))
    for uid in opts["proxy_uids"]:
        if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid <= MAX_ID:
            raise NodeAuditError(f"proxy_uids: {uid!r} is not a uid; give numbers from 0 to {MAX_ID}")
    try:
        opts["expected"] = validate_expected(opts["expected"])
    except OptionError as exc:
        raise NodeAuditError(str(exc)) from None
    return opts


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _node_addresses(node_netns):
    return dumpmod.in_netns(node_netns, procfs.node_ipv4_addresses)


def _netns_key(path):
    return os.stat(path).st_ino


# --- discovery ---------------------------------------------------------------------------------


def discover(opts, node_inode):
    """Group processes by network namespace; keep namespaces holding a proxy process."""
    procs, unreadable = procfs.scan_processes()
    by_ns = {}
    for p in procs:
        by_ns.setdefault(p.netns_inode, []).append(p)
    include = None
    if opts["netns_include"]:
        include = set()
        for path in opts["netns_include"]:
            try:
                include.add(_netns_key(path))
            except OSError:
                continue
    names = set(opts["proxy_names"])
    uids = set(opts["proxy_uids"])
    sidecars = []
    host_proxies = []
    for inode, members in by_ns.items():
        proxies = []
        for p in members:
            by = []
            if p.comm in names:
                by.append("name")
            if p.uid in uids:
                by.append("uid")
            if by:
                proxies.append((p, by))
        if not proxies:
            continue
        if inode == node_inode:
            host_proxies.extend({"pid": p.pid, "comm": p.comm, "uid": p.uid, "detected_by": by} for p, by in proxies)
            continue
        if include is not None and inode not in include:
            continue
        sidecars.append({"inode": inode, "members": members, "proxies": proxies})
    sidecars.sort(key=lambda s: min(p.pid for p in s["members"]))
    return sidecars, host_proxies, unreadable


def _name_pod(pod, proxy_pid, argv):
    """Name the pod from its proxy's environment or Envoy bootstrap; record the source."""
    env = {}
    try:
        env = procfs.environ(proxy_pid, keys=ENV_KEYS)
    except procfs.ProcessGone:
        pass
    except PermissionError:
        pod["notes"].append(f"environment of pid {proxy_pid} not readable")
    boot = procfs.envoy_bootstrap_node(proxy_pid, argv) if argv else {}
    node_id = procfs.parse_istio_node_id(boot.get("id"))
    labels = dict((boot.get("metadata") or {}).get("LABELS") or {})
    if not labels and env.get("ISTIO_METAJSON_LABELS"):
        try:
            labels = json.loads(env["ISTIO_METAJSON_LABELS"])
        except ValueError:
            labels = {}
    name = namespace = None
    named_by = None
    if env.get("POD_NAME"):
        name, namespace, named_by = env["POD_NAME"], env.get("POD_NAMESPACE"), "proxy environment"
    elif node_id.get("pod"):
        name, namespace, named_by = node_id["pod"], node_id.get("namespace"), "envoy bootstrap node id"
    pod["name"] = name
    pod["namespace"] = namespace
    pod["named_by"] = named_by or "address"
    pod["labels"] = labels
    pod["envoy_node_id"] = boot.get("id")
    pod["role"] = "gateway" if _is_gateway(name, labels, node_id.get("kind")) else "sidecar"


def _is_gateway(name, labels, kind):
    if kind == "router" or labels.get("istio") in GATEWAY_LABELS:
        return True
    return bool(name and ("ingressgateway" in name or "egressgateway" in name))


def _api_names(pods, known_pods):
    """Name pods by IP from the Kubernetes API's pod list (given by the controller)."""
    by_ip = {}
    for item in known_pods:
        if item.get("host_network"):
            continue
        for ip in item.get("ips") or [item.get("ip")]:
            if ip:
                by_ip[ip] = item
    for pod in pods:
        item = next((by_ip[ip] for ip in pod.get("ips", []) if ip in by_ip), None)
        if item is None:
            continue
        pod["name"], pod["namespace"] = item.get("name"), item.get("namespace")
        pod["named_by"] = "kubernetes api (pod IP)"
        pod["labels"] = item.get("labels") or pod.get("labels") or {}
        if _is_gateway(pod["name"], pod["labels"], None):
            pod["role"] = "gateway"
        pod["display"] = _display(pod)


def _runtime_name(entry, pod, runtime_index):
    """The container runtime's word wins over what the processes say."""
    for member in entry["members"]:
        for cid in procfs.cgroup_container_ids(member.pid):
            info = runtime_index.get(cid)
            if info and info.get("pod"):
                pod["name"], pod["namespace"] = info["pod"], info.get("namespace")
                pod["named_by"] = f"container runtime ({info['runtime']})"
                pod["labels"] = info.get("labels") or pod.get("labels") or {}
                if _is_gateway(pod["name"], pod["labels"], None):
                    pod["role"] = "gateway"
                pod["display"] = _display(pod)
                return


def _display(pod):
    if pod.get("name"):
        return f"{pod['namespace']}/{pod['name']}" if pod.get("namespace") else pod["name"]
    ip = pod["ips"][0] if pod.get("ips") else "unknown"
    return f"pod with IP {ip} in netns inode {pod['netns_inode']}"


def _describe_pod(entry, opts):
    proxies = entry["proxies"]
    proxy_pid = next((p.pid for p, _by in proxies if p.comm == "envoy"), proxies[0][0].pid)
    pod = {
        "id": f"netns-{entry['inode']}",
        "netns_inode": entry["inode"],
        "netns_path": f"/proc/{proxy_pid}/ns/net",
        "status": "ok",
        "name": None,
        "namespace": None,
        "named_by": "address",
        "labels": {},
        "role": "sidecar",
        "notes": [],
        "errors": [],
        "findings": [],
    }
    argv = []
    try:
        argv = procfs.cmdline(proxy_pid)
    except procfs.ProcessGone:
        pod["status"] = "gone"
        pod["errors"].append(f"proxy process {proxy_pid} exited during the audit")
        pod["ips"] = []
        pod["display"] = f"pod in netns inode {entry['inode']}"
        return pod
    _name_pod(pod, proxy_pid, argv)
    pod["proxy"] = {
        "pid": proxy_pid,
        "processes": [
            {"pid": p.pid, "comm": p.comm, "uid": p.uid, "gid": p.gid, "detected_by": by} for p, by in proxies
        ],
        "uids": sorted({p.uid for p, _by in proxies}),
        "command": procfs.describe_cmdline(argv),
    }
    pod["processes"] = [{"pid": p.pid, "comm": p.comm, "uid": p.uid} for p in entry["members"]]
    try:
        pod["ips"] = procfs.local_ipv4_addresses(proxy_pid)
        if "ipv6" in opts["families"]:
            pod["ips"] += procfs.local_ipv6_addresses(proxy_pid)
        pod["member_pids"] = [p.pid for p in entry["members"]]
        pod["legacy_tables"] = procfs.legacy_tables_loaded(proxy_pid)
    except procfs.ProcessGone:
        pod["status"] = "gone"
        pod["errors"].append(f"proxy process {proxy_pid} exited during the audit")
        pod.setdefault("ips", [])
    except PermissionError as exc:
        pod["status"] = "unreadable"
        pod["errors"].append(f"namespace of pid {proxy_pid} not readable: {exc}")
        pod.setdefault("ips", [])
    pod["display"] = _display(pod)
    return pod


# --- dumps -------------------------------------------------------------------------------------


def _attach_sockets(pod, answer):
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


def _dump_plan(backends, families, legacy_tables):
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


def _read_target(path, legacy_tables, opts, with_sockets):
    wanted, absent = _dump_plan(opts["backends"], opts["families"], legacy_tables)
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


def _parse_dumps(dumps, source):
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


# --- judgement ---------------------------------------------------------------------------------


def _app_ports(pod):
    ports = [s["port"] for s in pod.get("listening", []) if s["purpose"] == "application"]
    return sorted(set(ports))


def _dump_key(backend, family):
    return backend if family == "ipv4" else f"{backend}-ipv6"


def _capture_ruleset(parsed, families=("ipv4", "ipv6")):
    """The ruleset that holds the capture rules: the first family read (IPv4 before IPv6), the
    first backend with ISTIO_* chains."""
    for family in families:
        for backend in ("nft", "legacy"):
            rs = parsed.get(_dump_key(backend, family))
            if rs is not None and judge.has_capture_chains(rs):
                return backend, rs
    return None, None


def _judge_pod(pod, parsed, opts, unread):
    backends_with_rules = [k for k, rs in parsed.items() if not k.endswith("ipv6") and rs.rule_count() > 0]
    pod["backends_in_use"] = backends_with_rules
    capture_backend, ruleset = _capture_ruleset(parsed, opts["families"])
    pod["capture_backend"] = capture_backend
    if len([k for k in backends_with_rules if k in ("nft", "legacy")]) > 1:
        pod["findings"].append(
            finding(
                "POD_MIXED_BACKENDS",
                "warning",
                f"rules exist in both iptables-nft and iptables-legacy ({', '.join(backends_with_rules)}): the kernel "
                "runs both; the capture may not be what one backend's listing shows",
            )
        )
    pod["app_ports"] = _app_ports(pod)
    if pod["role"] == "gateway":
        pod["capture"] = None
        pod["findings"].append(
            finding(
                "GATEWAY_NO_CAPTURE_EXPECTED",
                "info",
                "ingress/egress gateway: Envoy is the application, no capture rules are expected",
            )
        )
        return
    if ruleset is None and "ipv4" not in opts["families"]:
        unread = [*unread, "the IPv4 rules (families does not include ipv4)"]
    if ruleset is None and unread:
        # No judgement from rules that were not read: the capture may be in the dump that failed.
        pod["capture"] = None
        pod["findings"].append(
            finding(
                "CAPTURE_NOT_JUDGED",
                "warning",
                f"no capture rules were found in the dumps that could be read, but {', '.join(unread)} could not "
                "be read (see DUMP_FAILED): whether this pod's traffic is captured is unknown",
            )
        )
        return
    if ruleset is None:
        pod["capture"] = {"enabled": False}
        pod["findings"].append(
            finding(
                "MESH_BYPASS_NO_CAPTURE",
                "error",
                "Envoy runs in this pod but no ISTIO_* capture rules exist on any backend: the pod is in the mesh "
                "but its traffic bypasses the sidecar",
            )
        )
        return
    app_ports = pod["app_ports"]
    v6 = ruleset.family == "ipv6"
    ip = next((a for a in pod["ips"] if (":" in a) == v6), None)
    local = [*pod["ips"], "::1", "::6"] if v6 else [*pod["ips"], "127.0.0.1", "127.0.0.6"]
    expected = dict(opts["expected"])
    if ip:
        expected.setdefault("pod_ip", ip)
    if app_ports:
        expected.setdefault("app_port", app_ports[0])
    try:
        audited = judge.sidecar_audit(ruleset, expected, local)
        # The traces are kept once, as paths: the engine's steps and verdict plus counters and listeners.
        paths = [describe_trace(t, ruleset, pod) for t in audited.get("traces") or []]
    except IptablesError as exc:
        pod["capture"] = None
        pod["findings"].append(finding("ENGINE_ERROR", "error", f"the rules could not be judged: {exc}"))
        return
    pod["capture"] = audited.get("capture")
    pod["findings"].extend(dict(f, source="engine") for f in audited.get("findings") or [])
    _check_capture_ports(pod)
    pod["paths"] = paths


def _check_capture_ports(pod):
    """The rules send captured traffic to ports; someone in the pod must listen there."""
    capture = pod.get("capture") or {}
    listening = {sock["port"]: sock for sock in pod.get("listening", [])}
    for direction, enabled in (("inbound", "inbound_enabled"), ("outbound", "outbound_enabled")):
        port = capture.get(f"{direction}_port")
        if not capture.get(enabled) or port is None or port in listening:
            continue
        proxy_ports = sorted(p for p, s in listening.items() if s.get("process") in PROXY_NAMES)
        pod["findings"].append(
            finding(
                "CAPTURE_PORT_NOT_LISTENING",
                "error",
                f"the {direction} capture rules redirect to port {port}, but nothing listens there in this pod "
                f"(the proxy listens on {', '.join(map(str, proxy_ports)) or 'no port'}): captured {direction} "
                "connections are refused",
            )
        )


def _majority(pods, parsed_by_pod, opts):
    """Find pods whose capture rules differ from the most common ruleset on this node."""
    texts = {}
    for pod in pods:
        if pod["role"] != "sidecar" or pod["status"] != "ok":
            continue
        _backend, rs = _capture_ruleset(parsed_by_pod.get(pod["id"], {}), opts["families"])
        if rs is not None:  # pods without capture rules have their own (error) finding
            texts[pod["id"]] = rs.normalized_text()
    if len(texts) < 3:
        return None
    counts = Counter(texts.values())
    ((common, n),) = counts.most_common(1)
    if n * 2 <= len(texts):
        return {"majority": None, "pods": len(texts)}
    for pod in pods:
        if pod["id"] in texts and texts[pod["id"]] != common:
            pod["findings"].append(
                finding(
                    "RULES_DIFFER_FROM_MAJORITY",
                    "warning",
                    f"this pod's capture rules differ from those of {n} of the {len(texts)} sidecar pods on the node",
                )
            )
    return {"majority_pods": n, "pods": len(texts)}


def _judge_host(report, parsed, pods, node_addresses, kube_proxy_dumps):
    host = report["host"]
    host["backends_in_use"] = [k for k, rs in parsed.items() if rs.rule_count() > 0]
    rs = parsed.get("nft") if parsed.get("nft") is not None and parsed["nft"].rule_count() else parsed.get("legacy")
    if len(host["backends_in_use"]) > 1:
        report["findings"].append(
            finding(
                "NODE_MIXED_BACKENDS",
                "warning",
                f"the node holds rules in both backends ({', '.join(host['backends_in_use'])})",
            )
        )
    gateway_ips = {ip: p for p in pods if p["role"] == "gateway" for ip in p.get("ips", [])}
    pod_by_ip = {ip: p for p in pods for ip in p.get("ips", [])}
    host["kube_proxy"] = judge.kube_proxy_services(rs) if rs is not None else None
    mode, services, mode_paths, findings = kube_proxy_modes.judge(
        kube_proxy_dumps,
        host["kube_proxy"],
        node_addresses,
        lambda trace, ruleset: describe_trace(trace, ruleset, None, pod_by_ip=pod_by_ip),
        pod_by_ip,
    )
    host["kube_proxy_mode"] = mode
    report["findings"].extend(findings)
    if mode["mode"] in ("nftables", "ipvs"):
        host["kube_proxy"] = services
        for described in mode_paths:
            _mark_gateway(described, gateway_ips)
        host["node_port_paths"] = mode_paths
        return
    if rs is None:
        return
    paths = []
    node_ip = node_addresses[0] if node_addresses else None
    for np in _nodeports_from_rules(rs)["node_ports"]:
        if node_ip is None:
            break
        spec = {
            "name": f"NodePort {np['node_port']} ({np['service']})",
            "hook": "prerouting",
            "protocol": "tcp",
            "src": "192.0.2.10",
            "dst": node_ip,
            "dport": np["node_port"],
            "in_interface": "eth0",
        }
        (trace,) = judge.trace_all(rs, [spec], node_addresses)
        described = describe_trace(trace, rs, None, pod_by_ip=pod_by_ip)
        described["service"] = np["service"]
        described["node_port"] = np["node_port"]
        _mark_gateway(described, gateway_ips)
        paths.append(described)
    host["node_port_paths"] = paths


def _mark_gateway(described, gateway_ips):
    targets = described.get("destinations", [])
    described["gateway_pods"] = sorted(
        {gateway_ips[t.split(":")[0]]["display"] for t in targets if t.split(":")[0] in gateway_ips}
    )
    described["ingress_gateway"] = bool(described["gateway_pods"]) or "ingressgateway" in str(described.get("service"))


def _nodeports_from_rules(rs):
    """NodePorts from KUBE-NODEPORTS (service from kube-proxy's comment)."""
    chain = rs.chain("nat", "KUBE-NODEPORTS")
    found = []
    for rule in chain.rules if chain else []:
        comment = next((c.value for c in rule.conditions(option="comment")), None)
        dport = next((c.value for c in rule.conditions(option="dport")), None)
        if dport and str(dport).isdigit():
            found.append({"service": (comment or rule.target).strip('"'), "node_port": int(dport)})
    return {"node_ports": found, "detail": "from KUBE-NODEPORTS"}


# --- probe -------------------------------------------------------------------------------------


def _probe_pod(pod, opts, node_netns):
    """Counters before, one TCP connection from the node to the app port, counters after."""
    ports = pod.get("app_ports") or []
    ip = next((a for a in pod.get("ips", []) if ":" not in a), None)
    if not ports or not ip or pod.get("role") != "sidecar":
        return {"status": "skipped", "reason": "no application port or address"}
    port = ports[0]
    backend = pod.get("capture_backend") or "nft"
    try:
        before = judge.parse(dumpmod.save(pod["netns_path"], backend)["text"], "probe-before", backend)
        error = None
        start = time.monotonic()

        def connect():
            with socket.create_connection((ip, port), timeout=opts["probe_timeout"]):
                pass

        try:
            dumpmod.in_netns(node_netns, connect)
        except OSError as exc:
            error = str(exc)
        elapsed = time.monotonic() - start
        after = judge.parse(dumpmod.save(pod["netns_path"], backend)["text"], "probe-after", backend)
    except (dumpmod.DumpError, IptablesError) as exc:
        return {"status": "error", "error": str(exc)}
    b, a = judge.counters_map(before), judge.counters_map(after)
    moved = sorted(k for k in a if a[k] > b.get(k, 0))
    moved_desc = [
        {
            "table": t,
            "chain": c,
            "rule_number": n,
            "packets": a[(t, c, n)] - b.get((t, c, n), 0),
            "rule": after.chain(t, c).rules[n - 1].text,
        }
        for t, c, n in moved
    ]
    inbound = next((p for p in pod.get("paths", []) if p["name"] == judge.INBOUND_PROBE), None)
    predicted = [
        (s["table"], s["chain"], s["rule_number"])
        for s in (inbound or {}).get("steps", [])
        if s.get("rule_number") and s["table"] == "nat"
    ]
    missing = [p for p in predicted if p not in moved]
    result = {
        "status": "ok" if error is None else "connect-failed",
        "target": f"{ip}:{port}",
        "connect_seconds": round(elapsed, 4),
        "error": error,
        "moved": moved_desc,
        "predicted": [{"table": t, "chain": c, "rule_number": n} for t, c, n in predicted],
        "agrees": not missing,
    }
    if not predicted:
        result["note"] = "no capture rule was predicted for this connection" + (
            "; none moved either: it went straight to the application" if not moved_desc else ""
        )
    if missing:
        pod["findings"].append(
            finding(
                "PROBE_DISAGREES",
                "error",
                "the probe connection did not move the counters of rules the tracer predicted: "
                + ", ".join(f"{t}/{c}#{n}" for t, c, n in missing),
            )
        )
    if error:
        pod["findings"].append(
            finding("PROBE_CONNECT_FAILED", "warning", f"probe connection to {ip}:{port} from the node failed: {error}")
        )
    return result


# --- entry point -------------------------------------------------------------------------------


def run_audit(options, after_discovery=None):
    """Audit the node; ``after_discovery`` (tests only) is called between discovery and reading."""
    opts = validate_options(options)
    timings = {}
    t0 = time.monotonic()
    node_netns = opts["node_netns"]
    try:
        node_inode = _netns_key(node_netns or "/proc/self/ns/net")
    except OSError as exc:
        raise NodeAuditError(
            f"cannot read the node network namespace {node_netns or '/proc/self/ns/net'}: {exc.strerror}"
        ) from exc
    report = {
        "schema_version": SCHEMA_VERSION,
        "node": {"hostname": socket.gethostname(), "netns_inode": node_inode, "audited_at": _now()},
        "options": {k: opts[k] for k in ("proxy_uids", "proxy_names", "backends", "families", "probe")},
        "runtime": {},
        "host": {},
        "host_proxies": [],
        "pods": [],
        "findings": [],
        "errors": [],
    }
    raw = {}
    sidecars, host_proxies, unreadable = discover(opts, node_inode)
    report["host_proxies"] = host_proxies
    for pid, reason in sorted(unreadable.items()):
        report["errors"].append({"pid": pid, "error": reason})
    if unreadable and os.geteuid() != 0:
        report["findings"].append(
            finding(
                "AUDIT_NOT_ROOT",
                "error",
                f"the audit runs as uid {os.geteuid()}, not root: the network namespaces of {len(unreadable)} "
                "process(es) could not be read, so sidecars among them were neither found nor audited; run the "
                "audit as root (become: true)",
            )
        )
    # Even root may be refused (pid 1 of a sandbox, a process in another user namespace): those
    # stay in report["errors"] and summary.processes_not_read, without a finding.
    runtime_pool = ThreadPoolExecutor(max_workers=1)
    runtime_future = runtime_pool.submit(runtimemod.container_index) if opts["runtime_lookup"] else None
    if after_discovery is not None:
        after_discovery()
    pods = [_describe_pod(entry, opts) for entry in sidecars]
    try:
        node_addresses = _node_addresses(node_netns)
    except (OSError, procfs.ProcessGone, dumpmod.DumpError) as exc:
        node_addresses = []
        report["errors"].append({"node": True, "error": f"node addresses not readable: {exc}"})
    report["node"]["addresses"] = node_addresses
    timings["discovery"] = time.monotonic() - t0

    t1 = time.monotonic()
    workers = opts["workers"] or max(2, (os.cpu_count() or 2) * 2)
    jobs = {"host": (node_netns, None)}
    for pod in pods:
        if pod["status"] == "ok":
            jobs[pod["id"]] = (pod["netns_path"], pod.get("legacy_tables"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            key: pool.submit(_read_target, path, legacy, opts, key != "host") for key, (path, legacy) in jobs.items()
        }
        results = {key: fut.result() for key, fut in futures.items()}
    for pod in pods:
        if pod["id"] in results:
            _attach_sockets(pod, results[pod["id"]].pop("__sockets__", None))
    host_dumps = results.pop("host")
    kube_proxy_dumps = host_dumps.pop("__extra__", {})
    if opts["known_pods"]:
        _api_names(pods, opts["known_pods"])
    if runtime_future is not None:
        runtime_index, notes = runtime_future.result()
        report["runtime"]["notes"] = notes
        if runtime_index:
            for index, entry in enumerate(sidecars):
                _runtime_name(entry, pods[index], runtime_index)
    runtime_pool.shutdown()
    if host_dumps and all(d.get("reason") == "not-installed" for d in host_dumps.values()):
        report["findings"].append(
            finding(
                "NODE_NO_IPTABLES",
                "error",
                "no iptables-*-save command works on this node: " + "; ".join(d["error"] for d in host_dumps.values()),
            )
        )
    else:
        for key, d in host_dumps.items():
            if d["status"] == "error":
                report["findings"].append(
                    finding("NODE_DUMP_FAILED", "error", f"the node's {key} rules could not be read: {d['error']}")
                )
    timings["dumps"] = time.monotonic() - t1

    t2 = time.monotonic()
    parsed_by_pod = {}
    for pod in pods:
        if pod["status"] != "ok":
            pod["findings"].append(
                finding(
                    "POD_GONE" if pod["status"] == "gone" else "NAMESPACE_UNREADABLE",
                    "warning" if pod["status"] == "gone" else "error",
                    "; ".join(pod["errors"]) or pod["status"],
                )
            )
            continue
        dumps = results.get(pod["id"], {})
        for d in dumps.values():
            if d["status"] == "error" and d.get("reason") == "no-namespace":
                pod["status"] = "gone"
        if pod["status"] == "gone":
            pod["errors"].append("the pod's network namespace disappeared during the audit")
            pod["findings"].append(
                finding("POD_GONE", "warning", "the pod exited during the audit; its rules could not be read")
            )
            continue
        parsed = _parse_dumps(dumps, pod["display"])
        parsed_by_pod[pod["id"]] = parsed
        pod["dumps"] = {}
        unread = []
        for key, d in dumps.items():
            if "text" in d:
                fname = f"{pod['id']}.{key}.rules"
                raw[fname] = d.pop("text")
                d["file"] = fname
            if d["status"] == "error":
                unread.append(key)
                pod["errors"].append(d["error"])
                pod["findings"].append(finding("DUMP_FAILED", "error", f"{key} rules not readable: {d['error']}"))
            pod["dumps"][key] = d
        try:
            _judge_pod(pod, parsed, opts, unread)
        except Exception as exc:  # one pod's bad rules must not sink the node's audit
            pod["errors"].append(f"judgement failed: {type(exc).__name__}: {exc}")
            pod["findings"].append(
                finding(
                    "ENGINE_ERROR",
                    "error",
                    f"this pod's rules could not be judged ({type(exc).__name__}: {exc}); the other pods were audited",
                )
            )
    majority = _majority(pods, parsed_by_pod, opts)
    backends = Counter(p.get("capture_backend") for p in pods if p.get("capture_backend"))
    if len(backends) > 1:
        report["findings"].append(
            finding(
                "NODE_PODS_MIXED_BACKENDS",
                "warning",
                "sidecar pods on this node use different iptables backends: "
                + ", ".join(f"{n} on {b}" for b, n in sorted(backends.items())),
            )
        )
    host_parsed = _parse_dumps(host_dumps, "node")
    report["host"]["dumps"] = {}
    for key, d in host_dumps.items():
        if "text" in d:
            raw[f"host.{key}.rules"] = d.pop("text")
            d["file"] = f"host.{key}.rules"
        report["host"]["dumps"][key] = d
    report["host"]["kube_proxy_sources"] = {}
    for key, d in kube_proxy_dumps.items():
        entry = {k: v for k, v in d.items() if k != "text"}
        if "text" in d:
            entry["file"] = f"host.{key}.{'json' if key.startswith('nft') else 'txt'}"
            raw[entry["file"]] = d["text"]
        report["host"]["kube_proxy_sources"][key] = entry
    try:
        _judge_host(report, host_parsed, pods, node_addresses, kube_proxy_dumps)
    except Exception as exc:  # the pods' judgement stands without the node's
        report["findings"].append(
            finding(
                "ENGINE_ERROR",
                "error",
                f"the node's own rules could not be judged ({type(exc).__name__}: {exc}); the pods were audited",
            )
        )
    node_backend = report["host"].get("backends_in_use") or []
    if backends and node_backend and set(backends) - set(node_backend):
        report["findings"].append(
            finding(
                "PODS_AND_NODE_DIFFERENT_BACKENDS",
                "info",
                f"the node's own rules are on {', '.join(node_backend)}, "
                f"sidecar capture on {', '.join(sorted(backends))}",
            )
        )
    timings["judgement"] = time.monotonic() - t2

    if opts["probe"]:
        t3 = time.monotonic()
        for pod in pods:
            if pod["status"] == "ok":
                pod["probe"] = _probe_pod(pod, opts, node_netns)
        timings["probe"] = time.monotonic() - t3

    for pod in pods:
        pod["worst_severity"] = worst_severity(pod["findings"])
    report["pods"] = pods
    all_findings = report["findings"] + [f for p in pods for f in p["findings"]]
    by_sev = Counter(f["severity"] for f in all_findings)
    report["summary"] = {
        "sidecar_pods": sum(1 for p in pods if p.get("role") == "sidecar"),
        "gateway_pods": sum(1 for p in pods if p.get("role") == "gateway"),
        "pods_not_read": sum(1 for p in pods if p["status"] != "ok"),
        "processes_not_read": len(unreadable),
        "findings": {s: by_sev.get(s, 0) for s in ("error", "warning", "info")},
        "worst_severity": worst_severity(all_findings),
        "majority": majority,
        "capture_backends": dict(backends),
    }
    timings["total"] = time.monotonic() - t0
    report["timings"] = {k: round(v, 4) for k, v in timings.items()}
    return report, raw
