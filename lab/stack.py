"""The whole lab in one step, for the main job, the end-to-end molecule scenario and ``labctl up``.

    python -m lab.stack up [--lab meshops-lab] [--proxy-mode iptables|nftables]
    python -m lab.stack down [--lab meshops-lab]
    python -m lab.stack status [--lab meshops-lab]

``up`` builds what is missing (Kubernetes, containerd and CoreDNS from their Go modules; the
images), starts the node containers, the control plane listening on the lab network's bridge
address, then turns cp1, w1 and w2 into real Kubernetes nodes (containerd, kubelet, kube-proxy;
lab.nodes.agents), routes the pod CIDRs, starts CoreDNS, makes the release bundle istioctl
installs from and writes the variables the lab inventory reads (istioctl_version,
istioctl_archive_src, lab_kubeconfig) into ``<MESHOPS_HOME>/lab/<lab>/vars.yml``. A failed
``up`` names the node, the component and its log, and removes everything the lab had. ``down``
leaves nothing behind: processes, containers, volumes, the network, the host routes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from lab.cluster import build as labbuild
from lab.cluster import paths, pki
from lab.cluster.bundle import make_bundle
from lab.cluster.cluster import Lab as Cluster
from lab.cluster.cluster import nodes_from_inventory
from lab.cluster.errors import LabError
from lab.images import catalog
from lab.nodes import agents, kubenode, routes
from lab.nodes import containers as lab_nodes
from lab.nodes.containers import Lab as NodeLab
from lab.nodes.containers import LabNodesError

REPO_ROOT = Path(__file__).resolve().parent.parent
LAB_INVENTORY = REPO_ROOT / "inventories" / "lab" / "hosts.yml"
COREDNS = Path(__file__).resolve().parent / "nodes" / "addons" / "coredns.yaml"
NODE_BUILDS = ["kube", "etcd", "kubenode", "containerd", "cri-tools", "coredns"]
STACK_FILE = "stack.json"


def lab_home(name):
    home = Path(os.environ.get("MESHOPS_HOME", Path.home() / ".cache" / "meshops-istio"))
    return home / "lab" / name


def _say(msg):
    print(f"lab.stack: {msg}", file=sys.stderr, flush=True)


def _in_node(build, binary):
    """Path of a lab binary inside a node (the build cache is mounted at BIN_MOUNT)."""
    return f"{lab_nodes.BIN_MOUNT}/{build.directory.name}/{binary}"


def _recorded(name):
    try:
        return json.loads((lab_home(name) / STACK_FILE).read_text())
    except (OSError, ValueError):
        return {}


def up(name, proxy_mode="iptables", nodes="real", samples=False):
    """Bring the lab up. ``nodes="kwok"``: the node containers stay plain hosts for Ansible and the
    cluster's nodes are kwok's simulation (no pod runs); for what needs images the lab cannot
    build yet."""
    t0 = time.monotonic()
    if nodes not in ("real", "kwok"):
        raise LabError(f"--nodes {nodes!r}: choose real or kwok")
    if proxy_mode not in kubenode.PROXY_MODES:
        raise LabError(
            f"--proxy-mode {proxy_mode!r}: choose one of {', '.join(kubenode.PROXY_MODES)} "
            "(ipvs needs the ip_vs kernel module, which these machines do not have)"
        )
    node_lab = NodeLab(name)
    cluster = Cluster(lab_home(name) / "cluster")
    recorded = _recorded(name) if cluster.load() else {}
    if recorded and recorded.get("nodes_kind") != nodes:
        raise LabError(
            f"lab {name} is up with {recorded.get('nodes_kind')} nodes, not {nodes}; "
            f"run `python -m lab.stack down --lab {name}` first"
        )
    if nodes == "kwok":
        return _up_kwok(name, node_lab, cluster, proxy_mode)
    _refuse_a_second_real_lab(name)
    # before anything starts: binaries and images (built or from the cache), free pod CIDRs
    builds = labbuild.build_all(NODE_BUILDS)
    images = catalog.build_all(samples=samples)
    inventory_nodes = nodes_from_inventory(LAB_INVENTORY)
    cidrs = [f"{node_lab.pod_prefix}.{i + 1}.0/24" for i in range(len(inventory_nodes))]
    routes.check_free(cidrs)
    try:
        switch = recorded.get("proxy_mode") not in (None, proxy_mode)
        return _up(name, node_lab, cluster, builds, images, inventory_nodes, proxy_mode, switch, t0)
    except BaseException:
        _say("up failed; removing everything this lab had")
        down(name)
        raise


def _refuse_a_second_real_lab(name):
    """On these cgroup v1 machines the node containers' systemd share the host's name=systemd
    hierarchy: a second lab of real nodes creates and removes the same paths there
    (system.slice/containerd.service) and the first lab's new containers then fail to start
    ("error mounting cgroup ... no such file or directory"). One lab of real nodes at a time."""
    for other in lab_nodes.LABS:
        if (
            other != name
            and _recorded(other).get("nodes_kind") == "real"
            and Cluster(lab_home(other) / "cluster").load()
        ):
            raise LabError(
                f"lab {other} of real nodes is up; two labs of real nodes on one cgroup v1 host break each "
                f"other's containers (they share systemd's name=systemd hierarchy): run "
                f"`python -m lab.stack down --lab {other}` first"
            )


def _up_kwok(name, node_lab, cluster, proxy_mode):
    node_status = lab_nodes.up(node_lab, list(lab_nodes.DEFAULT_NODES))
    cluster.up(nodes_from_inventory(LAB_INVENTORY), node_lab.gateway, 0, [], 180.0, pod_prefix=node_lab.pod_prefix)
    variables = _write_vars(name, cluster.kubeconfig_path(node_lab.gateway), "kwok")
    _record(name, {"proxy_mode": proxy_mode, "nodes_kind": "kwok"})
    return {"nodes": node_status["nodes"], "vars_file": str(lab_home(name) / "vars.yml"), **variables}


def role_archives(built_images, images_root=None):
    """The images role's ``images_archives`` for built images: staged in every node where the lab
    mounts its image cache, so the role reads and imports them in place (``node_path``)."""
    root = Path(images_root or catalog.images_root())
    return [{"node_path": f"{lab_nodes.IMAGES_MOUNT}/{i.archive.relative_to(root).as_posix()}"} for i in built_images]


def _write_vars(name, kubeconfig, nodes_kind, role_images=()):
    bundle = make_bundle()
    variables = {
        "istioctl_version": bundle.version,
        "istioctl_archive_src": str(bundle.archive),
        "lab_kubeconfig": str(kubeconfig),
        # real: pods run (webhook injection, traffic); kwok: simulated (inventories/lab says what differs)
        "lab_nodes": nodes_kind,
        # for the images role (site.yml): the archives of Istio's images and the samples' images
        "lab_image_archives": role_archives(role_images),
    }
    (lab_home(name) / "vars.yml").write_text(yaml.safe_dump(variables, default_flow_style=False), encoding="utf-8")
    return variables


def _record(name, record):
    (lab_home(name) / STACK_FILE).write_text(json.dumps(record, indent=2) + "\n")


def _up(name, node_lab, cluster, builds, images, inventory_nodes, proxy_mode, switch_proxy_mode, t0):
    timings = {}

    def mark(what):
        timings[what] = round(time.monotonic() - t0, 1)

    node_status = lab_nodes.up(
        node_lab, list(lab_nodes.DEFAULT_NODES), bin_root=paths.bin_root(), images_root=catalog.images_root()
    )
    mark("node containers running")
    for spec in inventory_nodes:
        spec.address = node_status["nodes"][spec.name]["address"]
    cluster.up(inventory_nodes, node_lab.gateway, 0, [], 180.0, real_nodes=True, pod_prefix=node_lab.pod_prefix)
    mark("control plane ready")
    state = cluster.load()
    real = [
        agents.RealNode(n["name"], node_lab.prefix + n["name"], n["address"], n["pod_cidr"]) for n in state["nodes"]
    ]
    binaries = {
        "kubelet": _in_node(builds["kubenode"], "kubelet"),
        "kube-proxy": _in_node(builds["kubenode"], "kube-proxy"),
        "containerd": _in_node(builds["containerd"], "containerd"),
        "ctr": _in_node(builds["containerd"], "ctr"),
        "crictl": _in_node(builds["cri-tools"], "crictl"),
    }
    ctr = binaries["ctr"]
    server = f"https://{state['bind_address']}:{state['ports']['apiserver']}"
    configs = agents.configs(
        real, pki.Pki(cluster.state_dir / "pki"), server, binaries, proxy_mode, f"{node_lab.pod_prefix}.0.0/16"
    )
    for node, cfg in zip(real, configs, strict=True):
        agents.install(node, cfg)
        for argv in routes.node_routes_script(node, real):
            agents.node_exec(node.container)(argv)
    for node in real:
        agents.wait_socket(node, ctr)
    mark("containerd running")
    control_plane = [n.name for n in inventory_nodes if n.role == "control-plane"]
    # the sandbox and CoreDNS first (small), so that the kubelets start early (a node that fails
    # is named within seconds) and CoreDNS never waits for an image; the big ones while the
    # nodes register (no other pod is created before up returns)
    first = [i for i in images if i.name in catalog.CONTROL_PLANE_IMAGES]
    imported = agents.load_images(real, ctr, first, _say, control_plane)
    for node in real:
        agents.start_kubelet_and_proxy(node)
        if switch_proxy_mode:  # kube-proxy removes the other mode's rules when it starts
            agents.restart(node, "kube-proxy")
    if switch_proxy_mode:
        _say(f"kube-proxy switched to {proxy_mode} mode")
    mark("kubelets started")
    for image in [i for i in images if i not in first and i.name in catalog.CLUSTER_IMAGES]:
        for node, names in agents.load_images(real, ctr, [image], _say, control_plane).items():
            imported.setdefault(node, []).extend(names)
        agents.raise_if_exiting(real)  # a kubelet that cannot start is named now, not after the imports
    mark("images loaded")
    routes.add_host_routes(real)
    api = cluster.api()
    agents.wait_ready(api, real, 120.0)
    mark("nodes Ready")
    kubeconfig = cluster.kubeconfig_path(node_lab.gateway)
    _apply(kubeconfig, COREDNS)
    _wait_available(api, "kube-system", "coredns", 120.0, real)
    mark("CoreDNS available")
    variables = _write_vars(name, kubeconfig, "real", [i for i in images if i.name not in catalog.CLUSTER_IMAGES])
    _record(name, {"proxy_mode": proxy_mode, "nodes_kind": "real", "timings": timings})
    _say(f"up in {time.monotonic() - t0:.1f}s; kubeconfig: {kubeconfig}")
    return {
        "nodes": node_status["nodes"],
        "vars_file": str(lab_home(name) / "vars.yml"),
        "proxy_mode": proxy_mode,
        "images_imported": imported,
        "timings": timings,
        **variables,
    }


def _apply(kubeconfig, manifest):
    proc = subprocess.run(
        [str(labbuild.kubectl_path()), "--kubeconfig", str(kubeconfig), "apply", "-f", str(manifest)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise LabError(f"kubectl apply -f {manifest.name} failed: {proc.stderr.strip()}")


def _wait_available(api, namespace, deployment, timeout, real):
    deadline = time.monotonic() + timeout
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
    while True:
        status = api.get_json(path).get("status", {})
        if status.get("availableReplicas", 0) >= 1:
            return
        if time.monotonic() > deadline:
            pods = api.get_json(f"/api/v1/namespaces/{namespace}/pods").get("items", [])
            why = "; ".join(
                f"{p['metadata']['name']} on {p['spec'].get('nodeName', '?')}: "
                + ", ".join(
                    (cs.get("state", {}).get("waiting") or {}).get("reason", "")
                    or (cs.get("state", {}).get("terminated") or {}).get("reason", "")
                    or ("ready" if cs.get("ready") else "not ready")
                    for cs in p.get("status", {}).get("containerStatuses", [])
                )
                for p in pods
            )
            raise LabError(f"{namespace}/{deployment} not available within {timeout:.0f}s: {why or 'no pods'}")
        time.sleep(1.0)


def down(name):
    node_lab = NodeLab(name)
    cluster = Cluster(lab_home(name) / "cluster")
    stopped = cluster.down()
    # before the network goes: its bridge going away would take the routes with it unsaid
    removed_routes = routes.remove_host_routes(node_lab.pod_prefix)
    removed = lab_nodes.down(node_lab)
    (lab_home(name) / STACK_FILE).unlink(missing_ok=True)
    return {"cluster": stopped, "containers": removed, "host_routes": removed_routes}


def status(name):
    node_lab = NodeLab(name)
    cluster = Cluster(lab_home(name) / "cluster")
    return {
        "cluster": cluster.status(),
        "nodes": lab_nodes.status(node_lab)["nodes"],
        **_recorded(name),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--lab", default="meshops-lab", help=f"which lab ({', '.join(lab_nodes.LABS)})")
    parser.add_argument(
        "--nodes", default="real", choices=("real", "kwok"), help="real Kubernetes nodes (default) or kwok's simulation"
    )
    parser.add_argument(
        "--samples",
        action="store_true",
        help="also build the samples' images (Bookinfo, nginx, tomcat); site.yml's images role loads them",
    )
    parser.add_argument(
        "--proxy-mode",
        default="iptables",
        help=f"kube-proxy mode ({', '.join(kubenode.PROXY_MODES)}; default iptables)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            result = up(args.lab, args.proxy_mode, args.nodes, args.samples)
        elif args.command == "down":
            result = down(args.lab)
        else:
            result = status(args.lab)
    except (LabError, LabNodesError) as error:
        print(f"lab.stack {args.command}: {error}", file=sys.stderr)
        if getattr(error, "log_tail", None):
            print(error.log_tail, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
