"""The whole lab in one step, for the main job and the end-to-end molecule scenario.

    python -m lab.stack up [--lab meshops-lab]     node containers, cluster, bundle, vars file
    python -m lab.stack down [--lab meshops-lab]   stop the cluster, remove the containers

``up`` starts the node containers (lab.nodes), the Kubernetes control plane built from Go
modules (lab.cluster) listening on the lab network's bridge address so that the containers
reach it, makes the release bundle istioctl installs from, and writes the variables the lab
inventory reads (istioctl_version, istioctl_archive_src, lab_kubeconfig) into
``<MESHOPS_HOME>/lab/<lab>/vars.yml``. Both are no-ops when there is nothing to do.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from lab.cluster.bundle import make_bundle
from lab.cluster.cluster import Lab as Cluster
from lab.cluster.cluster import nodes_from_inventory
from lab.cluster.errors import LabError
from lab.nodes import containers as lab_nodes
from lab.nodes.containers import Lab as NodeLab
from lab.nodes.containers import LabNodesError

REPO_ROOT = Path(__file__).resolve().parent.parent
LAB_INVENTORY = REPO_ROOT / "inventories" / "lab" / "hosts.yml"


def lab_home(name):
    home = Path(os.environ.get("MESHOPS_HOME", Path.home() / ".cache" / "meshops-istio"))
    return home / "lab" / name


def up(name):
    node_lab = NodeLab(name)
    node_status = lab_nodes.up(node_lab, list(lab_nodes.DEFAULT_NODES))
    cluster = Cluster(lab_home(name) / "cluster")
    cluster.up(nodes_from_inventory(LAB_INVENTORY), node_lab.gateway, 0, [], 180.0)
    bundle = make_bundle()
    variables = {
        "istioctl_version": bundle.version,
        "istioctl_archive_src": str(bundle.archive),
        "lab_kubeconfig": str(cluster.kubeconfig_path(node_lab.gateway)),
    }
    vars_file = lab_home(name) / "vars.yml"
    vars_file.write_text(yaml.safe_dump(variables, default_flow_style=False), encoding="utf-8")
    return {"nodes": node_status["nodes"], "vars_file": str(vars_file), **variables}


def down(name):
    cluster = Cluster(lab_home(name) / "cluster")
    stopped = cluster.down()
    removed = lab_nodes.down(NodeLab(name))
    return {"cluster": stopped, "containers": removed}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--lab", default="meshops-lab", help=f"which lab ({', '.join(lab_nodes.LABS)})")
    args = parser.parse_args(argv)
    try:
        result = up(args.lab) if args.command == "up" else down(args.lab)
    except (LabError, LabNodesError) as error:
        print(f"lab.stack {args.command}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
