"""The nftables reader, tracer and kube-proxy summary on a rule set read back from the kernel
(data/kube-proxy-web-empty.json, see data/README.md)."""

import copy
import json
import os

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError
from ansible_collections.meshops.istio.plugins.module_utils.nftables.kube_proxy import (
    kube_proxy_nft_summary,
    kube_proxy_table,
)
from ansible_collections.meshops.istio.plugins.module_utils.nftables.ruleset import parse_json
from ansible_collections.meshops.istio.plugins.module_utils.nftables.tracer import NftTracer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "kube-proxy-web-empty.json")
NODE = "192.168.0.2"


def load():
    with open(DATA, encoding="utf-8") as handle:
        return json.load(handle)


def trace(data, **packet):
    spec = {"name": "p", "hook": "prerouting", "protocol": "tcp", "src": "192.0.2.9", **packet}
    return NftTracer(kube_proxy_table(parse_json(data, "kp.json")), [NODE]).trace(spec)


def test_summary():
    services = {s["name"]: s for s in kube_proxy_nft_summary(parse_json(load(), "kp.json"))}
    web = services["default/web:http"]
    assert (web["cluster_ip"], web["port"], web["node_port"]) == ("10.96.0.20", 80, 30080)
    assert [(e["address"], e["probability"]) for e in web["endpoints"]] == [
        ("10.244.1.5:8080", 0.5),
        ("10.244.2.7:8080", 0.5),
    ]
    assert services["default/empty:http"]["endpoints"] == []
    assert kube_proxy_nft_summary(parse_json(load(), "kp.json"), "ipv6") is None


@pytest.mark.parametrize(
    ("packet", "action", "destinations"),
    [
        ({"dst": NODE, "dport": 30080}, "DNAT", ["10.244.1.5:8080", "10.244.2.7:8080"]),
        ({"dst": "10.96.0.20", "dport": 80}, "DNAT", ["10.244.1.5:8080", "10.244.2.7:8080"]),
        ({"dst": NODE, "dport": 30081}, "REJECT", []),
        ({"dst": "10.96.0.21", "dport": 80}, "REJECT", []),
        ({"dst": "10.96.0.20", "dport": 81}, "REJECT", []),
        ({"dst": "10.96.0.99", "dport": 80}, "DROP", []),
        ({"dst": "10.96.0.20", "dport": 80, "protocol": "udp"}, "REJECT", []),
        ({"dst": "198.51.100.1", "dport": 80}, "ACCEPT", []),
    ],
)
def test_traces(packet, action, destinations):
    result = trace(load(), **packet)
    assert result["verdict"]["action"] == action, result["verdict"]
    assert [b["verdict"]["to_destination"] for b in result["branches"]] == destinations
    assert all(b["probability"] == 0.5 for b in result["branches"])


def test_nodeport_path_masquerades_and_names_each_chain():
    result = trace(load(), dst=NODE, dport=30080)
    chains = [s["chain"] for s in result["branches"][0]["steps"]]
    assert "services" in chains and any(c.startswith("external-") for c in chains)
    assert result["branches"][0]["verdict"]["to_source"] == "address of the outgoing interface"


def test_an_expression_the_engine_does_not_know_is_listed_not_guessed():
    data = load()
    for item in data["nftables"]:
        rule = item.get("rule")
        if rule and rule["chain"].startswith("external-") and rule["expr"][0].get("jump"):
            rule["expr"].insert(0, {"match": {"op": "==", "left": {"osf": {"key": "name"}}, "right": "Linux"}})
    result = trace(data, dst=NODE, dport=30080)
    assert result["unevaluated"], result
    assert any(b["assumptions"] for b in result["branches"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "not json", "not nft JSON output"),
        (lambda d: {"tables": []}, "no top-level 'nftables' list"),
        (lambda d: {"nftables": [{"rule": {"family": "ip", "table": "kube-proxy"}}]}, "lacks the field 'chain'"),
        (lambda d: {"nftables": ["x"]}, "is not an object with one key"),
    ],
)
def test_input_the_reader_does_not_understand_is_an_error(mutate, message):
    with pytest.raises(ParseError, match=message) as info:
        parse_json(mutate(copy.deepcopy(load())), source="node nft -j")
    assert str(info.value).startswith("node nft -j")
