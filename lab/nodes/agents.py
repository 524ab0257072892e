"""Start the Kubernetes node agents in a lab's node containers and wait until the nodes are Ready.

Per node: its identities (kubelet ``system:node:<name>``, kube-proxy ``system:kube-proxy``) signed
by the lab CA, the files of ``lab.nodes.kubenode`` written in one tar stream, containerd started,
the lab's images imported into it, then the kubelet and kube-proxy started. Everything is
idempotent: a node that already runs them with the same files is left alone.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from lab.cluster import pki as labpki
from lab.cluster.cluster import write_kubeconfig
from lab.cluster.errors import LabError
from lab.images import catalog
from lab.nodes import kubenode
from lab.nodes.containers import IMAGES_MOUNT, podman_cmd


@dataclass
class RealNode:
    name: str
    container: str
    address: str
    pod_cidr: str


def node_exec(container: str):
    """A function running argv in the node container (stdin optional), never raising."""

    def run(argv, stdin=None, capture=True):
        return subprocess.run(
            [*podman_cmd(), "exec", *(["-i"] if stdin is not None else []), container, *argv],
            stdin=stdin,
            capture_output=capture,
            stdout=None if capture else subprocess.DEVNULL,
            stderr=None if capture else subprocess.DEVNULL,
            check=False,
        )

    return run


def journal_tail(container: str, unit: str, lines: int = 25) -> str:
    proc = node_exec(container)(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"])
    return (proc.stdout or b"").decode(errors="replace").strip()


def _kubeconfig(server: str, pki: labpki.Pki, ident: str) -> str:
    path = pki.directory.parent / "kubeconfigs" / f"{ident}.kubeconfig"
    write_kubeconfig(path, server, pki, ident)
    return path.read_text()


def configs(
    nodes: list[RealNode], pki: labpki.Pki, server: str, binaries: dict[str, str], proxy_mode: str, cluster_cidr: str
):
    """The NodeConfig of every node; node certificates are issued once and then reused."""
    if not pki.cert("kube-proxy").is_file():
        labpki.issue(pki, "kube-proxy", "system:kube-proxy", None)
    proxy_kc = _kubeconfig(server, pki, "kube-proxy")
    out = []
    for n in nodes:
        ident = f"kubelet-{n.name}"
        if not pki.cert(ident).is_file():
            labpki.issue(pki, ident, f"system:node:{n.name}", "system:nodes")
        out.append(
            kubenode.NodeConfig(
                name=n.name,
                address=n.address,
                pod_cidr=n.pod_cidr,
                binaries=binaries,
                ca_pem=pki.ca.read_bytes(),
                kubelet_kubeconfig=_kubeconfig(server, pki, ident),
                proxy_kubeconfig=proxy_kc,
                proxy_mode=proxy_mode,
                cluster_cidr=cluster_cidr,
            )
        )
    return out


def _systemctl(container: str, *args: str) -> subprocess.CompletedProcess:
    return node_exec(container)(["systemctl", *args])


def _fail(node: RealNode, unit: str, why: str) -> LabError:
    return LabError(
        f"node {node.name}: {unit} {why} (its log: podman exec {node.container} journalctl -u {unit})",
        component=f"{unit} on {node.name}",
        log_tail=journal_tail(node.container, unit),
    )


def install(node: RealNode, cfg: kubenode.NodeConfig) -> None:
    """Write the node's files and start containerd (the kubelet waits for the images)."""
    data = kubenode.tar_stream(kubenode.files(cfg), kubenode.links(cfg))
    proc = subprocess.run(
        [*podman_cmd(), "exec", "-i", node.container, "tar", "-x", "-C", "/"], input=data, capture_output=True
    )
    if proc.returncode != 0:
        raise LabError(f"node {node.name}: writing its configuration failed: {proc.stderr.decode().strip()}")
    _systemctl(node.container, "daemon-reload")
    for unit in ("meshops-lab-node-prep", "containerd"):
        if _systemctl(node.container, "enable", "--now", f"{unit}.service").returncode != 0:
            raise _fail(node, unit, "did not start")


def wait_socket(node: RealNode, ctr: str, timeout: float = 30.0) -> None:
    run = node_exec(node.container)
    deadline = time.monotonic() + timeout
    while run([ctr, "version"]).returncode != 0:
        if time.monotonic() > deadline:
            raise _fail(node, "containerd", f"did not answer on its socket within {timeout:.0f}s")
        time.sleep(0.3)


def start_kubelet_and_proxy(node: RealNode) -> None:
    for unit in ("kubelet", "kube-proxy"):
        if _systemctl(node.container, "enable", "--now", f"{unit}.service").returncode != 0:
            raise _fail(node, unit, "did not start")


def restart(node: RealNode, unit: str) -> None:
    if _systemctl(node.container, "restart", f"{unit}.service").returncode != 0:
        raise _fail(node, unit, "did not restart")


def load_images(nodes: list[RealNode], ctr: str, images: list[catalog.Built], echo, control_plane=()):
    """Import the images each node lacks; the control plane's nodes get only what runs there."""
    imported: dict[str, list[str]] = {}
    for node in nodes:
        wanted = [i for i in images if i.name in catalog.CONTROL_PLANE_IMAGES or node.name not in control_plane]
        for image in wanted:
            if catalog.load(node_exec(node.container), ctr, image, node.name, IMAGES_MOUNT):
                imported.setdefault(node.name, []).append(image.name)
        if imported.get(node.name):
            echo(f"imported into {node.name}: {', '.join(imported[node.name])}")
    return imported


def raise_if_exiting(nodes: list[RealNode]) -> None:
    """A unit that keeps exiting will not make it: say so now, naming it."""
    for node in nodes:
        for unit in ("containerd", "kubelet"):
            restarts = _systemctl(node.container, "show", "-p", "NRestarts", "--value", f"{unit}.service")
            count = (restarts.stdout or b"0").strip()
            if count.isdigit() and int(count) >= 3:
                raise _fail(node, unit, f"keeps exiting ({int(count)} restarts)")


def wait_ready(api, nodes: list[RealNode], timeout: float) -> None:
    """All nodes Ready; on timeout the error names each node that is not, with its kubelet log."""
    deadline = time.monotonic() + timeout
    while True:
        items = {i["metadata"]["name"]: i for i in api.get_json("/api/v1/nodes").get("items", [])}
        waiting = []
        for n in nodes:
            conds = {c["type"]: c for c in items.get(n.name, {}).get("status", {}).get("conditions", [])}
            if conds.get("Ready", {}).get("status") != "True":
                waiting.append((n, conds.get("Ready", {}).get("message", "no Ready condition yet")))
        if not waiting:
            return
        raise_if_exiting([node for node, _ in waiting])
        if time.monotonic() > deadline:
            node, why = waiting[0]
            for unit in ("containerd", "kubelet"):
                if _systemctl(node.container, "is-active", "--quiet", f"{unit}.service").returncode != 0:
                    raise _fail(node, unit, "is not running")
            raise _fail(node, "kubelet", f"did not make the node Ready within {timeout:.0f}s: {why}")
        time.sleep(2.0)
