"""Fixtures for the istioctl role tests: real node containers, a real HTTP mirror container on
the test's own podman network, and the lab's real istioctl release bundle (``lab/labctl bundle``).

The "second version" used for upgrades is a RELABELLED COPY of the same real bundle: the archive
is unpacked, its top directory renamed to ``istio-<second version>`` (a label of the same length,
``1.31.0-relabelled00``) and packed again, with the version label inside the real binary rewritten
in place, so that it runs as the real one and reports the second version (release_tools.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.integration.podman_nodes import NODE_IMAGE, PODMAN_ENV, podman, start_node

from .release_tools import WRONG_SHA256, Release, lab_release, publish, relabel, relabelled_version

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
PLAYBOOK = "playbooks/istioctl.yml"
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.M,
)
# What the role may touch on a node; a snapshot lists every path below these with its type,
# size and link target, plus the installed Debian packages.
SNAPSHOT_ROOTS = "/opt /usr/local /usr/share/bash-completion /usr/share/zsh /var/lib/meshops-istio"


@pytest.fixture(scope="session")
def podman_ready() -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (bindep.txt: podman, runc)")
    if podman("image", "exists", NODE_IMAGE, check=False).returncode != 0:
        pytest.skip(f"node image {NODE_IMAGE} is missing: run lab/nodeimage/build.sh")


@pytest.fixture(scope="session")
def real_release(podman_ready) -> Release:
    """The lab's real istioctl release bundle (built from istio.io/istio by lab/labctl)."""
    try:
        return lab_release()
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def releases(real_release, tmp_path_factory) -> dict[str, Release]:
    work = tmp_path_factory.mktemp("istioctl-releases")
    return {"real": real_release, "relabelled": relabel(real_release, relabelled_version(real_release.version), work)}


@dataclass
class Mirror:
    name: str
    network: str
    ip: str
    root: Path
    releases: dict[str, Release] = field(default_factory=dict)

    def url(self, port: int = 8080, prefix: str = "") -> str:
        return f"http://{self.ip}:{port}{prefix}/{{version}}/istio-{{version}}-linux-{{arch}}.tar.gz"

    def hits(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://{self.ip}:8080/_hits", timeout=10) as rsp:
            return json.load(rsp)


@pytest.fixture(scope="session")
def mirror(releases, tmp_path_factory) -> Mirror:
    """A mirror container on a podman network of its own, serving the release layout.

    /                 the real release and the relabelled copy, with correct .sha256 files
    /corrupt/         the relabelled copy with a .sha256 that names another digest
    """
    suffix = uuid.uuid4().hex[:6]
    network, name = f"meshops-ictl-{suffix}", f"meshops-ictl-mirror-{suffix}"
    root = tmp_path_factory.mktemp("istioctl-mirror")
    for rel in releases.values():
        publish(rel, root)
    publish(releases["relabelled"], root / "corrupt", sha256=WRONG_SHA256)
    podman("network", "create", network)
    try:
        podman(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "-v",
            f"{root}:/srv/mirror:ro",
            "-v",
            f"{Path(__file__).with_name('mirror_server.py')}:/srv/mirror_server.py:ro",
            NODE_IMAGE,
            "python3",
            "/srv/mirror_server.py",
        )
        fmt = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
        ip = podman("inspect", "-f", fmt, name).stdout.strip()
        m = Mirror(name, network, ip, root, dict(releases))
        deadline = time.monotonic() + 20
        while True:
            try:
                m.hits()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield m
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("network", "rm", "-f", network, check=False)


@dataclass
class RunResult:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]

    def changed(self, host: str) -> int:
        return self.recap[host]["changed"]


@dataclass
class Node:
    name: str
    workdir: Path
    # lab_podman (lab/connection_plugins): nsenter into the container, pipelined, as SSH with
    # pipelining reaches a bare-metal node; molecule's istioctl scenario runs the role through
    # containers.podman.podman, a user's own inventory of podman hosts.
    connection: str = "lab_podman"

    def sh(self, script: str, check: bool = True, user: str | None = None) -> subprocess.CompletedProcess:
        args = ["exec", *(["--user", user] if user else []), self.name, "bash", "-c", script]
        return podman(*args, check=check)

    def snapshot(self) -> str:
        return self.sh(
            # directory sizes are left out: a directory does not shrink when an entry is removed
            f"find {SNAPSHOT_ROOTS} -xdev \\( -type d -printf '%p d %m %u\\n' \\)"
            " -o -printf '%p %y %m %u %s %l\\n' 2>/dev/null | sort; "
            "dpkg-query -W -f='${Package} ${Version} ${db:Status-Status}\\n'"
        ).stdout

    def link_target(self) -> str:
        return self.sh("readlink /usr/local/bin/istioctl || true").stdout.strip()

    def play(
        self,
        extra_vars: dict,
        *,
        check: bool = False,
        diff: bool = False,
        interpreter: str | None = None,
        timeout: int = 900,
    ) -> RunResult:
        inventory = {
            "all": {
                "vars": {
                    "ansible_connection": self.connection,
                    "ansible_python_interpreter": interpreter or "/usr/bin/python3",
                },
                "children": {"control_plane": {"hosts": {self.name: {}}}},
            }
        }
        inv = self.workdir / "hosts.yml"
        inv.write_text(yaml.safe_dump(inventory))
        ev = self.workdir / "vars.json"
        ev.write_text(json.dumps({"istioctl_controller_cache_dir": str(self.workdir / "cache"), **extra_vars}))
        cmd = [ANSIBLE_PLAYBOOK, "-i", str(inv), PLAYBOOK, "-e", f"@{ev}"]
        cmd += ["--check"] if check else []
        cmd += ["--diff"] if diff else []
        env = {
            **PODMAN_ENV,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        }
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        out = proc.stdout + proc.stderr
        recap = {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(proc.stdout)
        }
        return RunResult(proc.returncode, out, recap)


@pytest.fixture
def node_connection() -> str:
    """The connection the tests' inventories use (a test module may override this fixture)."""
    return "lab_podman"


@pytest.fixture
def node_factory(mirror, tmp_path_factory, node_connection):
    """Start fresh systemd node containers on the mirror's network; removed afterwards."""
    started: list[str] = []

    def start() -> Node:
        name = f"meshops-ictl-node-{uuid.uuid4().hex[:6]}"
        start_node(name, network=mirror.network)
        started.append(name)
        return Node(name, tmp_path_factory.mktemp(name), node_connection)

    yield start
    for name in started:
        podman("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture
def node(node_factory) -> Node:
    return node_factory()


@pytest.fixture(scope="module")
def pristine_node_container(mirror):
    """One node container for a module's tests that must leave the node as they found it."""
    name = f"meshops-ictl-node-{uuid.uuid4().hex[:6]}"
    start_node(name, network=mirror.network)
    yield name
    podman("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture
def pristine_node(pristine_node_container, tmp_path_factory, node_connection) -> Node:
    """The shared container with a controller work directory (inventory, download cache) of the
    test's own. Each test that uses it asserts the node unchanged by its run (a snapshot), so
    the next one starts from a node nothing was installed on, as with a fresh container."""
    before = Node(pristine_node_container, tmp_path_factory.mktemp(pristine_node_container), node_connection)
    snapshot = before.snapshot()
    yield before
    assert before.snapshot() == snapshot, "the test changed the node that the next tests share"
