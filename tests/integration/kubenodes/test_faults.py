"""A lab whose node fails to start: ``up`` names the node, the component and its log, and
removes everything it started. The fault is real: the kubelet is given a configuration it
refuses (an unknown cgroup driver) and exits; nothing is simulated."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab import stack
from lab.cluster.errors import LabError
from lab.nodes import kubenode, routes
from lab.nodes.containers import Lab as NodeLab
from lab.nodes.containers import podman_cmd

pytestmark = [pytest.mark.kubenodes, pytest.mark.podman, pytest.mark.lab]

FAULT_LAB = "meshops-fault"


def podman_list(*args):
    return subprocess.run([*podman_cmd(), *args], capture_output=True, text=True, check=True).stdout.split()


def test_a_kubelet_that_cannot_start_is_named_and_nothing_is_left(monkeypatch):
    real_config = kubenode.kubelet_config

    def refused(node):  # what a stock kubelet 1.37 does on these cgroup v1 machines
        config = json.loads(real_config(node))
        config["failCgroupV1"] = True
        return json.dumps(config)

    monkeypatch.setattr(kubenode, "kubelet_config", refused)
    stack.down(FAULT_LAB)
    try:
        with pytest.raises(LabError) as error:
            stack.up(FAULT_LAB)
    finally:
        stack.down(FAULT_LAB)  # when up did not fail as it should
    message = str(error.value)
    assert "kubelet on cp1" in message and "node cp1: kubelet keeps exiting" in message
    assert "journalctl -u kubelet" in message
    assert "cgroup v1" in message  # the kubelet's own words, from its log
    node_lab = NodeLab(FAULT_LAB)
    assert podman_list("ps", "-a", "--filter", f"label={node_lab.label}", "--format", "{{.Names}}") == []
    assert podman_list("volume", "ls", "--filter", f"label={node_lab.label}", "--format", "{{.Name}}") == []
    assert subprocess.run([*podman_cmd(), "network", "exists", node_lab.network], check=False).returncode != 0
    assert [r for r in routes.host_routes() if r.get("dst", "").startswith(node_lab.pod_prefix + ".")] == []
    assert not (stack.lab_home(FAULT_LAB) / "cluster").exists()


def test_unknown_proxy_mode_is_refused_before_anything_starts():
    with pytest.raises(LabError, match=r"--proxy-mode 'ipvs'.*ip_vs kernel module"):
        stack.up(FAULT_LAB, proxy_mode="ipvs")
    assert podman_list("ps", "-a", "--filter", f"label={NodeLab(FAULT_LAB).label}", "--format", "{{.Names}}") == []
