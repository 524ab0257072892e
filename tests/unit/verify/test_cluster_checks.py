"""control_plane and sidecars checks, ingress discovery and VirtualService weights, table-driven."""

import os

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.verify import cluster, traffic

with open(os.path.join(os.path.dirname(__file__), "..", "data", "verify", "cluster_checks.yml"), encoding="utf-8") as f:
    CASES = yaml.safe_load(f)


@pytest.mark.parametrize("case", CASES["control_plane"], ids=lambda c: c["name"])
def test_control_plane(case):
    result = cluster.check_control_plane(
        case["deployments"], "istio-system", case["required"], case["istioctl_version"]
    )
    assert result["failures"] == case["failures"]
    assert result["warnings"] == case.get("warnings", [])
    assert result["passed"] is (not case["failures"])


def test_control_plane_version_unknown_is_a_warning_not_a_failure():
    deployments = [
        {
            "metadata": {"name": "istiod"},
            "spec": {"replicas": 1},
            "status": {
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True"}],
            },
        }
    ]
    result = cluster.check_control_plane(deployments, "istio-system", ["istiod"], "unknown")
    assert result["passed"] and result["warnings"]


@pytest.mark.parametrize("case", CASES["sidecars"], ids=lambda c: c["name"])
def test_sidecars(case):
    result = cluster.check_sidecars(case["pods"])
    assert result["failures"] == case["failures"]
    assert {name: state["ready"] for name, state in result["pods"].items()} == case["ready"]


@pytest.mark.parametrize("case", CASES["virtual_service_weights"], ids=lambda c: c["name"])
def test_virtual_service_weights(case):
    assert traffic.weights_from_virtual_service(case["virtual_service"], case["destinations"]) == case["weights"]
    assert traffic.virtual_service_is_mesh_only(case["virtual_service"]) is case["mesh_only"]


def test_unknown_destination_is_named():
    vs = CASES["virtual_service_weights"][0]["virtual_service"]
    with pytest.raises(traffic.VerifyError, match=r"\['tomcat'\] are not routed"):
        traffic.weights_from_virtual_service(vs, ["tomcat", "nginx-svc"])


def test_ingress_address_like_the_tutorial():
    service = {
        "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
        "spec": {
            "type": "NodePort",
            "ports": [{"name": "status-port", "nodePort": 31000}, {"name": "http2", "nodePort": 30080}],
        },
    }
    pods = [
        {"status": {"phase": "Pending"}},
        {"status": {"phase": "Running", "hostIP": "192.0.2.11"}},
    ]
    assert cluster.ingress_address(pods, service) == ("192.0.2.11", 30080)
    service["spec"] = {"type": "ClusterIP", "ports": [{"name": "http2", "port": 80}]}
    with pytest.raises(LookupError, match="no node port on its 'http2' port"):
        cluster.ingress_address(pods, service)
