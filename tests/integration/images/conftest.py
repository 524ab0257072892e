"""A real containerd for the image tests: the lab's build of containerd v2.4.2 (its Go module)
run as a host process with its own root, state and socket in a temporary directory, the CRI
plugin off (no kubelet here). Nothing of the machine's own containerd, if any, is used.

The binaries are looked up in ``$MESHOPS_CONTAINERD_BIN``, then in the lab's build cache
(``~/.cache/meshops-istio/lab/bin/containerd-*/``, ``python lab/labctl build``), then in
``~/.cache/meshops-istio/images-test/containerd-*/``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CACHE = os.path.expanduser(os.environ.get("MESHOPS_HOME", "~/.cache/meshops-istio"))


def _containerd_bin_dir():
    candidates = []
    if os.environ.get("MESHOPS_CONTAINERD_BIN"):
        candidates.append(os.environ["MESHOPS_CONTAINERD_BIN"])
    for pattern in ("lab/bin/containerd-*", "images-test/containerd-*"):
        candidates += sorted(glob.glob(os.path.join(CACHE, pattern)), key=os.path.getmtime, reverse=True)
    for directory in candidates:
        if all(os.access(os.path.join(directory, b), os.X_OK) for b in ("containerd", "ctr")):
            return directory
    return None


class Containerd:
    """One containerd process; ``ctr(...)`` runs ctr against it."""

    def __init__(self, bin_dir, workdir):
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.ctr_path = os.path.join(bin_dir, "ctr")
        self.address = os.path.join(workdir, "containerd.sock")
        self.namespace = "k8s.io"
        self.process = None

    def start(self):
        config = os.path.join(self.workdir, "config.toml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(
                "version = 3\n"
                f'root = "{self.workdir}/root"\n'
                f'state = "{self.workdir}/state"\n'
                'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", '
                '"io.containerd.cri.v1.images"]\n'
                "[grpc]\n"
                f'  address = "{self.address}"\n'
                "[ttrpc]\n"
                f'  address = "{self.address}.ttrpc"\n'
                "[debug]\n"
                f'  address = "{self.workdir}/debug.sock"\n'
            )
        env = dict(os.environ, PATH=f"{self.bin_dir}:{os.environ.get('PATH', '')}")
        self.log = open(os.path.join(self.workdir, "containerd.log"), "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [os.path.join(self.bin_dir, "containerd"), "--config", config],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"containerd exited: {self.read_log()[-3000:]}")
            if os.path.exists(self.address) and self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"containerd did not answer within 60 s: {self.read_log()[-3000:]}")

    def read_log(self):
        with open(os.path.join(self.workdir, "containerd.log"), encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()

    def ctr(self, *args, check=True, namespace=None):
        argv = [self.ctr_path, "--address", self.address, "--namespace", namespace or self.namespace, *args]
        return subprocess.run(argv, capture_output=True, text=True, check=check)

    def images(self, namespace=None):
        """{name: target digest} of the namespace."""
        out = self.ctr("images", "ls", namespace=namespace).stdout
        return {f[0]: f[2] for f in (line.split() for line in out.splitlines()[1:]) if len(f) >= 3}

    def remove_all(self, namespace=None):
        names = list(self.images(namespace))
        if names:
            self.ctr("images", "rm", "--sync", *names, namespace=namespace)

    def run(self, argv):
        """The runner module_utils expect: (rc, stdout, stderr)."""
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def containerd():
    if os.geteuid() != 0:
        pytest.skip("containerd needs root (mounts for unpacking)")
    bin_dir = _containerd_bin_dir()
    if bin_dir is None:
        pytest.skip("no containerd build: run python lab/labctl build --only containerd, or set MESHOPS_CONTAINERD_BIN")
    workdir = tempfile.mkdtemp(prefix="meshops-ctrd-", dir="/tmp")
    daemon = Containerd(bin_dir, workdir)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        # snapshots may be mounted under root; unmount anything left before removing
        subprocess.run(
            ["sh", "-c", f"grep -o ' {workdir}/[^ ]*' /proc/self/mounts | xargs -r -n1 umount -l"], check=False
        )
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def clean_containerd(containerd):
    containerd.remove_all()
    yield containerd
    containerd.remove_all()


def ansible_env(tmp_path):
    """Environment for ansible / ansible-playbook against localhost with this checkout."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "node1": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
        ANSIBLE_INVENTORY=str(inventory),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    return env
