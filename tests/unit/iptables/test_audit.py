"""Audit and kube-proxy summary tests driven by data/audit_cases.yml."""

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
