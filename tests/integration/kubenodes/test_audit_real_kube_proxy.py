"""The node audit (plugins/module_utils/network_audit) on the rules the lab's real kube-proxy
wrote, in each mode it runs here (iptables, nftables; ipvs needs a kernel module this machine
lacks): it recognises the mode and explains the NodePort path to the pod behind the Service."""

from __future__ import annotations

import json
import subprocess

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.network_audit.audit import run_audit
from lab.nodes.containers import podman_cmd
from tests.integration.kubenodes.test_nodes import app_deployment, apply, make_namespace, ready_pods, wait_for

pytestmark = [pytest.mark.kubenodes, pytest.mark.podman, pytest.mark.lab]


def node_netns(real_lab, node):
    pid = subprocess.run(
        [*podman_cmd(), "inspect", "--format", "{{.State.Pid}}", real_lab.container(node)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"/proc/{pid}/ns/net"


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_audit_explains_the_real_kube_proxy_nodeport_path(real_lab, mode):
    lab = real_lab.with_proxy_mode(mode)
    ns = make_namespace(lab, f"t-audit-{mode}")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(lab, ns, app_deployment("web", 1, node_selector="w2", spread=False), service)
    pod_ip = ready_pods(lab, ns, "web", 1)[0]["status"]["podIP"]
    node_port = lab.kubectl_json("-n", ns, "get", "service", "web")["spec"]["ports"][0]["nodePort"]

    def audited():
        report, _raw = run_audit({"node_netns": node_netns(lab, "w1"), "runtime_lookup": False})
        paths = [p for p in report["host"].get("node_port_paths", []) if f"{ns}/web" in json.dumps(p)]
        return (report, paths) if paths and pod_ip in json.dumps(paths) else None

    report, paths = wait_for(f"the audit's NodePort path to {pod_ip}", audited, timeout=90, every=3)
    assert report["host"]["kube_proxy_mode"]["mode"] == mode
    assert any(str(node_port) in json.dumps(p) for p in paths)
    assert not [f for f in report["findings"] if f["severity"] == "error"], report["findings"]
