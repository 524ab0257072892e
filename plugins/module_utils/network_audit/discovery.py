"""Discovery and naming: which network namespaces hold a sidecar (from /proc), and what each pod
is called (container runtime, Kubernetes API, the proxy's environment or Envoy bootstrap)."""

import json
import os

from ansible_collections.meshops.istio.plugins.module_utils.network_audit import procfs

PROXY_NAMES = ("envoy", "pilot-agent")


GATEWAY_LABELS = ("ingressgateway", "egressgateway")


ENV_KEYS = ("POD_NAME", "POD_NAMESPACE", "INSTANCE_IP", "ISTIO_META_WORKLOAD_NAME", "ISTIO_METAJSON_LABELS")


def netns_key(path):
    return os.stat(path).st_ino


def discover(opts, node_inode):
    """Group processes by network namespace; keep namespaces holding a proxy process.

    A namespace is a proxy's when one of its processes has a proxy's name (envoy, pilot-agent);
    processes running as a proxy uid are counted with it. A namespace whose processes only run
    as a proxy uid is not a sidecar's: istiod's pilot-discovery runs as 1337 too. Those come back
    in ``uid_only`` ({inode, processes}) so that the report can say why they were left out."""
    procs, unreadable = procfs.scan_processes()
    by_ns = {}
    for p in procs:
        by_ns.setdefault(p.netns_inode, []).append(p)
    include = None
    if opts["netns_include"]:
        include = set()
        for path in opts["netns_include"]:
            try:
                include.add(netns_key(path))
            except OSError:
                continue
    names = set(opts["proxy_names"])
    uids = set(opts["proxy_uids"])
    sidecars = []
    host_proxies = []
    uid_only = []
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
        if not any("name" in by for _p, by in proxies):
            if inode != node_inode and (include is None or inode in include):
                uid_only.append(
                    {"inode": inode, "processes": [{"pid": p.pid, "comm": p.comm, "uid": p.uid} for p, _by in proxies]}
                )
            continue
        if inode == node_inode:
            host_proxies.extend({"pid": p.pid, "comm": p.comm, "uid": p.uid, "detected_by": by} for p, by in proxies)
            continue
        if include is not None and inode not in include:
            continue
        sidecars.append({"inode": inode, "members": members, "proxies": proxies})
    sidecars.sort(key=lambda s: min(p.pid for p in s["members"]))
    uid_only.sort(key=lambda e: e["inode"])
    return sidecars, host_proxies, unreadable, uid_only


def name_pod(pod, proxy_pid, argv):
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
    pod["role"] = "gateway" if is_gateway(name, labels, node_id.get("kind")) else "sidecar"


def is_gateway(name, labels, kind):
    if kind == "router" or labels.get("istio") in GATEWAY_LABELS:
        return True
    return bool(name and ("ingressgateway" in name or "egressgateway" in name))


def api_names(pods, known_pods):
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
        if is_gateway(pod["name"], pod["labels"], None):
            pod["role"] = "gateway"
        pod["display"] = display(pod)


def runtime_name(entry, pod, runtime_index):
    """The container runtime's word wins over what the processes say."""
    for member in entry["members"]:
        for cid in procfs.cgroup_container_ids(member.pid):
            info = runtime_index.get(cid)
            if info and info.get("pod"):
                pod["name"], pod["namespace"] = info["pod"], info.get("namespace")
                pod["named_by"] = f"container runtime ({info['runtime']})"
                pod["labels"] = info.get("labels") or pod.get("labels") or {}
                if is_gateway(pod["name"], pod["labels"], None):
                    pod["role"] = "gateway"
                pod["display"] = display(pod)
                return


def display(pod):
    if pod.get("name"):
        return f"{pod['namespace']}/{pod['name']}" if pod.get("namespace") else pod["name"]
    ip = pod["ips"][0] if pod.get("ips") else "unknown"
    return f"pod with IP {ip} in netns inode {pod['netns_inode']}"


def describe_pod(entry, opts):
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
    name_pod(pod, proxy_pid, argv)
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
    pod["display"] = display(pod)
    return pod
