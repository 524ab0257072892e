"""The README's main-job command, as a user runs it: scripts/site.sh without an inventory
brings up the lab (node containers, the real control plane and istioctl from Go modules),
runs site.yml, prints the verification results and lists one audit report per node; run
again, it changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.podman]

REPO = Path(__file__).resolve().parents[3]
LAB = "meshops-lab"
PODMAN_ENV = dict(os.environ, CONTAINERS_CONF=str(REPO / "lab" / "podman" / "containers.conf"))
RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=0\s+failed=0", re.M)


def lab_is_up() -> bool:
    probe = ["podman", "container", "exists", f"{LAB}-cp1"]
    return subprocess.run(probe, env=PODMAN_ENV, check=False).returncode == 0


@pytest.fixture
def main_job(tmp_path):
    # A lab someone already had up is used as it is and left up; one this test started is
    # taken down again.
    started_here = not lab_is_up()
    env = dict(PODMAN_ENV, MESHOPS_REPORT_DIR=str(tmp_path / "reports"))
    env.pop("MESHOPS_LAB", None)

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / "scripts" / "site.sh")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,  # the test asserts the exit code with the output
        )

    yield run, tmp_path / "reports"
    if started_here:
        subprocess.run([sys.executable, "-m", "lab.stack", "down", "--lab", LAB], cwd=REPO, env=PODMAN_ENV, check=False)


def test_main_job_prints_verification_and_writes_one_report_per_node(main_job):
    run, reports = main_job
    first = run()
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert "control_plane: passed" in first.stdout and "sidecars: passed" in first.stdout
    assert f"Network audit reports: {reports}" in first.stdout
    for node in ("cp1", "w1", "w2"):
        assert (reports / f"{node}.json").is_file() and (reports / f"{node}.md").is_file()
        assert f"  {node}.json" in first.stdout
    assert (reports / "summary.json").is_file()
    assert not (reports / "ws1.json").exists()  # the workstation is not a Kubernetes node

    second = run()
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    site_recap = second.stdout.split("PLAY RECAP")[-1]
    changed = {m["host"]: int(m["changed"]) for m in RECAP.finditer(site_recap)}
    assert set(changed) >= {"cp1", "w1", "w2", "ws1"}, site_recap
    assert all(count == 0 for count in changed.values()), site_recap
