"""Table-driven tracer tests: data/trace_cases.yml against saved dumps in three forms."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import PacketSpecError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer

from .helpers import FORMS, dump_text, load_yaml, step_names

CASES = [
    pytest.param(
        case["dump"], form, case.get("local_addresses"), packet, id=f"{case['dump']}-{form}-{packet['packet']['name']}"
    )
    for case in load_yaml("trace_cases.yml")
    for form in case.get("forms", FORMS)
    for packet in case["packets"]
]


@pytest.mark.parametrize(("dump", "form", "local_addresses", "case"), CASES)
def test_trace(dump, form, local_addresses, case):
    ruleset = parse_dump(dump_text(dump, form), source=f"{dump}.{form}")
    result = Tracer(ruleset, local_addresses=local_addresses).trace(case["packet"])
    assert result["name"] == case["packet"]["name"]
    for key, value in case["verdict"].items():
        assert result["verdict"].get(key) == value, (key, result["verdict"])
    if "steps" in case:
        assert step_names(result["steps"]) == case["steps"]
        assert result["branches"] == []
    if "branches" in case:
        got = [
            {
                "probability": b["probability"],
                "action": b["verdict"]["action"],
                "steps": step_names(b["steps"]),
                **({"to_destination": b["verdict"]["to_destination"]} if "to_destination" in want else {}),
            }
            # no zip(strict=): these tests also run under the nodes' Python 3.9; lengths asserted below
            for b, want in zip(result["branches"], case["branches"])  # noqa: B905
        ]
        assert len(result["branches"]) == len(case["branches"])
        assert got == case["branches"]
        if all(b["probability"] is not None for b in result["branches"]) and not case.get("unevaluated"):
            assert sum(b["probability"] for b in result["branches"]) == pytest.approx(1.0, abs=1e-5)
    assert bool(result["unevaluated"]) == bool(case.get("unevaluated", False))


def test_steps_carry_the_rule_text():
    ruleset = parse_dump(dump_text("istio-default", "nft.save"))
    result = Tracer(ruleset, ["10.0.0.2"]).trace(
        {"name": "in", "hook": "prerouting", "src": "10.0.0.9", "dst": "10.0.0.2", "dport": 80}
    )
    assert result["steps"][2]["rule"] == "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"
    assert result["steps"][2]["action"] == "REDIRECT"
    assert result["steps"][0]["action"] == "jump ISTIO_INBOUND"


BAD_PACKETS = [
    ({"name": "p", "hook": "input", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 80}, "hook 'input'"),
    ({"name": "p", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.300", "dport": 80}, "dst '10.0.0.300'"),
    ({"name": "p", "hook": "output", "src": "nope", "dst": "10.0.0.2", "dport": 80}, "src 'nope'"),
    ({"name": "p", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 70000}, "dport 70000"),
    ({"name": "p", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": "http"}, "dport 'http'"),
    ({"name": "p", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2"}, "dport is required"),
    ({"name": "p", "hook": "output", "src": "10.0.0.1", "dst": "fd00::1", "dport": 80}, "different IP versions"),
    (
        {"name": "p", "hook": "output", "protocol": "tcpx", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 80},
        "protocol 'tcpx'",
    ),
    ({"name": "p", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 80, "uid": "root"}, "uid 'root'"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_PACKETS, ids=[message for _spec, message in BAD_PACKETS])
def test_bad_packet_spec_names_the_field(spec, message):
    ruleset = parse_dump(dump_text("istio-default", "rules"))
    with pytest.raises(PacketSpecError, match=r"^p: ") as info:
        Tracer(ruleset).trace(spec)
    assert message in str(info.value)


def test_mark_and_connmark_change_later_matches():
    text = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p tcp -j MARK --set-xmark 0x10/0xff
-A OUTPUT -m mark --mark 0x10/0xff -j CONNMARK --save-mark
-A OUTPUT -m connmark --mark 0x10 -j MARK --set-mark 0x20
-A OUTPUT -m mark --mark 0x20 -j DROP
COMMIT
"""
    result = Tracer(parse_dump(text)).trace(
        {"name": "m", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 80, "uid": 0}
    )
    assert step_names(result["steps"]) == ["mangle OUTPUT 1", "mangle OUTPUT 2", "mangle OUTPUT 3", "mangle OUTPUT 4"]
    assert result["verdict"]["action"] == "DROP"
    assert result["verdict"]["delivered"] == "dropped"


