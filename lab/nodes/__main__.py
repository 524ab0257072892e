"""Start and stop the lab's node containers.

    python -m lab.nodes up [--nodes cp1,w1,w2,ws1]   create the network and the nodes (no-op if up)
    python -m lab.nodes down                         remove exactly the nodes and network it made
    python -m lab.nodes status                       print the nodes and their addresses as JSON
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "localhost/meshops-node:bookworm"
NETWORK = "meshops-lab"
# A private subnet of our own for the lab network; the host keeps .1 (the bridge).
SUBNET = "10.89.77.0/24"
GATEWAY = "10.89.77.1"
LABEL = "io.meshops.lab=nodes"
DEFAULT_NODES = ("cp1", "w1", "w2", "ws1")


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


def up(nodes):
    if _podman("image", "exists", IMAGE, check=False).returncode != 0:
        raise LabNodesError(f"node image {IMAGE} is missing: run scripts/setup.sh node-image")
    if not _exists("network", NETWORK):
        _podman("network", "create", "--subnet", SUBNET, "--gateway", GATEWAY, "--label", LABEL, NETWORK)
    for node in nodes:
        if _exists("container", node):
            continue
        _podman(
            "run", "-d", "--name", node, "--hostname", node, "--label", LABEL,
            "--network", NETWORK, "--privileged", "--systemd", "always",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
            IMAGE, "/sbin/init",
        )  # fmt: skip
    _wait_for_systemd(nodes)
    return status()


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


def down():
    names = _podman("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}").stdout.split()
    if names:
        _podman("rm", "-f", "-t", "2", *names)
    if _exists("network", NETWORK):
        _podman("network", "rm", NETWORK)
    return names


def status():
    names = _podman("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}").stdout.split()
    nodes = {}
    for name in sorted(names):
        info = json.loads(_podman("inspect", name).stdout)[0]
        networks = info["NetworkSettings"].get("Networks") or {}
        nodes[name] = {
            "state": info["State"]["Status"],
            "address": (networks.get(NETWORK) or {}).get("IPAddress"),
        }
    return {"network": NETWORK, "gateway": GATEWAY, "nodes": nodes}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab.nodes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("--nodes", default=",".join(DEFAULT_NODES))
    sub.add_parser("down")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(json.dumps(up([n for n in args.nodes.split(",") if n]), indent=2))
        elif args.command == "down":
            print(json.dumps({"removed": down()}))
        else:
            print(json.dumps(status(), indent=2))
    except LabNodesError as error:
        print(f"lab.nodes: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
