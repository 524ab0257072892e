#!/usr/bin/env python3
"""Benchmarks of the lab of real Kubernetes nodes (lab/stack.py). Prints figures; asserts nothing.

    python benchmarks/lab_nodes.py           # images: cold build (throw-away cache) and cached;
                                             # then `up` (to three Ready nodes and to CoreDNS
                                             # available) / up again / down, twice; CPU and memory
                                             # of the idle lab over 30 s
    python benchmarks/lab_nodes.py --quick   # cached image build; idle CPU and memory of a lab
                                             # that is already up (none is started)

The builds of kubelet, kube-proxy, containerd, CoreDNS and Istio's binaries are measured by
benchmarks/lab_build.py (they are lab components like the control plane). Runs against the lab
``meshops-test`` (its own network and pod CIDRs), never the main job's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab import stack
from lab.cluster import procs
from lab.images import catalog
from lab.nodes.containers import KUBE_NODES, podman_cmd

LAB = "meshops-test"
TICKS = os.sysconf("SC_CLK_TCK")


def images_figures(cold: bool) -> None:
    t = time.monotonic()
    built = catalog.build_all(echo=False)
    print(f"{'images, cached':34} {time.monotonic() - t:8.2f} s   ({len(built)} images)")
    if not cold:
        return
    with tempfile.TemporaryDirectory(prefix="lab-images-bench-") as home:
        os.environ["MESHOPS_LAB_IMAGES"] = home  # the binaries still come from the build cache
        try:
            t = time.monotonic()
            built = catalog.build_all(echo=False)
            parts = " ".join(f"{b.name.rsplit('/', 1)[-1]}={b.seconds:.0f}s" for b in built)
            print(f"{'images, cold (Debian root too)':34} {time.monotonic() - t:8.1f} s   ({parts})")
        finally:
            del os.environ["MESHOPS_LAB_IMAGES"]


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _node_pids(container: str) -> list[int]:
    out = subprocess.run([*podman_cmd(), "top", container, "hpid"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()[1:] if x.isdigit()]


def idle_figures(seconds: float = 30.0) -> None:
    state = stack.Cluster(stack.lab_home(LAB) / "cluster").load()
    if not state:
        print(f"idle lab: {LAB} is not up (run without --quick, or python -m lab.stack up --lab {LAB})")
        return
    groups = {p.name: [p.pid] for p in (procs.Proc.from_json(x) for x in state["procs"])}
    for node in KUBE_NODES:
        groups[f"node {node}"] = _node_pids(f"{LAB}-{node}")
    before = {g: sum(_cpu_ticks(p) for p in pids) for g, pids in groups.items()}
    time.sleep(seconds)
    total_cpu = total_rss = 0.0
    for group, pids in groups.items():
        cpu = (sum(_cpu_ticks(p) for p in pids) - before[group]) / TICKS / seconds * 100
        rss = sum(_rss_kib(p) for p in pids) / 1024
        total_cpu += cpu
        total_rss += rss
        print(f"  {group:30} {cpu:6.1f} % CPU  {rss:7.0f} MiB RSS")
    print(f"{'idle lab, all of it':34} {total_cpu:6.1f} % of one core, {total_rss:.0f} MiB RSS (over {seconds:.0f} s)")


def up_rounds(rounds: int) -> None:
    stack.down(LAB)
    for i in range(rounds):
        t = time.monotonic()
        result = stack.up(LAB)
        t_up = time.monotonic() - t
        t = time.monotonic()
        stack.up(LAB)
        t_again = time.monotonic() - t
        timings = ", ".join(f"{k} {v:.0f}" for k, v in result["timings"].items())
        if i < rounds - 1:
            t = time.monotonic()
            stack.down(LAB)
            t_down = f"{time.monotonic() - t:6.1f} s"
        else:
            t_down = "(kept up)"
        print(f"up / up again / down #{i + 1:<10} {t_up:8.1f} s  {t_again:6.1f} s  {t_down}   [{timings}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    images_figures(cold=not args.quick)
    if not args.quick:
        up_rounds(2)
    idle_figures(10.0 if args.quick else 30.0)
    if not args.quick:
        stack.down(LAB)
    print(json.dumps({"lab": LAB}))


if __name__ == "__main__":
    main()
