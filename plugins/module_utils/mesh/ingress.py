# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain-Python helpers for the ``istio_ingress`` role: the cluster's NodePort range, checks
of requested node ports against it and against other Services, the server-side apply patch
for the gateway Service, the facts the Bookinfo chapter computes by hand, and the host names
of the Gateways bound to the ingress gateway.

No Ansible imports: the filter plugins call these, and the unit tests import them directly.
"""

import ipaddress

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError

DEFAULT_NODE_PORT_RANGE = "30000-32767"
RANGE_FLAG = "--service-node-port-range"


class IngressError(MeshopsError, ValueError):
    """Input that cannot be turned into a valid Service change."""


def parse_port_range(text):
    """``(first, last)`` from a Kubernetes port range: ``a-b``, ``a+n`` (n more ports) or ``a``."""
    value = str(text).strip()
    try:
        if "-" in value:
            first, last = (int(p) for p in value.split("-", 1))
        elif "+" in value:
            first, extra = (int(p) for p in value.split("+", 1))
            last = first + extra
        else:
            first = last = int(value)
    except ValueError as e:
        raise IngressError(f"{text!r} is not a port range like 30000-32767") from e
    if not (0 < first <= last <= 65535):
        raise IngressError(f"{text!r} is not a port range within 1-65535")
    return first, last


def apiserver_node_port_range(pods):
    """The value of --service-node-port-range from kube-apiserver static pods (kubeadm puts it
    in the container command), or None when no pod carries the flag."""
    for pod in pods or []:
        for container in (pod.get("spec") or {}).get("containers") or []:
            argv = list(container.get("command") or []) + list(container.get("args") or [])
            for i, arg in enumerate(argv):
                if arg.startswith(RANGE_FLAG + "="):
                    return arg.split("=", 1)[1]
                if arg == RANGE_FLAG and i + 1 < len(argv):
                    return argv[i + 1]
    return None


def _service_name(svc):
    meta = svc.get("metadata") or {}
    return "{}/{}".format(meta.get("namespace"), meta.get("name"))


def node_port_problems(requested, service, services, port_range):
    """Reasons the requested ``{port name: node port}`` cannot be applied to ``service``, empty
    when it can. ``services`` are all Services of the cluster (the gateway itself is skipped);
    ``port_range`` is the cluster's NodePort range text."""
    problems = []
    first, last = parse_port_range(port_range)
    names = {p.get("name") for p in (service.get("spec") or {}).get("ports") or []}
    used = {}
    for svc in services or []:
        if _service_name(svc) == _service_name(service):
            continue
        for p in (svc.get("spec") or {}).get("ports") or []:
            if p.get("nodePort"):
                used.setdefault(int(p["nodePort"]), []).append(
                    "{} port {}".format(_service_name(svc), p.get("name") or p.get("port"))
                )
    seen = {}
    for name in sorted(requested or {}):
        raw = requested[name]
        if isinstance(raw, bool) or not str(raw).isdigit():
            problems.append(f"{name}: {raw!r} is not a port number")
            continue
        port = int(raw)
        if name not in names:
            problems.append(
                "{}: Service {} has no port of that name (it has {})".format(
                    name, _service_name(service), ", ".join(sorted(n for n in names if n))
                )
            )
        if not first <= port <= last:
            problems.append(f"{name}: {port} is outside the cluster's NodePort range {first}-{last}")
        if port in used:
            problems.append("{}: {} is already used by {}".format(name, port, "; ".join(used[port])))
        if port in seen:
            problems.append(f"{name}: {port} is also requested for {seen[port]}")
        seen.setdefault(port, name)
    return problems


def service_apply_patch(service, service_type, requested):
    """The Service body for server-side apply: the type, and for each requested port name its
    entry (key fields port/protocol, and the name) with the node port. Ports not requested are
    left to their other managers (the control plane's manifest)."""
    meta = service.get("metadata") or {}
    ports = []
    for p in (service.get("spec") or {}).get("ports") or []:
        if p.get("name") in (requested or {}):
            ports.append(
                {
                    "name": p["name"],
                    "port": p["port"],
                    "protocol": p.get("protocol") or "TCP",
                    "nodePort": int(requested[p["name"]]),
                }
            )
    spec = {"type": service_type}
    if ports:
        spec["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": spec,
    }


def node_port_of(service, port_name):
    for p in (service.get("spec") or {}).get("ports") or []:
        if p.get("name") == port_name:
            return p.get("nodePort")
    return None


def node_address(node, preferred=("InternalIP", "ExternalIP")):
    """The node's address of the first preferred type that it has, else None."""
    addresses = (node.get("status") or {}).get("addresses") or []
    for wanted in preferred:
        for a in addresses:
            if a.get("type") == wanted and a.get("address"):
                return a["address"]
    return None


def gateway_pod_host(pods):
    """hostIP of the first (by name) Running gateway pod, as the tutorial's
    ``-o jsonpath='{.items[0].status.hostIP}'``, but only from a pod that runs."""
    running = [
        p
        for p in pods or []
        if (p.get("status") or {}).get("phase") == "Running"
        and (p.get("status") or {}).get("hostIP")
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    running.sort(key=lambda p: p["metadata"]["name"])
    return running[0]["status"]["hostIP"] if running else None


def url(host, port, scheme="http"):
    """``scheme://host:port/`` with an IPv6 host in brackets."""
    if not host or not port:
        return ""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{scheme}://{host}:{port}/"


def gateway_hosts(gateways, pod_labels):
    """Host names of the Istio Gateways whose selector matches the ingress gateway pods'
    labels, without the ``namespace/`` prefix, wildcards dropped, sorted and unique."""
    hosts = set()
    for gw in gateways or []:
        spec = gw.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            continue
        for server in spec.get("servers") or []:
            for host in server.get("hosts") or []:
                name = host.split("/", 1)[1] if "/" in host else host
                if name and "*" not in name:
                    hosts.add(name.lower())
    return sorted(hosts)


def ingress_facts(service, pods=None, node=None, gateways=None, pod_labels=None):
    """The facts of the istio_ingress role from the gateway Service, its pods (or a chosen
    node) and the cluster's Gateways."""
    host = node_address(node) if node else gateway_pod_host(pods)
    http = node_port_of(service, "http2")
    https = node_port_of(service, "https")
    return {
        "istio_ingress_host": host or "",
        "istio_ingress_http_node_port": http,
        "istio_ingress_https_node_port": https,
        "istio_ingress_url": url(host, http),
        "istio_ingress_gateway_hosts": gateway_hosts(gateways, pod_labels or {"istio": "ingressgateway"}),
    }
