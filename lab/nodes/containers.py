"""Node containers of a lab: create, list and remove them with podman."""

import json
import os
import subprocess
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "localhost/meshops-node:bookworm"
DEFAULT_NODES = ("cp1", "w1", "w2", "ws1")
# Each lab gets a private /24 of its own; the host keeps .1 (the bridge).
LABS = {"meshops-lab": "10.89.77", "meshops-site": "10.89.78"}


class Lab:
    def __init__(self, name):
        if name not in LABS:
            raise LabNodesError(f"unknown lab {name!r}: choose one of {', '.join(LABS)}")
        self.network = name
        self.prefix = f"{name}-"
        self.subnet = f"{LABS[name]}.0/24"
        self.gateway = f"{LABS[name]}.1"
        self.label = f"io.meshops.lab={name}"


class LabNodesError(Exception):
    pass


def _podman(*args, check=True):
    env = dict(os.environ, CONTAINERS_CONF=os.path.join(REPO_ROOT, "lab", "podman", "containers.conf"))
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise LabNodesError(f"podman {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _exists(kind, name):
    return _podman(kind, "exists", name, check=False).returncode == 0


def up(lab, nodes):
    if _podman("image", "exists", IMAGE, check=False).returncode != 0:
        raise LabNodesError(f"node image {IMAGE} is missing: run scripts/setup.sh node-image")
    if not _exists("network", lab.network):
        _podman(
            "network", "create", "--subnet", lab.subnet, "--gateway", lab.gateway, "--label", lab.label, lab.network
        )
    containers = [lab.prefix + node for node in nodes]
    for node, container in zip(nodes, containers, strict=True):
        if _exists("container", container):
            continue
        _podman(
            "run", "-d", "--name", container, "--hostname", node, "--label", lab.label,
            "--network", lab.network, "--privileged", "--systemd", "always",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
            IMAGE, "/sbin/init",
        )  # fmt: skip
    _wait_for_systemd(containers)
    return status(lab)


def _wait_for_systemd(nodes, timeout=60):
    deadline = time.monotonic() + timeout
    pending = set(nodes)
    while pending and time.monotonic() < deadline:
        for node in sorted(pending):
            state = _podman("exec", node, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                pending.discard(node)
        if pending:
            time.sleep(0.5)
    if pending:
        raise LabNodesError(f"systemd did not reach 'running' within {timeout}s on: {', '.join(sorted(pending))}")


def _containers(lab):
    return _podman("ps", "-a", "--filter", f"label={lab.label}", "--format", "{{.Names}}").stdout.split()


def down(lab):
    names = _containers(lab)
    if names:
        _podman("rm", "-f", "-t", "2", *names)
    if _exists("network", lab.network):
        _podman("network", "rm", lab.network)
    return names


def status(lab):
    nodes = {}
    for name in sorted(_containers(lab)):
        info = json.loads(_podman("inspect", name).stdout)[0]
        networks = info["NetworkSettings"].get("Networks") or {}
        nodes[name.removeprefix(lab.prefix)] = {
            "container": name,
            "state": info["State"]["Status"],
            "address": (networks.get(lab.network) or {}).get("IPAddress"),
        }
    return {"network": lab.network, "gateway": lab.gateway, "nodes": nodes}
