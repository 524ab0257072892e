"""pytest plugin: the lab of real Kubernetes nodes as a fixture.

``real_lab`` (session): the ``meshops-test`` lab (its own podman network and pod CIDRs, so it
stands beside the main job's lab) with cp1, w1 and w2 running containerd, the kubelet and
kube-proxy. A lab already up is used and left running; otherwise this session starts it and
removes it at its end. ``real_lab.with_proxy_mode("nftables")`` switches kube-proxy's mode.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import stack
from lab.cluster.fixtures import run_kubectl
from lab.nodes import agents
from lab.nodes.containers import Lab as NodeLab

TEST_LAB = "meshops-test"


@dataclass
class RealLab:
    name: str
    owned: bool
    info: dict

    @property
    def kubeconfig(self) -> Path:
        return Path(self.info["lab_kubeconfig"])

    @property
    def proxy_mode(self) -> str:
        return self.info["proxy_mode"]

    def container(self, node: str) -> str:
        return NodeLab(self.name).prefix + node

    def address(self, node: str) -> str:
        return self.info["nodes"][node]["address"]

    def node_exec(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = agents.node_exec(self.container(node))(list(argv))
        out = subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} on {node} failed ({proc.returncode}): {out.stderr.strip()}")
        return out

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        return run_kubectl(self.kubeconfig, *args, input=input, check=check, timeout=timeout)

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def with_proxy_mode(self, mode: str) -> RealLab:
        """The same lab with kube-proxy in ``mode`` (switched in place, as ``up`` does)."""
        if self.proxy_mode != mode:
            self.info = stack.up(self.name, mode)
        return self


def running_lab_info(name: str) -> dict | None:
    """A lab of real nodes that is up: its vars.yml with its kube-proxy mode and nodes; else None."""
    status = stack.status(name)
    if not status["cluster"].get("up") or not status.get("proxy_mode"):
        return None
    vars_file = stack.lab_home(name) / "vars.yml"
    import yaml

    return {
        **yaml.safe_load(vars_file.read_text()),
        "proxy_mode": status["proxy_mode"],
        "nodes": status["nodes"],
    }


@pytest.fixture(scope="session")
def real_lab(request) -> RealLab:
    info = running_lab_info(TEST_LAB)
    lab = RealLab(TEST_LAB, info is None, info or stack.up(TEST_LAB))
    # owned may become true later (with_proxy_mode restarts the lab): decided at the end
    request.addfinalizer(lambda: stack.down(TEST_LAB) if lab.owned else None)
    return lab
