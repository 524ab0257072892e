"""Benchmarks of the nftables reader and tracer (kube-proxy's nftables mode). Prints figures.

    python benchmarks/nftables_engine.py           # 10k services (3 endpoints each)
    python benchmarks/nftables_engine.py --quick   # 1k services (smoke run)

Figures:
* read: ``nft -j list table ip kube-proxy`` of a real network namespace holding kube-proxy's table
  for N services, alone, against the audit's read (the same command through the namespace
  reader) plus parsing and the services summary (target <= 2x, as for iptables);
* trace: one NodePort trace through that table, cold (first trace: map indexes built) and warm
  (target <= 5 ms). Needs root and nft (the table lives in a namespace this run creates).
"""

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
importlib.import_module("conftest")  # installs the collection finder for ansible_collections.*

from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import Reader, in_netns
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.kube_proxy_modes import read_nft
from ansible_collections.meshops.istio.plugins.module_utils.nftables.kube_proxy import (
    kube_proxy_nft_summary,
    kube_proxy_table,
)
from ansible_collections.meshops.istio.plugins.module_utils.nftables.ruleset import parse_json
from ansible_collections.meshops.istio.plugins.module_utils.nftables.tracer import NftTracer
from tests.rulegen.kube_proxy_nft import kube_proxy_nft_rules, synthetic_services

NODE_IP = "10.203.0.2"


def best(func, repeat):
    times, result = [], None
    for _round in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k services only")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 10_000
    if os.geteuid() != 0 or shutil.which("nft") is None:
        print("skipped: needs root and nft (bindep.txt: nftables)")
        return 0
    services = synthetic_services(count, endpoints_per_service=3)
    text = kube_proxy_nft_rules(services, node_ips=(NODE_IP,))
    ns = f"mo-nftbench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        start = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True)
        print(
            f"== kube-proxy nftables table, {count} services x 3 endpoints: loaded in "
            f"{time.perf_counter() - start:.1f} s"
        )
        path = f"/run/netns/{ns}"
        repeat = 3 if args.quick else 1  # nft lists a 10k-service table in minutes on a busy machine
        alone, out = best(
            lambda: (
                subprocess.run(
                    ["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", "kube-proxy"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            ),
            repeat,
        )
        print(
            f"  nft -j list table ip kube-proxy alone (ip netns exec): {alone * 1000:8.1f} ms, {len(out) / 1e6:.1f} MB"
        )

        def audit_read():
            entry = in_netns(path, read_nft, Reader(timeout=900))
            ruleset = parse_json(entry["text"], source="bench")
            return ruleset, kube_proxy_nft_summary(ruleset)

        ours, (ruleset, summary) = best(audit_read, repeat)
        table = kube_proxy_table(ruleset)
        print(
            f"  read + parse + summary ({len(summary)} services, {table.rule_count()} rules): {ours * 1000:8.1f} ms "
            f"-> {ours / alone:.2f}x (target <= 2x)"
        )
        node_port = next(s["node_port"] for s in reversed(services) if s.get("node_port"))
        packet = {
            "name": "np",
            "hook": "prerouting",
            "protocol": "tcp",
            "src": "192.0.2.50",
            "dst": NODE_IP,
            "dport": node_port,
        }
        tracer = NftTracer(table, local_addresses=[NODE_IP])
        cold, result = best(lambda: tracer.trace(packet), 1)
        warm, result = best(lambda: tracer.trace(packet), 20)
        assert len(result["branches"]) == 3, result["verdict"]
        print(
            f"  one NodePort trace: cold {cold * 1000:.2f} ms (map indexes built), warm {warm * 1000:.3f} ms "
            "(target <= 5 ms)"
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
