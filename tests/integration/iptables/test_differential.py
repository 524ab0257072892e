"""Differential tests: the tracer's word against the real kernel.

Each test loads generated rules (Istio's sidecar capture or a kube-proxy node) into real network
namespaces with iptables-restore (nft and legacy back ends), makes real connections from chosen
uids, snapshots the counters before and after, and asserts that

* the rules whose counters moved (and the built-in policies met) are exactly the trace's steps
  (nat table for TCP, where only the first packet of a connection is counted; every table for a
  single UDP datagram), with one packet each;
* the connection ended where the verdict says: the listener that answered is the local port of
  the verdict, or the peer the packet was sent to.
"""

import ipaddress

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import read_rules
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer
from tests.rulegen.istio_capture_rules import istio_capture_rules
from tests.rulegen.kube_proxy_rules import kube_proxy_rules

from .netlab import moved, run, step_keys

pytestmark = pytest.mark.netns

BACKENDS = ["nft", "legacy"]
POD, PEER, PEER2 = "10.203.1.2", "10.203.1.1", "10.203.1.3"
POD6, PEER6 = "fd00:203::2", "fd00:203::1"
APP_UID, PROXY_UID = 1000, 1337


class SidecarPod:
    """A pod namespace with Istio capture rules, a proxy (uid 1337) and an app, and a peer."""

    def __init__(self, lab, backend, ipv6=False, tproxy=False, **options):
        self.lab = lab
        self.backend = backend
        self.pod = lab.netns("pod")
        self.peer = lab.netns("peer")
        lab.link(
            self.pod,
            f"{POD}/29",
            self.peer,
            f"{PEER}/29",
            name_a="eth0",
            name_b="eth0",
            v6=(f"{POD6}/64", f"{PEER6}/64") if ipv6 else None,
        )
        lab.route(self.pod, "default", "via", PEER)
        run(["ip", "-n", self.peer, "addr", "add", f"{PEER2}/29", "dev", "eth0"])
        self.rules = istio_capture_rules(**options)
        lab.restore(self.pod, backend, self.rules)
        if ipv6:
            lab.restore(self.pod, backend, istio_capture_rules(family="ipv6", **options), family="ipv6")
        six = ipv6
        inbound = [] if tproxy else ["tcp:15006"]
        self.proxy_log = lab.listen(
            self.pod,
            "proxy",
            [*inbound, "tcp:15001", "tcp:15053", "udp:15053"] + (["tcp6:15006", "tcp6:15001"] if six else []),
            uid=PROXY_UID,
            gid=PROXY_UID,
        )
        if tproxy:
            # TPROXY delivers to a transparent socket (IP_TRANSPARENT needs CAP_NET_ADMIN, as Envoy has
            # in Istio's TPROXY mode) through a policy route for the mark, inside the pod namespace.
            run(["ip", "-n", self.pod, "rule", "add", "fwmark", "1337", "lookup", "133"])
            run(["ip", "-n", self.pod, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "133"])
            lab.listen(self.pod, "proxy", ["tcpt:15006"])
        lab.listen(self.pod, "app", ["tcp:80", "tcp:8080", "tcp:15021"] + (["tcp6:80", "tcp6:8080"] if six else []))
        self.peer_log = lab.listen(
            self.peer, "peer", ["tcp:8080", "tcp:9090", "udp:53", "tcp:53"] + (["tcp6:8080"] if six else [])
        )
        read = read_rules(netns=self.pod, backend=backend)
        assert read.backend == backend
        self.read = read
        self.tracers = {family: Tracer(rs, read.local_addresses) for family, rs in read.rulesets.items()}

    def probe(self, packet, expect, tables=("nat",), at_least=()):
        """Make the connection ``packet`` describes; compare counters and landing with the trace."""
        lab = self.lab
        family = "ipv6" if ":" in packet["dst"] else "ipv4"
        proto = packet.get("protocol", "tcp")
        before = lab.counters(self.pod, self.backend, family)
        if packet["hook"] == "prerouting":
            response = lab.connect(self.peer, proto, packet["dst"], packet["dport"])
        else:
            response = lab.connect(
                self.pod, proto, packet["dst"], packet["dport"], uid=packet.get("uid"), gid=packet.get("gid")
            )
        if proto == "udp":
            logs = {"proxy": self.proxy_log, "peer": self.peer_log}
            label, port = expect.split(":")
            records = lab.records(logs[label])
            assert records, f"no datagram reached {expect}"
            response = f"{records[-1]['label']}:{records[-1]['port']}"
        after = lab.counters(self.pod, self.backend, family)
        trace = self.tracers[family].trace(packet)
        assert trace["branches"] == [], trace
        assert trace["unevaluated"] == []
        kernel = moved(before, after, set(tables) if tables else None)
        engine = step_keys(trace["steps"], set(tables) if tables else None)
        assert kernel == engine, f"kernel counters moved {dict(kernel)}, the trace says {dict(engine)}"
        if at_least:
            # Tables every packet of the connection crosses: each step's counter moved.
            all_moved = moved(before, after, set(at_least))
            for key in step_keys(trace["steps"], set(at_least)):
                assert all_moved[key] >= 1, f"{key} is a step of the trace but its counter did not move"
        assert response == expect, f"connection ended at {response!r}"
        label, port = response.split(":")
        verdict = trace["verdict"]
        if label == "peer":
            assert verdict["delivered"] == "sent"
            dst = packet["dst"] if family == "ipv4" else f"[{packet['dst']}]"
            assert verdict["destination"] == f"{dst}:{port}"
        else:
            assert verdict["delivered"] == "local"
            assert verdict["local_port"] == int(port)
        return trace


