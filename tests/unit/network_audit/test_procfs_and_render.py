"""Pure parts of the network audit: /proc readers on captured files, node ids, thresholds, paths."""

import os
from html.parser import HTMLParser

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.network_audit import (
    findings,
    htmlreport,
    paths,
    procfs,
    render,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "network_audit")
PROC = os.path.join(DATA, "proc")


def _load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


CALLS = {
    "local_ipv4_addresses": lambda: procfs.local_ipv4_addresses(4242, proc=PROC),
    "local_ipv6_addresses": lambda: procfs.local_ipv6_addresses(4242, proc=PROC),
    "listening_ports": lambda: [s["port"] for s in procfs.listening_sockets(4242, proc=PROC)],
    "interfaces": lambda: procfs.interfaces(4242, proc=PROC),
    "legacy_tables_loaded": lambda: procfs.legacy_tables_loaded(4242, proc=PROC),
    "default_route_interface": lambda: procfs.default_route_interface(os.path.join(PROC, "4242")),
}


@pytest.mark.parametrize("case", _load("procfs_cases.yml"), ids=lambda c: c["call"])
def test_procfs_readers(case):
    assert CALLS[case["call"]]() == case["expected"]


def test_envoy_config_path_from_the_captured_command_line():
    argv = procfs.cmdline(4242, proc=PROC)
    assert os.path.basename(argv[0]) == "envoy"
    assert procfs.envoy_config_path(argv) == "/etc/istio/proxy/envoy-rev.json"
    assert procfs.envoy_config_path(["envoy", "--config-path=/x.yaml"]) == "/x.yaml"
    assert procfs.envoy_config_path(["envoy"]) is None


def test_a_process_that_is_gone_raises_process_gone():
    with pytest.raises(procfs.ProcessGone):
        procfs.cmdline(999999999, proc=PROC)


@pytest.mark.parametrize("case", _load("node_ids.yml"), ids=lambda c: str(c["id"])[:20])
def test_istio_node_ids(case):
    assert procfs.parse_istio_node_id(case["id"]) == case["expected"]


@pytest.mark.parametrize("case", _load("fail_on.yml"), ids=lambda c: f"{c['worst']}-{c['fail_on']}")
def test_fail_on_threshold(case):
    assert findings.fails(case["worst"], case["fail_on"]) is case["fails"]


def test_worst_severity_and_bad_severity():
    assert findings.worst_severity([]) is None
    assert findings.worst_severity([{"severity": "info"}, {"severity": "warning"}]) == "warning"
    with pytest.raises(ValueError, match="severity 'fatal'"):
        findings.finding("X", "fatal", "message")


def _step(table, chain, number, action):
    return {"table": table, "chain": chain, "rule_number": number, "rule": f"-A {chain}", "action": action}


def test_path_text_reads_like_the_tutorial():
    pod = {"listening": [{"port": 15006, "pid": 42, "process": "envoy"}]}
    steps = [
        _step("raw", "PREROUTING", None, "policy ACCEPT"),
        _step("nat", "PREROUTING", 1, "jump ISTIO_INBOUND"),
        _step("nat", "ISTIO_INBOUND", 5, "jump ISTIO_IN_REDIRECT"),
        _step("nat", "ISTIO_IN_REDIRECT", 1, "REDIRECT"),
        _step("nat", "INPUT", None, "policy ACCEPT"),
    ]
    verdict = {"action": "REDIRECT", "to_ports": 15006, "delivered": "local", "local_port": 15006}
    assert paths._path_text(steps, verdict, pod, None) == (
        "PREROUTING \u2192 ISTIO_INBOUND \u2192 ISTIO_IN_REDIRECT \u2192 REDIRECT :15006 \u2192 "
        "envoy (pid 42) listening on :15006"
    )


def test_path_text_names_a_return_and_a_missing_listener():
    steps = [_step("nat", "PREROUTING", 1, "jump ISTIO_INBOUND"), _step("nat", "ISTIO_INBOUND", 2, "RETURN")]
    verdict = {"action": "ACCEPT", "delivered": "local", "local_port": 15090}
    text = paths._path_text(steps, verdict, {"listening": []}, None)
    assert text == "PREROUTING \u2192 ISTIO_INBOUND \u2192 RETURN \u2192 local port :15090 (no listener found)"


def test_summary_and_markdown_of_two_nodes():
    reports = {
        "n1": {
            "summary": {
                "worst_severity": "error",
                "findings": {"error": 1, "warning": 0, "info": 2},
                "sidecar_pods": 2,
                "gateway_pods": 0,
                "pods_not_read": 0,
            },
            "timings": {"total": 0.1},
            "findings": [],
            "pods": [
                {
                    "display": "default/bad",
                    "role": "sidecar",
                    "worst_severity": "error",
                    "findings": [{"code": "PROXY_NOT_EXEMPT", "severity": "error", "message": "m"}],
                }
            ],
        },
        "n2": None,
    }
    summ = render.summary(reports)
    assert summ["worst_severity"] == "error"
    assert summ["by_code"] == {"PROXY_NOT_EXEMPT": {"severity": "error", "count": 1}}
    assert summ["nodes"]["n2"] == {"status": "not audited"}
    text = render.markdown_summary(summ)
    assert "| n1 | ERROR | 1 | 0 | 2 | 0 | 0 | 0.1 | [n1](n1.md) |" in text
    assert "| n1 | default/bad | sidecar | error | PROXY_NOT_EXEMPT |" in text


def test_path_diagram_draws_one_box_per_chain_and_the_end():
    path = {
        "name": "inbound_app_port",
        "text": "PREROUTING \u2192 ISTIO_INBOUND \u2192 ISTIO_IN_REDIRECT \u2192 REDIRECT :15006 \u2192 "
        "envoy (pid 42) listening on :15006",
        "steps": [
            dict(_step("nat", "PREROUTING", 1, "jump ISTIO_INBOUND"), packets=3),
            dict(_step("nat", "ISTIO_INBOUND", 5, "jump ISTIO_IN_REDIRECT"), packets=3),
            dict(_step("nat", "ISTIO_IN_REDIRECT", 1, "REDIRECT"), packets=3),
        ],
    }
    svg = htmlreport.path_svg(path)
    assert svg.count("<rect") == 5 and svg.count("<polygon") == 4
    assert "pkts 3" in svg and "REDIRECT :15006" in svg
    report = {
        "node": {"hostname": "n1"},
        "summary": {},
        "findings": [],
        "host": {},
        "pods": [{"display": "default/web", "worst_severity": None, "findings": [], "paths": [path]}],
    }
    page = htmlreport.html_node(report)
    HTMLParser().feed(page)  # well-formed enough for the standard parser
    assert "<h2>default/web" in page and "<svg" in page
