"""mesh/ingress.py: NodePort range, node port checks, the Service patch, ingress facts."""

import os

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.mesh import ingress

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "mesh", "ingress_cases.yml")
with open(DATA, encoding="utf-8") as _handle:
    CASES = yaml.safe_load(_handle)


@pytest.mark.parametrize("case", CASES["port_ranges"], ids=lambda c: c["text"])
def test_parse_port_range(case):
    assert ingress.parse_port_range(case["text"]) == tuple(case["range"])


@pytest.mark.parametrize("text", CASES["bad_port_ranges"])
def test_bad_port_range(text):
    with pytest.raises(ingress.IngressError):
        ingress.parse_port_range(text)


@pytest.mark.parametrize("case", CASES["apiserver_pods"], ids=lambda c: c["id"])
def test_apiserver_node_port_range(case):
    assert ingress.apiserver_node_port_range(case["pods"]) == case["range"]


@pytest.mark.parametrize("case", CASES["node_port_checks"], ids=lambda c: c["id"])
def test_node_port_problems(case):
    problems = ingress.node_port_problems(
        case["requested"], CASES["gateway_service"], CASES["other_services"], case["range"]
    )
    assert problems == case["problems"]


@pytest.mark.parametrize("case", CASES["patches"], ids=lambda c: c["id"])
def test_service_apply_patch(case):
    assert ingress.service_apply_patch(CASES["gateway_service"], case["type"], case["requested"]) == case["patch"]


@pytest.mark.parametrize("case", CASES["facts"], ids=lambda c: c["id"])
def test_ingress_facts(case):
    facts = ingress.ingress_facts(CASES["gateway_service"], case["pods"], case["node"], case["gateways"])
    assert facts == case["facts"]