def inbound(dport, dst=POD, src=PEER):
    return {
        "name": f"inbound {dport}",
        "hook": "prerouting",
        "protocol": "tcp",
        "src": src,
        "dst": dst,
        "dport": dport,
        "in_interface": "eth0",
    }


def outbound(dst, dport, uid, protocol="tcp", src=POD, out="eth0"):
    return {
        "name": f"outbound {dst}:{dport} uid {uid}",
        "hook": "output",
        "protocol": protocol,
        "src": src,
        "dst": dst,
        "dport": dport,
        "out_interface": out,
        "uid": uid,
        "gid": uid,
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_capture(netlab, backend):
    pod = SidecarPod(netlab, backend)
    assert pod.probe(inbound(80), "proxy:15006")["verdict"]["action"] == "REDIRECT"
    assert pod.probe(inbound(15021), "app:15021")["verdict"]["action"] == "ACCEPT"
    assert pod.probe(outbound(PEER, 8080, APP_UID), "proxy:15001")["verdict"]["to_ports"] == 15001
    assert pod.probe(outbound(PEER, 8080, PROXY_UID), "peer:8080")["verdict"]["action"] == "ACCEPT"
    assert pod.probe(outbound("127.0.0.1", 8080, APP_UID, src="127.0.0.1", out="lo"), "app:8080")
    # The proxy talking to its own pod address over lo is captured inbound; the app is not.
    assert pod.probe(outbound(POD, 8080, PROXY_UID, out="lo"), "proxy:15006")["verdict"]["to_ports"] == 15006
    assert pod.probe(outbound(POD, 8080, APP_UID, out="lo"), "app:8080")["verdict"]["action"] == "ACCEPT"
    findings = audit(pod.read.rulesets["ipv4"], local_addresses=pod.read.local_addresses)["findings"]
    assert [f["code"] for f in findings if f["severity"] == "error"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_capture_ipv6(netlab, backend):
    pod = SidecarPod(netlab, backend, ipv6=True)
    assert pod.probe(inbound(80, dst=POD6, src=PEER6), "proxy:15006")["verdict"]["action"] == "REDIRECT"
    assert (
        pod.probe(outbound(PEER6, 8080, APP_UID, src=POD6), "proxy:15001")["verdict"]["to_destination"] == "[::1]:15001"
    )
    assert pod.probe(outbound(PEER6, 8080, PROXY_UID, src=POD6), "peer:8080")["verdict"]["action"] == "ACCEPT"


@pytest.mark.parametrize("backend", BACKENDS)
def test_inbound_ports_included_explicitly(netlab, backend):
    pod = SidecarPod(netlab, backend, inbound_ports=[80])
    pod.probe(inbound(80), "proxy:15006")
    pod.probe(inbound(8080), "app:8080")


@pytest.mark.parametrize("backend", BACKENDS)
def test_outbound_include_and_exclude_cidrs(netlab, backend):
    pod = SidecarPod(netlab, backend, outbound_include_cidrs=["10.203.1.0/29"], outbound_exclude_cidrs=[f"{PEER2}/32"])
    pod.probe(outbound(PEER, 8080, APP_UID), "proxy:15001")
    pod.probe(outbound(PEER2, 8080, APP_UID), "peer:8080")


@pytest.mark.parametrize("backend", BACKENDS)
def test_outbound_to_a_cidr_outside_the_include_list(netlab, backend):
    pod = SidecarPod(netlab, backend, outbound_include_cidrs=["10.203.9.0/24"])
    pod.probe(outbound(PEER, 8080, APP_UID), "peer:8080")


@pytest.mark.parametrize("backend", BACKENDS)
def test_excluded_inbound_and_outbound_ports(netlab, backend):
    pod = SidecarPod(netlab, backend, exclude_inbound_ports=[8080], exclude_outbound_ports=[9090])
    pod.probe(inbound(8080), "app:8080")
    pod.probe(inbound(80), "proxy:15006")
    pod.probe(outbound(PEER, 9090, APP_UID), "peer:9090")
    pod.probe(outbound(PEER, 8080, APP_UID), "proxy:15001")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dns_capture_to_15053(netlab, backend):
    pod = SidecarPod(netlab, backend, dns_capture=True, dns_servers=[PEER])
    # One UDP datagram each, no reply: every table's counters must match the trace.
    trace = pod.probe(outbound(PEER, 53, APP_UID, protocol="udp"), "proxy:15053", tables=None)
    assert trace["verdict"]["to_ports"] == 15053
    assert any(s["table"] == "raw" for s in trace["steps"])
    pod.probe(outbound(PEER, 53, PROXY_UID, protocol="udp"), "peer:53", tables=None)
    pod.probe(outbound(PEER, 53, APP_UID), "proxy:15053")


@pytest.mark.parametrize("backend", BACKENDS)
def test_broken_capture_missing_uid_exemption(netlab, backend):
    pod = SidecarPod(netlab, backend, broken={"no-uid-exemption"})
    trace = pod.probe(outbound(PEER, 8080, PROXY_UID), "proxy:15001")
    assert trace["verdict"]["action"] == "REDIRECT"
    codes = {f["code"] for f in audit(pod.read.rulesets["ipv4"])["findings"]}
    assert {"PROXY_NOT_EXEMPT", "PROXY_TRAFFIC_CAPTURED"} <= codes


@pytest.mark.parametrize("backend", BACKENDS)
def test_broken_capture_missing_inbound_jump(netlab, backend):
    pod = SidecarPod(netlab, backend, broken={"no-inbound-jump"})
    trace = pod.probe(inbound(80), "app:80")
    assert trace["verdict"]["action"] == "ACCEPT"
    findings = audit(pod.read.rulesets["ipv4"])["findings"]
    assert "PREROUTING (nat table) never jumps to ISTIO_INBOUND: inbound traffic bypasses the sidecar" in [
        f["message"] for f in findings
    ]


# -- a kube-proxy node ----------------------------------------------------------------------------
CLIENT, NODE = "10.203.2.1", "10.203.2.2"
POD_A, POD_B = "10.203.130.2", "10.203.130.6"
WEB_IP, DB_IP = "10.203.200.10", "10.203.200.20"
SERVICES = [
    {
        "namespace": "default",
        "name": "web",
        "port_name": "http",
        "cluster_ip": WEB_IP,
        "port": 80,
        "node_port": 30080,
        "endpoints": [f"{POD_A}:8080", f"{POD_B}:8080"],
    },
    {
        "namespace": "default",
        "name": "db",
        "port_name": "pg",
        "cluster_ip": DB_IP,
        "port": 5432,
        "endpoints": [f"{POD_A}:5432"],
    },
]


class KubeNode:
    def __init__(self, lab, backend):
        self.lab = lab
        self.backend = backend
        self.client = lab.netns("client")
        self.node = lab.netns("node")
        self.pod_a = lab.netns("poda")
        self.pod_b = lab.netns("podb")
        lab.link(self.client, f"{CLIENT}/30", self.node, f"{NODE}/30", name_b="eth0")
        lab.link(self.node, "10.203.130.1/30", self.pod_a, f"{POD_A}/30", name_b="eth0")
        lab.link(self.node, "10.203.130.5/30", self.pod_b, f"{POD_B}/30", name_b="eth0")
        lab.route(self.pod_a, "default", "via", "10.203.130.1")
        lab.route(self.pod_b, "default", "via", "10.203.130.5")
        lab.route(self.client, "10.203.200.0/24", "via", NODE)
        lab.route(self.node, "default", "via", CLIENT)
        lab.sysctl_in_ns(self.node, "net.ipv4.ip_forward", 1)
        lab.restore(self.node, backend, kube_proxy_rules(SERVICES, cluster_cidr="10.203.130.0/24"))
        lab.listen(self.pod_a, "podA", ["tcp:8080", "tcp:5432"])
        lab.listen(self.pod_b, "podB", ["tcp:8080"])
        self.read = read_rules(netns=self.node, backend=backend)
        self.tracer = Tracer(self.read.rulesets["ipv4"], self.read.local_addresses)

    def connect(self, packet, from_ns):
        before = self.lab.counters(self.node, self.backend)
        response = self.lab.connect(from_ns, "tcp", packet["dst"], packet["dport"], uid=packet.get("uid"))
        after = self.lab.counters(self.node, self.backend)
        return response, moved(before, after, {"nat"})


def _branch_for(trace, kernel):
    outcomes = trace["branches"] or [trace]
    for branch in outcomes:
        if step_keys(branch["steps"], {"nat"}) == kernel:
            return branch
    raise AssertionError(
        f"kernel counters {dict(kernel)} match no branch of the trace {[dict(step_keys(b['steps'])) for b in outcomes]}"
    )


LABELS = {POD_A: "podA", POD_B: "podB"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_kube_proxy_node_port_with_two_endpoints(netlab, backend):
    node = KubeNode(netlab, backend)
    packet = {
        "name": "nodeport",
        "hook": "prerouting",
        "src": CLIENT,
        "dst": NODE,
        "dport": 30080,
        "in_interface": "eth0",
    }
    trace = node.tracer.trace(packet)
    assert [b["probability"] for b in trace["branches"]] == [0.5, 0.5]
    seen = set()
    for _attempt in range(16):
        response, kernel = node.connect(packet, node.client)
        branch = _branch_for(trace, kernel)
        host, port = branch["verdict"]["to_destination"].split(":")
        assert response == f"{LABELS[host]}:{port}"
        assert branch["verdict"]["action"] == "DNAT"
        assert branch["verdict"]["delivered"] == "forwarded"
        seen.add(host)
    assert seen == {POD_A, POD_B}, "16 connections all went to one endpoint of two"


@pytest.mark.parametrize("backend", BACKENDS)
def test_kube_proxy_cluster_ip(netlab, backend):
    node = KubeNode(netlab, backend)
    from_client = {
        "name": "clusterip",
        "hook": "prerouting",
        "src": CLIENT,
        "dst": WEB_IP,
        "dport": 80,
        "in_interface": "eth0",
    }
    trace = node.tracer.trace(from_client)
    for _attempt in range(4):
        response, kernel = node.connect(from_client, node.client)
        branch = _branch_for(trace, kernel)
        host, port = branch["verdict"]["to_destination"].split(":")
        assert response == f"{LABELS[host]}:{port}"
    from_node = {"name": "db from node", "hook": "output", "src": NODE, "dst": DB_IP, "dport": 5432, "uid": 0, "gid": 0}
    trace = node.tracer.trace(from_node)
    response, kernel = node.connect(from_node, node.node)
    assert step_keys(trace["steps"], {"nat"}) == kernel
    assert trace["verdict"]["to_destination"] == f"{POD_A}:5432"
    assert response == "podA:5432"


@pytest.mark.parametrize("backend", BACKENDS)
def test_kube_proxy_summary_matches_the_live_node(netlab, backend):
    node = KubeNode(netlab, backend)
    summary = audit(node.read.rulesets["ipv4"])["kube_proxy"]
    web = next(s for s in summary if s["name"] == "default/web:http")
    assert (web["cluster_ip"], web["port"], web["node_port"]) == (WEB_IP, 80, 30080)
    assert [(e["address"], e["probability"]) for e in web["endpoints"]] == [
        (f"{POD_A}:8080", 0.5),
        (f"{POD_B}:8080", 0.5),
    ]
    assert ipaddress.ip_address(NODE) in {ipaddress.ip_address(a) for a in node.read.local_addresses}


@pytest.mark.parametrize("backend", BACKENDS)
def test_tproxy_capture(netlab, backend):
    pod = SidecarPod(netlab, backend, tproxy=True, mode="TPROXY")
    trace = pod.probe(inbound(80), "proxy:15006", at_least=("mangle",))
    assert trace["verdict"]["action"] == "TPROXY"
    assert trace["verdict"]["mark"] == "0x539"
    pod.probe(inbound(15021), "app:15021", at_least=("mangle",))
    pod.probe(outbound(PEER, 8080, APP_UID), "proxy:15001", at_least=("mangle",))
    pod.probe(outbound(PEER, 8080, PROXY_UID), "peer:8080", at_least=("mangle",))