def test_goto_returns_to_the_caller_of_the_chain_that_jumped():
    text = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
:A - [0:0]
:B - [0:0]
-A OUTPUT -j A
-A OUTPUT -p tcp --dport 80 -j ACCEPT
-A A -g B
-A A -j DROP
-A B -p tcp --dport 81 -j REJECT --reject-with tcp-reset
COMMIT
"""
    tracer = Tracer(parse_dump(text))
    ok = tracer.trace({"name": "a", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 80, "uid": 0})
    assert step_names(ok["steps"]) == ["filter OUTPUT 1", "filter A 1", "filter OUTPUT 2"]
    assert ok["verdict"]["action"] == "ACCEPT"
    rejected = tracer.trace(
        {"name": "b", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 81, "uid": 0}
    )
    assert rejected["verdict"]["action"] == "REJECT"
    dropped = tracer.trace({"name": "c", "hook": "output", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 82, "uid": 0})
    assert step_names(dropped["steps"]) == ["filter OUTPUT 1", "filter A 1", "filter OUTPUT policy"]
    assert dropped["verdict"]["action"] == "DROP"


def test_negation_ranges_wildcards_and_multiport():
    text = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT ! -s 10.0.0.0/8 -j DROP
-A INPUT -i veth+ -p tcp -m tcp --dport 1000:2000 -j REJECT
-A INPUT -p udp -m multiport ! --dports 53,5000:5010 -j DROP
-A INPUT -m addrtype ! --dst-type LOCAL -j DROP
-A INPUT -p tcp -m conntrack --ctstate NEW -m comment --comment "new tcp" -j ACCEPT
COMMIT
"""
    tracer = Tracer(parse_dump(text), local_addresses=["10.0.0.2"])

    def verdict(**packet):
        spec = {"name": "x", "hook": "prerouting", "src": "10.1.1.1", "dst": "10.0.0.2", "in_interface": "eth0"}
        spec.update(packet)
        return tracer.trace(spec)["verdict"]["action"]

    assert verdict(src="192.0.2.1", dport=80) == "DROP"
    assert verdict(in_interface="veth12", dport=1500) == "REJECT"
    assert verdict(in_interface="eth0", dport=1500) == "ACCEPT"
    assert verdict(protocol="udp", dport=5005) == "ACCEPT"
    assert verdict(protocol="udp", dport=6000) == "DROP"
    # 10.0.0.7 is not local: DNAT-less forwarding, the INPUT chain is not on its path at all.
    assert verdict(dst="10.0.0.7", dport=80) == "ACCEPT"


def test_unevaluated_match_explores_both_outcomes():
    text = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m socket --transparent -j DROP
COMMIT
"""
    result = Tracer(parse_dump(text), ["10.0.0.2"]).trace(
        {"name": "s", "hook": "prerouting", "src": "10.0.0.9", "dst": "10.0.0.2", "dport": 80}
    )
    assert result["verdict"]["action"] == "MULTIPLE"
    assert {b["verdict"]["action"] for b in result["branches"]} == {"DROP", "ACCEPT"}
    assert result["unevaluated"] == ["-A PREROUTING -p tcp -m socket --transparent -j DROP"]
    reasons = [a for b in result["branches"] for a in b["assumptions"] if "reason" in a]
    assert all("socket" in a["reason"] for a in reasons)


def test_owner_match_without_socket_follows_the_kernel():
    # No socket on forwarded/incoming packets: "--uid-owner X" fails, "! --uid-owner X" matches.
    text = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -m owner --uid-owner 0 -j DROP
-A POSTROUTING -m owner ! --uid-owner 0 -j MARK --set-mark 7
COMMIT
"""
    result = Tracer(parse_dump(text), ["10.0.0.2"]).trace(
        {"name": "f", "hook": "prerouting", "src": "10.0.0.9", "dst": "10.9.0.1", "dport": 80}
    )
    assert result["verdict"]["action"] == "ACCEPT"
    assert result["verdict"]["delivered"] == "forwarded"
    assert result["verdict"]["mark"] == "0x7"


