"""Audit and kube-proxy summary tests driven by data/audit_cases.yml."""

import re

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump

from .helpers import FORMS, dump_text, load_yaml

CASES = load_yaml("audit_cases.yml")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", CASES, ids=[c.get("name", c["dump"]) for c in CASES])
def test_audit(case, form):
    result = audit(
        parse_dump(dump_text(case["dump"], form)), expected=case.get("expected"), local_addresses=["10.0.0.2"]
    )
    capture = result["capture"]
    for key, value in case.get("capture", {}).items():
        assert capture[key] == value, key
    errors = sorted(f["code"] for f in result["findings"] if f["severity"] == "error")
    assert errors == sorted(case.get("errors", [])), result["findings"]
    if "codes" in case:
        assert [f["code"] for f in result["findings"]] == case["codes"]
    if "message" in case:
        assert case["message"] in [f["message"] for f in result["findings"]]
    verdicts = {t["name"]: t["verdict"]["action"] for t in result["traces"]}
    for name, action in case.get("probes", {}).items():
        assert verdicts[name] == action, name
    for finding in result["findings"]:
        assert finding["severity"] in ("error", "warning", "info")
        assert len(finding["message"]) > 20
    if "kube_proxy" in case:
        got = [
            {
                "name": s["name"],
                "cluster_ip": s["cluster_ip"],
                "port": s["port"],
                "node_port": s["node_port"],
                "endpoints": [[e["address"], e["probability"]] for e in s["endpoints"]],
                **({"protocol": s["protocol"]} if s["protocol"] != "tcp" else {}),
            }
            for s in result["kube_proxy"]
        ]
        assert got == case["kube_proxy"]
    else:
        assert result["kube_proxy"] is None


def test_probes_use_the_pod_address_and_do_not_reach_outside_the_rules():
    result = audit(parse_dump(dump_text("istio-default", "rules")), local_addresses=["127.0.0.1", "10.203.0.2"])
    inbound = next(t for t in result["traces"] if t["name"] == "inbound_app_port")
    assert inbound["packet"]["dst"] == "10.203.0.2"
    assert inbound["verdict"]["to_ports"] == 15006
    placeholder = audit(parse_dump(dump_text("istio-default", "rules")))
    assert placeholder["probe_pod_ip"] == "192.0.2.10"


def test_both_backends_warning_is_a_finding():
    result = audit(
        parse_dump(dump_text("istio-default", "rules")),
        both_backends=True,
        where="network namespace pod-1",
    )
    assert result["findings"][0]["code"] == "BOTH_BACKENDS"
    assert result["findings"][0]["severity"] == "warning"
    assert "ipv4 rules in the network namespace pod-1" in result["findings"][0]["message"]


@pytest.mark.parametrize("form", [f for f in FORMS if f != "rules"])
@pytest.mark.parametrize(("exempt", "expected_uid"), [("1337-1340", 1337), ("1337-1340", 1340), ("1000-2000", 1337)])
def test_a_uid_range_exemption_is_read_and_covers_the_proxy(form, exempt, expected_uid):
    # iptables-save prints an owner range as "low-high": the proxy's uid inside it is exempt,
    # and the probes send the proxy's traffic from the low end of the range.
    text = re.sub(
        r"(?<=-m owner )--uid-owner 1337 -j RETURN", f"--uid-owner {exempt} -j RETURN", dump_text("istio-dns", form)
    )
    result = audit(parse_dump(text), expected={"proxy_uid": expected_uid})
    assert exempt in result["capture"]["proxy_uids"]
    assert not [f for f in result["findings"] if f["severity"] == "error"], result["findings"]


def test_a_uid_range_without_the_proxy_is_a_mismatch():
    text = re.sub(
        r"(?<=-m owner )--uid-owner 1337 -j RETURN",
        "--uid-owner 2000-2010 -j RETURN",
        dump_text("istio-dns", "legacy.save"),
    )
    result = audit(parse_dump(text), expected={"proxy_uid": 1337})
    assert "EXPECTED_MISMATCH" in {f["code"] for f in result["findings"]}
