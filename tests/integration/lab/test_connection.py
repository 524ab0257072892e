"""lab_podman, the lab inventory's connection (lab/connection_plugins/lab_podman.py), against a
real systemd node container: modules are pipelined (one nsenter, no temporary files in the
node), commands run inside the node's namespaces with the container's environment, exit codes
and stdin come through, and files are copied in both directions."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.podman_nodes import PODMAN_ENV, podman, start_node

pytestmark = pytest.mark.podman

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def node():
    name = f"meshops-conn-{uuid.uuid4().hex[:6]}"
    start_node(name, hostname="conn-node")
    try:
        yield name
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def ansible(node, tmp_path, module, args="", verbosity=()):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        f"all:\n  hosts:\n    n1:\n      ansible_host: {node}\n      ansible_connection: lab_podman\n"
        "      ansible_python_interpreter: /usr/bin/python3\n"
    )
    env = dict(
        PODMAN_ENV,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_NOCOLOR="1",
    )
    ansible_bin = str(Path(sys.executable).parent / "ansible")
    proc = subprocess.run(
        [ansible_bin, "-i", str(inventory), "n1", "-m", module, "-a", args, *verbosity],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc


def result_of(proc):
    start = proc.stdout.index("{")
    data = json.loads(proc.stdout[start:])
    return data["plays"][0]["tasks"][0]["hosts"]["n1"]


def test_modules_are_pipelined_inside_the_node(node, tmp_path):
    proc = ansible(node, tmp_path, "ansible.builtin.ping", verbosity=("-vvv",))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "pong" in proc.stdout
    # pipelining: no temporary module files are made in the node
    assert "PUT " not in proc.stdout and "mkdir" not in proc.stdout, proc.stdout[-3000:]
    tmp = podman("exec", node, "sh", "-c", "ls -A /root/.ansible/tmp 2>/dev/null | wc -l").stdout.strip()
    assert tmp == "0"


def test_commands_run_in_the_node_namespaces_with_its_environment(node, tmp_path):
    script = "hostname; pwd; echo $container; cat /proc/1/comm; readlink /proc/self/ns/net; readlink /proc/self/ns/mnt"
    got = result_of(ansible(node, tmp_path, "ansible.builtin.command", f"sh -c '{script}'"))
    lines = got["stdout"].splitlines()
    expected = podman("exec", node, "sh", "-c", "readlink /proc/1/ns/net; readlink /proc/1/ns/mnt").stdout.split()
    assert lines[:4] == ["conn-node", "/", "podman", "systemd"]
    assert lines[4:] == expected
    assert "VIRTUAL_ENV" not in result_of(ansible(node, tmp_path, "ansible.builtin.command", "env"))["stdout"]


def test_exit_codes_and_stdin_come_through(node, tmp_path):
    got = result_of(ansible(node, tmp_path, "ansible.builtin.command", "sh -c 'echo out; echo err >&2; exit 3'"))
    assert (got["rc"], got["stdout"], got["stderr"]) == (3, "out", "err")
    got = result_of(ansible(node, tmp_path, "ansible.builtin.command", "cat stdin='hello node'"))
    assert got["stdout"] == "hello node"


def test_files_are_copied_both_ways(node, tmp_path):
    src = tmp_path / "payload.txt"
    src.write_text("payload\n" * 1000)
    got = result_of(ansible(node, tmp_path, "ansible.builtin.copy", f"src={src} dest=/root/payload.txt mode=0600"))
    assert got["changed"] is True
    assert podman("exec", node, "cat", "/root/payload.txt").stdout == src.read_text()
    dest = tmp_path / "fetched"
    got = result_of(ansible(node, tmp_path, "ansible.builtin.fetch", f"src=/root/payload.txt dest={dest}/ flat=true"))
    assert (dest / "payload.txt").read_text() == src.read_text()
