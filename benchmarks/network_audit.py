#!/usr/bin/env python3
"""Benchmark the per-node network audit against the seed's manual method done by a script.

Real parts only: lab pods (network namespaces, nginx, Envoy as uid 1337, capture rules) on this
host, the audit's own module_utils, and ansible-playbook for the Ansible figures.

Figures, for 1, 10 and 50 sidecar pods on one node:
  * baseline  - the bare listing loop: for each pod ``nsenter --net=<ns> iptables -t nat -nvL``
  * node-side - run_audit(): discovery from /proc, dumps of both backends for every pod and the
                node, judgement by the engine (what network_audit_info does on the node)
  * ansible   - ansible-playbook with the module against the same node; the fixed start-up cost
                (the same playbook auditing zero pods) is reported apart
and, without --quick, 10 nodes (10 lab node namespaces, 5 pods each, forks=10) against 1 node.

Usage: sudo python benchmarks/network_audit.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.meshops.istio.plugins.module_utils.network_audit.audit import run_audit
from lab.pods import PodLab


def median_time(func, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_loop(lab):
    for pod in lab.pods.values():
        subprocess.run(
            ["nsenter", f"--net={pod.netns_path}", "iptables", "-t", "nat", "-nvL"],
            check=True,
            capture_output=True,
        )


def audit_options(labs):
    lab = labs[0]
    return {
        "node_netns": lab.node_netns_path,
        "netns_include": [p.netns_path for p in lab.pods.values()],
        "runtime_lookup": False,
    }


def write_inventory(directory, labs, include_nothing=False):
    hosts = {}
    for i, lab in enumerate(labs):
        hosts[f"node{i + 1}"] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "network_audit_node_netns": lab.node_netns_path,
            "network_audit_netns_include": (
                ["/nonexistent"] if include_nothing else [p.netns_path for p in lab.pods.values()]
            ),
        }
    inventory = {
        "all": {
            "children": {"k8s_cluster": {"children": {"control_plane": {"hosts": hosts}, "workers": {"hosts": {}}}}}
        }
    }
    path = Path(directory) / "hosts.json"
    path.write_text(json.dumps(inventory))
    return path


def ansible_run(directory, labs, include_nothing=False):
    inventory = write_inventory(directory, labs, include_nothing)
    playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or "ansible-playbook"
    env = dict(os.environ, ANSIBLE_FORKS=str(max(10, len(labs))))
    start = time.perf_counter()
    subprocess.run(
        [
            playbook,
            "-i",
            str(inventory),
            "playbooks/audit.yml",
            "-e",
            f"network_audit_report_dir={directory}/reports",
            "-e",
            "network_audit_fail_on=none",
            "-e",
            "network_audit_runtime_lookup=false",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - start


def make_lab(pods, node_index=1):
    lab = PodLab(node_index=node_index)
    start = time.perf_counter()
    if pods:
        lab.add_pods([{"name": f"p{i:02d}", "labels": {"app": "web"}} for i in range(pods)])
    return lab, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 10 pods, fewer repeats, no 10-node run")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/network_audit.py needs root (network namespaces, iptables)")
    sizes = [1, 10] if args.quick else [1, 10, 50]
    repeat = 3 if args.quick else 7
    rows = []
    tmp = tempfile.mkdtemp(prefix="na-bench-")
    try:
        for n in sizes:
            lab, up = make_lab(n)
            try:
                opts = audit_options([lab])
                run_audit(opts)  # warm caches (imports, binaries)
                # Interleaved, so that both see the same load on a shared machine.
                pairs = [
                    (median_time(lambda lab=lab: bare_loop(lab), 1), median_time(lambda opts=opts: run_audit(opts), 1))
                    for _ in range(repeat)
                ]
                baseline = statistics.median(b for b, _a in pairs)
                node_side = statistics.median(a for _b, a in pairs)
                report, _ = run_audit(opts)
                assert report["summary"]["sidecar_pods"] == n, report["summary"]
                # --quick: Ansible only for the largest size (it dominates the smoke run's time).
                runs = 0 if args.quick and n != sizes[-1] else (1 if args.quick else 3)
                timed = [(ansible_run(tmp, [lab]), ansible_run(tmp, [lab], include_nothing=True)) for _ in range(runs)]
                ansible = statistics.median(t for t, _f in timed) if timed else float("nan")
                fixed = statistics.median(f for _t, f in timed) if timed else float("nan")
                start = time.perf_counter()
                lab.close()
                down = time.perf_counter() - start
            finally:
                lab.close()
            rows.append(
                {
                    "pods": n,
                    "baseline_s": baseline,
                    "node_side_s": node_side,
                    "ratio": node_side / baseline,
                    "ansible_s": ansible,
                    "ansible_fixed_s": fixed,
                    "ansible_minus_fixed_s": ansible - fixed,
                    "lab_up_s": up,
                    "lab_down_s": down,
                    "phases": report["timings"],
                }
            )
        print(
            f"{'pods':>5} {'bare loop':>10} {'node-side':>10} {'ratio':>6} {'ansible':>8} {'- fixed':>8}"
            f" {'lab up':>7} {'lab down':>8}"
        )

        def secs(value):
            return "-" if value != value else f"{value:.2f}s"  # NaN: not measured (--quick)

        for r in rows:
            print(
                f"{r['pods']:>5} {r['baseline_s'] * 1000:>8.1f}ms {r['node_side_s'] * 1000:>8.1f}ms"
                f" {r['ratio']:>6.2f} {secs(r['ansible_s']):>8} {secs(r['ansible_minus_fixed_s']):>8}"
                f" {r['lab_up_s']:>6.2f}s {r['lab_down_s']:>7.2f}s"
            )
        print(
            "ansible fixed start-up cost (same playbook, zero pods): "
            + ", ".join(secs(r["ansible_fixed_s"]) for r in rows)
        )
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if len(rows) >= 2:
            a, b = rows[-2], rows[-1]
            per_pod_audit = (b["node_side_s"] - a["node_side_s"]) / (b["pods"] - a["pods"])
            per_pod_loop = (b["baseline_s"] - a["baseline_s"]) / (b["pods"] - a["pods"])
            print(
                f"per extra pod: node-side {per_pod_audit * 1000:.2f} ms, bare loop {per_pod_loop * 1000:.2f} ms"
                f" (ratio {per_pod_audit / per_pod_loop:.2f}; target <= 2)"
            )
            print(f"{b['pods']} pods: node-side / bare loop = {b['ratio']:.2f} (target <= 2)")
        result = {"single_node": rows}
        if not args.quick:
            labs = []
            try:
                for i in range(10):
                    labs.append(make_lab(5, node_index=i + 1)[0])
                timed = [(ansible_run(tmp, labs[:1]), ansible_run(tmp, labs)) for _ in range(3)]
                one = statistics.median(o for o, _t in timed)
                ten = statistics.median(t for _o, t in timed)
            finally:
                for lab in labs:
                    lab.close()
            print(
                f"ansible across nodes (5 pods each, forks=10): 1 node {one:.2f} s, 10 nodes {ten:.2f} s"
                f" (ratio {ten / one:.2f})"
            )
            result["nodes"] = {"one_node_s": one, "ten_nodes_s": ten}
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
