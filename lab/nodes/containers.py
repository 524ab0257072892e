"""Node containers of a lab: create, list and remove them with podman."""

import json
import os
import subprocess
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "localhost/meshops-node:bookworm"
# The Kubernetes nodes' image: IMAGE plus runc, the CNI plugins, nftables, conntrack
# (lab/nodeimage/kubenode.env).
KUBENODE_IMAGE = "localhost/meshops-kubenode:bookworm"
DEFAULT_NODES = ("cp1", "w1", "w2", "ws1")
KUBE_NODES = ("cp1", "w1", "w2")  # the inventory's control_plane and workers; ws1 is a workstation
# Each lab gets a private /24 of its own (the host keeps .1, the bridge) and pod CIDRs of its
# own (<pods>.<n>.0/24 per node), so that two labs can run side by side with host routes to both.
LABS = {
    "meshops-lab": ("10.89.77", "10.244"),  # the main job's (scripts/site.sh) and labctl's
    "meshops-site": ("10.89.78", "10.245"),  # molecule's end-to-end scenario
    "meshops-test": ("10.89.79", "10.246"),  # the tests of the real nodes (tests/integration/kubenodes)
    "meshops-fault": ("10.89.80", "10.247"),  # the test of a node that fails to start
    "meshops-mesh": ("10.89.81", "10.248"),  # the real mesh end to end (Istio's and the samples' pods)
}
BIN_MOUNT = "/opt/meshops-lab/bin"  # the lab build cache, read-only, in every Kubernetes node
IMAGES_MOUNT = "/opt/meshops-lab/images"  # the lab's image archives, read-only, likewise


class Lab:
    def __init__(self, name):
        if name not in LABS:
            raise LabNodesError(f"unknown lab {name!r}: choose one of {', '.join(LABS)}")
        self.network = name
        self.prefix = f"{name}-"
        net, pods = LABS[name]
        self.subnet = f"{net}.0/24"
        self.gateway = f"{net}.1"
        self.pod_prefix = pods
        self.label = f"io.meshops.lab={name}"

    def volume(self, node):
        """The node's /var/lib/containerd: overlayfs needs an upper directory off the container's
        own overlay root."""
        return f"{self.prefix}{node}-containerd"


class LabNodesError(Exception):
    pass


def podman_cmd():
    """``podman`` with the lab's containers.conf (runc, ulimits these machines accept)."""
    return ["env", f"CONTAINERS_CONF={os.path.join(REPO_ROOT, 'lab', 'podman', 'containers.conf')}", "podman"]


def _podman(*args, check=True):
    result = subprocess.run([*podman_cmd(), *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise LabNodesError(f"podman {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _exists(kind, name):
    return _podman(kind, "exists", name, check=False).returncode == 0


def up(lab, nodes, bin_root=None, images_root=None):
    """Create the network and the node containers (no-op for those that exist). With ``bin_root``
    (the lab build cache) the nodes in KUBE_NODES are made to run Kubernetes: the kubenode image,
    a private cgroup namespace, /var/lib/containerd on a volume, the cache mounted read-only."""
    images = {IMAGE} | ({KUBENODE_IMAGE} if bin_root else set())
    for image in sorted(images):
        if _podman("image", "exists", image, check=False).returncode != 0:
            raise LabNodesError(f"node image {image} is missing: run scripts/setup.sh node-image")
    if not _exists("network", lab.network):
        _podman(
            "network", "create", "--subnet", lab.subnet, "--gateway", lab.gateway, "--label", lab.label, lab.network
        )
    containers = [lab.prefix + node for node in nodes]
    for node, container in zip(nodes, containers, strict=True):
        if _exists("container", container):
            continue
        kube = bool(bin_root) and node in KUBE_NODES
        extra = []
        if kube:
            if not _exists("volume", lab.volume(node)):
                _podman("volume", "create", "--label", lab.label, lab.volume(node))
            extra = [
                "--cgroupns=private",
                "--volume", f"{lab.volume(node)}:/var/lib/containerd",
                "--volume", f"{bin_root}:{BIN_MOUNT}:ro",
                *(["--volume", f"{images_root}:{IMAGES_MOUNT}:ro"] if images_root else []),
                "--tmpfs", "/tmp",
            ]  # fmt: skip
        _podman(
            "run", "-d", "--name", container, "--hostname", node, "--label", lab.label,
            "--network", lab.network, "--privileged", "--systemd", "always",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
            *extra, KUBENODE_IMAGE if kube else IMAGE, "/sbin/init",
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
    # podman rm -f loses a race with a node that stops by itself within the stop timeout
    # ("container state improper: stopped"); a second rm removes the now stopped container.
    if names and _podman("rm", "-f", "-t", "2", *names, check=False).returncode != 0:
        left = _containers(lab)
        if left:
            _podman("rm", "-f", *left)
    volumes = _podman("volume", "ls", "--filter", f"label={lab.label}", "--format", "{{.Name}}").stdout.split()
    if volumes:
        _remove("volume", volumes, lambda: [v for v in volumes if _exists("volume", v)])
    if _exists("network", lab.network):
        _remove("network", [lab.network], lambda: [lab.network] if _exists("network", lab.network) else [])
    return names


def _remove(kind, names, left):
    """``podman <kind> rm``; a failure counts only while something is left: a second ``down`` of
    the same lab at the same time may have removed it in between ("network not found")."""
    result = _podman(kind, "rm", *(["-f"] if kind == "volume" else []), *names, check=False)
    if result.returncode != 0 and left():
        raise LabNodesError(f"podman {kind} rm {' '.join(names)} failed: {result.stderr.strip()}")


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
