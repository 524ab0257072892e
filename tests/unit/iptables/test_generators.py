"""The rule generators produce what the parser reads back and what the audit recognises."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import summarize_capture
from ansible_collections.meshops.istio.plugins.module_utils.iptables.kube_proxy import kube_proxy_summary
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from tests.rulegen.istio_capture_rules import (
    CaptureOptions,
    istio_capture_rules,
)
from tests.rulegen.kube_proxy_rules import (
    kube_proxy_rules,
    rule_count,
    synthetic_services,
)

ROUND_TRIP = [
    {},
    {"inbound_ports": [80, 443], "outbound_include_cidrs": ["10.0.0.0/8"], "outbound_exclude_cidrs": ["10.9.0.0/16"]},
    {"exclude_outbound_ports": [22, 3306], "exclude_inbound_ports": [22]},
    {"dns_capture": True, "dns_servers": ["10.96.0.10"], "proxy_uid": 2000, "proxy_gid": 2000},
    {"mode": "TPROXY", "inbound_capture_port": 15016},
    {"family": "ipv6", "outbound_exclude_cidrs": ["fd00:9::/64"]},
]


@pytest.mark.parametrize("options", ROUND_TRIP, ids=[str(o) for o in ROUND_TRIP])
def test_capture_summary_reads_back_the_generator_options(options):
    o = CaptureOptions(**options)
    capture = summarize_capture(parse_dump(istio_capture_rules(o)))
    assert capture["mode"] == o.mode
    assert capture["inbound_port"] == o.inbound_capture_port
    assert capture["outbound_port"] == o.outbound_capture_port
    assert capture["proxy_uids"] == [o.proxy_uid]
    assert capture["inbound_ports"] == o.inbound_ports
    assert capture["excluded_inbound_ports"] == (o.exclude_inbound_ports if o.inbound_ports == "*" else [])
    assert capture["outbound_include_cidrs"] == o.outbound_include_cidrs
    assert capture["outbound_exclude_cidrs"] == o.outbound_exclude_cidrs
    assert capture["excluded_outbound_ports"] == o.exclude_outbound_ports
    assert capture["dns_capture"] == o.dns_capture


def test_generator_rejects_unknown_options():
    with pytest.raises(TypeError, match="unknown capture options"):
        istio_capture_rules(proxy_user=1337)
    with pytest.raises(ValueError, match="mode must be"):
        istio_capture_rules(mode="EBPF")
    with pytest.raises(ValueError, match="unknown broken"):
        istio_capture_rules(broken={"everything"})


def test_kube_proxy_generator_rule_count_and_probabilities():
    services = synthetic_services(40, endpoints_per_service=4)
    ruleset = parse_dump(kube_proxy_rules(services))
    assert ruleset.rule_count() == rule_count(services)
    summary = kube_proxy_summary(ruleset)
    assert len(summary) == 40
    for svc in summary:
        assert [e["probability"] for e in svc["endpoints"]] == [0.25, 0.25, 0.25, 0.25]
    node_ports = [s["node_port"] for s in summary if s["node_port"]]
    assert len(node_ports) == 20


SVC_DUMP = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
:KUBE-SEP-4 - [0:0]
-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m comment --comment "ns/a:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m comment --comment "a statistic --mode nth" -m statistic --mode random --probability 0.25 -j KUBE-SEP-1
-A KUBE-SVC-A -m comment --comment "ns/a" ! -s 10.0.0.1/32 -m statistic --mode random --probability 0.5 -j KUBE-SEP-2
-A KUBE-SVC-A -m comment --comment "ns/a:http" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-3
-A KUBE-SVC-A -m comment --comment "ns/a:http" -j KUBE-SEP-4
-A KUBE-SEP-1 -p tcp -m tcp -j DNAT --to-destination 10.244.1.1:80
-A KUBE-SEP-2 -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:80
-A KUBE-SEP-3 -p tcp -m tcp -j DNAT --to-destination 10.244.1.3:80
-A KUBE-SEP-4 -p tcp -m tcp -j DNAT --to-destination 10.244.1.4:80
COMMIT
"""


@pytest.mark.parametrize("parse_first", [False, True], ids=["text fast path", "parsed matches"])
def test_endpoint_probabilities_from_text_and_from_parsed_matches_agree(parse_first):
    # A comment that mentions "statistic --mode", a negated match next to the statistic match,
    # a plain kube-proxy endpoint rule and a last one without statistic: the text fast path
    # must give what the parsed matches give.
    ruleset = parse_dump(SVC_DUMP)
    if parse_first:
        ruleset.validate()
    (svc,) = kube_proxy_summary(ruleset)
    assert [(e["address"], e["probability"]) for e in svc["endpoints"]] == [
        ("10.244.1.1:80", 0.25),
        ("10.244.1.2:80", 0.375),
        ("10.244.1.3:80", 0.1875),
        ("10.244.1.4:80", 0.1875),
    ]