def test_kube_services_index_gives_the_same_answer_as_a_scan():
    from ansible_collections.meshops.istio.plugins.module_utils.iptables import tracer as tracer_module
    from tests.rulegen.kube_proxy_rules import (
        kube_proxy_rules,
        synthetic_services,
    )

    ruleset = parse_dump(kube_proxy_rules(synthetic_services(200, 2)))
    packets = [
        {"name": "np", "hook": "prerouting", "src": "10.9.9.9", "dst": "10.203.0.2", "dport": 30050},
        {"name": "cip", "hook": "prerouting", "src": "10.9.9.9", "dst": "10.96.0.110", "dport": 80},
        {"name": "none", "hook": "prerouting", "src": "10.9.9.9", "dst": "10.203.0.2", "dport": 22},
    ]
    indexed = [Tracer(ruleset, ["10.203.0.2"]).trace(p) for p in packets]
    saved = tracer_module.INDEX_MIN_RULES
    tracer_module.INDEX_MIN_RULES = 10**9
    try:
        scanned = [Tracer(ruleset, ["10.203.0.2"]).trace(p) for p in packets]
    finally:
        tracer_module.INDEX_MIN_RULES = saved
    assert indexed == scanned
    assert len(indexed[0]["branches"]) == 2


def test_statistic_nth_is_one_packet_in_n():
    text = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m statistic --mode nth --every 4 --packet 0 -j DNAT --to-destination 10.0.0.5:80
COMMIT
"""
    result = Tracer(parse_dump(text), ["10.0.0.2"]).trace(
        {"name": "n", "hook": "prerouting", "src": "10.0.0.9", "dst": "10.0.0.2", "dport": 80}
    )
    assert [(b["probability"], b["verdict"]["action"]) for b in result["branches"]] == [
        (0.25, "DNAT"),
        (0.75, "ACCEPT"),
    ]
    assert result["verdict"]["action"] == "MULTIPLE"
    assert all("nth" in a["reason"] for b in result["branches"] for a in b["assumptions"] if "reason" in a)


@pytest.mark.parametrize("jumps", [300, 3000])
def test_many_jumps_in_one_chain_do_not_recurse(jumps):
    # The kernel accepts thousands of jumps in one chain; each one that returns must not cost a
    # Python stack frame (a RecursionError used to fail the whole node's audit).
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":SUB - [0:0]"]
    lines += ["-A INPUT -p tcp -j SUB"] * jumps
    lines += ["-A INPUT -p tcp --dport 80 -j DROP", "-A SUB -p udp -j ACCEPT", "COMMIT", ""]
    ruleset = parse_dump("\n".join(lines), source="many-jumps")
    packet = {"name": "p", "hook": "prerouting", "protocol": "tcp", "src": "10.0.0.9", "dst": "10.0.0.2", "dport": 80}
    result = Tracer(ruleset, local_addresses=["10.0.0.2"]).trace(packet)
    assert result["verdict"]["action"] == "DROP"
    assert len(result["steps"]) == jumps + 1


def test_probability_branches_inside_many_jumps_keep_rule_order():
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":SVC - [0:0]", ":NOOP - [0:0]"]
    lines += ["-A PREROUTING -j NOOP"] * 500
    lines += [
        "-A PREROUTING -p tcp -j SVC",
        "-A SVC -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 10.1.0.1:80",
        "-A SVC -j DNAT --to-destination 10.1.0.2:80",
        "COMMIT",
        "",
    ]
    ruleset = parse_dump("\n".join(lines), source="branches")
    packet = {"name": "p", "hook": "prerouting", "protocol": "tcp", "src": "10.0.0.9", "dst": "10.0.0.2", "dport": 80}
    result = Tracer(ruleset, local_addresses=["10.0.0.2"]).trace(packet)
    assert [b["verdict"]["to_destination"] for b in result["branches"]] == ["10.1.0.1:80", "10.1.0.2:80"]
    assert [b["probability"] for b in result["branches"]] == [0.5, 0.5]
