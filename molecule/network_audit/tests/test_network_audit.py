"""What a person checks after the audit ran across the node containers.

The reports live on the controller (MOLECULE_EPHEMERAL_DIRECTORY/reports); the nodes are asked
through testinfra (podman connection) what really runs there.
"""

import json
import os

import pytest

REPORTS = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"), "reports")
STATE = "/run/meshops-podlab.json"


def _report(name):
    with open(os.path.join(REPORTS, f"{name}.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _codes(pod, severities=("error", "warning")):
    return {f["code"] for f in pod["findings"] if f["severity"] in severities}


@pytest.fixture
def node(host):
    name = host.backend.get_hostname()
    state = json.loads(host.file(STATE).content_string)
    return name, _report(name), state


def test_every_lab_pod_with_envoy_is_found_and_named(node):
    _name, report, state = node
    lab_pods = {p: d for p, d in state["pods"].items() if d["envoy"]}
    found = {p["name"]: p for p in report["pods"]}
    assert set(found) == set(lab_pods)
    for pod_name, data in lab_pods.items():
        assert found[pod_name]["ips"] == [data["ip"]]
        assert found[pod_name]["proxy"]["pid"] == data["pids"]["envoy"]


def test_healthy_pods_pass_and_probe_agrees(node):
    report = node[1]
    for pod in report["pods"]:
        if pod["name"].startswith("web-"):
            assert _codes(pod) == set()
            assert pod["probe"]["agrees"] is True
            assert pod["probe"]["moved"]
            inbound = next(p for p in pod["paths"] if p["name"] == "inbound_app_port")
            assert "ISTIO_IN_REDIRECT \u2192 REDIRECT :15006 \u2192 envoy" in inbound["text"]


def test_control_plane_node_ingress_gateway_path(host):
    if host.backend.get_hostname() != "meshops-na-cp1":
        pytest.skip("the gateway runs on cp1")
    report = _report("meshops-na-cp1")
    (path,) = [p for p in report["host"]["node_port_paths"] if p["ingress_gateway"]]
    assert path["node_port"] == 30080
    assert path["gateway_pods"] == ["istio-system/istio-ingressgateway-0"]
    assert path["text"].endswith("listening on :8080")


def test_worker_findings(host):
    if host.backend.get_hostname() != "meshops-na-w1":
        pytest.skip("the broken pods run on w1")
    report = _report("meshops-na-w1")
    found = {p["name"]: p for p in report["pods"]}
    assert "PROXY_NOT_EXEMPT" in _codes(found["broken-missing-uid-exemption"])
    assert "MESH_BYPASS_NO_CAPTURE" in _codes(found["broken-no-rules"])
    assert found["legacy-0"]["capture_backend"] == "legacy"
    assert "NODE_PODS_MIXED_BACKENDS" in {f["code"] for f in report["findings"]}
    assert "plain-0" not in found  # no Envoy, not a sidecar


def test_summary_covers_both_nodes():
    with open(os.path.join(REPORTS, "summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    assert set(summary["nodes"]) == {"meshops-na-cp1", "meshops-na-w1"}
    assert summary["worst_severity"] == "error"
    with open(os.path.join(REPORTS, "meshops-na-w1.md"), encoding="utf-8") as handle:
        assert "in the mesh but its traffic bypasses the sidecar" in handle.read()


def test_audit_left_processes_and_rules_alone(host, node):
    state = node[2]
    for pod in state["pods"].values():
        for role, pid in pod["pids"].items():
            stat = host.file(f"/proc/{pid}/stat").content_string
            assert int(stat.rsplit(")", 1)[1].split()[19]) == pod["start_times"][role], (pod["name"], role)
    rules = host.check_output("iptables-nft-save -t nat")
    assert "KUBE-SERVICES" in rules
