"""Routes to the pod CIDRs of a lab's nodes: on the host (where the API server runs) and in each
node container (to the other nodes' pods).

The host's routes are the one thing the lab adds outside its containers. They are tagged with
their own routing protocol number (``PROTO``), so ``down`` removes exactly them, those of an
earlier lab that was killed included, and nothing a user added.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

from lab.cluster.errors import LabError

PROTO = "177"  # rtnetlink protocol number of the lab's host routes (unassigned in rt_protos)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}", component="routes")
    return proc


def host_routes() -> list[dict]:
    return json.loads(_ip("-j", "route", "show").stdout or "[]")


def check_free(cidrs: list[str]) -> None:
    """Refuse (before anything starts) a pod CIDR the host already routes somewhere else."""
    wanted = [ipaddress.ip_network(c) for c in cidrs]
    for route in host_routes():
        dst = route.get("dst", "")
        if dst == "default" or str(route.get("protocol")) in (PROTO, "177"):
            continue
        try:
            net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        clash = next((w for w in wanted if w.overlaps(net)), None)
        if clash:
            raise LabError(
                f"the host already routes {dst} (dev {route.get('dev')}), which overlaps the lab's pod CIDR "
                f"{clash}; remove that route or choose another lab (--lab)",
                component="routes",
            )


def add_host_routes(nodes) -> list[str]:
    """``ip route replace <pod cidr> via <node address> proto PROTO`` for each node."""
    added = []
    for n in nodes:
        _ip("route", "replace", n.pod_cidr, "via", n.address, "proto", PROTO)
        added.append(f"{n.pod_cidr} via {n.address}")
    return added


def remove_host_routes(pod_prefix: str) -> list[str]:
    """Remove the lab's routes to ``<pod_prefix>.0.0/16`` (only those tagged PROTO)."""
    scope = ipaddress.ip_network(f"{pod_prefix}.0.0/16")
    removed = []
    for route in host_routes():
        if str(route.get("protocol")) != PROTO:
            continue
        dst = route.get("dst", "")
        try:
            if not ipaddress.ip_network(dst, strict=False).subnet_of(scope):
                continue
        except (ValueError, TypeError):
            continue
        if _ip("route", "del", dst, "proto", PROTO, check=False).returncode == 0:
            removed.append(dst)
    return removed


def node_routes_script(node, nodes) -> list[str]:
    """argv lists that route the other nodes' pod CIDRs inside ``node``."""
    return [["ip", "route", "replace", o.pod_cidr, "via", o.address] for o in nodes if o.name != node.name]
