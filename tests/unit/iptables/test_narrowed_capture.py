"""No false alarms on narrowed captures: every combination of annotations in
narrowed_captures.py, rules produced as Istio's init produces them, audited with the
annotations as ``expected``: no error, and every probe ends as the annotations say."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from tests.rulegen.istio_capture_rules import istio_capture_rules

from .narrowed_captures import cases, oracle, reaches_sidecar

CASES = cases()
POD_IP = "10.203.1.2"


@pytest.mark.parametrize(("options", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_narrowed_capture_is_judged_by_its_own_configuration(options, expected):
    result = audit(parse_dump(istio_capture_rules(**options)), expected=expected, local_addresses=[POD_IP])
    errors = [f for f in result["findings"] if f["severity"] in ("error", "warning")]
    assert errors == []
    for trace in result["traces"]:
        must = oracle(options, trace["packet"])
        assert (trace["expect"] == "captured") == must, (trace["name"], trace["why"])
        assert reaches_sidecar(trace) == must, (trace["name"], trace["why"], trace["verdict"])
    names = {t["name"] for t in result["traces"]}
    # The audit probes both sides wherever the configuration has them.
    if options["inbound_ports"]:
        assert any(t["expect"] == "captured" for t in result["traces"] if t["name"].startswith("inbound"))
    if options["outbound_exclude_cidrs"] and options["outbound_include_cidrs"] == "*":
        assert "outbound_excluded_destination" in names


def test_an_include_range_inside_the_exclusions_is_reported_not_guessed():
    options = {"outbound_include_cidrs": ["10.96.0.0/12"], "outbound_exclude_cidrs": ["10.0.0.0/8"]}
    result = audit(parse_dump(istio_capture_rules(**options)), local_addresses=[POD_IP])
    gaps = [f for f in result["findings"] if f["code"] == "NO_PROBE_DESTINATION"]
    assert [g["severity"] for g in gaps] == ["info"]
    assert "10.0.0.0/8" in gaps[0]["message"]
    assert not any(t["expect"] == "captured" for t in result["traces"] if t["name"].startswith("outbound"))


@pytest.mark.parametrize(
    ("options", "expected", "code"),
    [
        # The rules capture what the configuration excludes, or miss what it includes: named errors.
        ({"inbound_ports": [80, 8080]}, {"inbound_ports": [80], "app_port": 8080}, "EXCLUDED_PORT_CAPTURED"),
        ({}, {"excluded_inbound_ports": [8080, 15021], "app_port": 8080}, "EXCLUDED_PORT_CAPTURED"),
        ({}, {"outbound_exclude_cidrs": ["198.51.100.0/24"]}, "EXCLUDED_DESTINATION_CAPTURED"),
        ({}, {"excluded_outbound_ports": [80]}, "EXCLUDED_DESTINATION_CAPTURED"),
        ({"inbound_ports": [80]}, {"inbound_ports": "*", "app_port": 8080}, "INBOUND_NOT_CAPTURED"),
        ({"outbound_include_cidrs": ["10.0.0.0/8"]}, {"outbound_include_cidrs": "*"}, "OUTBOUND_NOT_CAPTURED"),
    ],
)
def test_rules_that_disagree_with_the_configuration_are_errors(options, expected, code):
    result = audit(parse_dump(istio_capture_rules(**options)), expected=expected, local_addresses=[POD_IP])
    assert code in {f["code"] for f in result["findings"] if f["severity"] == "error"}, result["findings"]
