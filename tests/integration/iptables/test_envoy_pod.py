"""End to end with the pod lab (lab/pods: real Envoy as uid 1337 and nginx behind istio-init rules).

One HTTP request from the node to the pod's port 80 opens two connections in the pod's network
namespace: the client's (PREROUTING -> ISTIO_INBOUND -> ISTIO_IN_REDIRECT -> Envoy on 15006) and
Envoy's own to nginx (OUTPUT from 127.0.0.6 as uid 1337 -> ISTIO_OUTPUT returns it). The nat
counters that move must be exactly the steps of those two traces.
"""

import importlib.util

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import read_rules
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer

from .netlab import moved, step_keys

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(importlib.util.find_spec("lab.pods") is None, reason="the pod lab (lab/pods) is absent"),
]


def _counters(pod, backend):
    from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump

    ruleset = parse_dump(pod.iptables_save(backend), family="ipv4")
    values = {}
    for chain in ruleset.tables["nat"].chains.values():
        if chain.builtin:
            values[("nat", chain.name, "policy")] = chain.packets
        for rule in chain.rules:
            values[("nat", chain.name, rule.number)] = rule.packets
    return values


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_request_through_a_real_envoy_matches_the_traces(pod_lab, backend):
    from lab.pods import CaptureOptions

    pod = pod_lab.add_pod("web", capture=CaptureOptions(backend=backend))
    read = read_rules(netns=pod.netns_path, backend=backend)
    tracer = Tracer(read.rulesets["ipv4"], read.local_addresses)
    inbound = tracer.trace(
        {
            "name": "client to web:80",
            "hook": "prerouting",
            "src": pod_lab.bridge_ip,
            "dst": pod.ip,
            "dport": 80,
            "in_interface": "eth0",
        }
    )
    passthrough = tracer.trace(
        {
            "name": "envoy to nginx",
            "hook": "output",
            "src": "127.0.0.6",
            "dst": pod.ip,
            "dport": 80,
            "uid": 1337,
            "gid": 1337,
            "out_interface": "lo",
        }
    )
    assert inbound["verdict"]["to_ports"] == 15006
    assert passthrough["verdict"]["action"] == "ACCEPT"
    assert passthrough["verdict"]["local_port"] == 80

    before = _counters(pod, backend)
    status, body = pod_lab.curl(pod.ip, 80, source="node")
    after = _counters(pod, backend)
    assert status == 200, body[:200]
    kernel = moved(before, after, {"nat"})
    assert kernel == step_keys(inbound["steps"]) + step_keys(passthrough["steps"])
    stats = pod.envoy_stats()
    assert any(
        name.endswith("downstream_cx_total") and value >= 1
        for name, value in stats.items()
        if "15006" in name or "inbound" in name
    )
