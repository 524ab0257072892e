"""Benchmarks of the nftables reader and tracer (kube-proxy's nftables mode). Prints figures.

    python benchmarks/nftables_engine.py           # 10k services (3 endpoints each)
    python benchmarks/nftables_engine.py --quick   # 1k services (smoke run)
    python benchmarks/nftables_engine.py --services 5000

Figures:
* read: ``nft -j list table ip kube-proxy`` of a real network namespace holding kube-proxy's table
  for N services, alone, against the audit's read (the same command through the namespace
  reader and the runner network_audit_info gives it, ``module_runner`` of a real AnsibleModule)
  plus parsing and the services summary (target <= 2x, as for iptables); wall clock, and CPU
  time of nft and of this process (the load-independent figure), with the load average;
* trace: one NodePort trace through that table, cold (first trace: map indexes built) and warm
  (target <= 5 ms). Needs root and nft (the table lives in a namespace this run creates).
"""

import argparse
import importlib
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
importlib.import_module("conftest")  # installs the collection finder for ansible_collections.*

from ansible.module_utils import basic

from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import (
    Reader,
    in_netns,
    module_runner,
    module_which,
)
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
    """Best wall clock of ``repeat`` rounds, best CPU time as (this process, its children), result.

    CPU time is the figure that holds on a busy machine; wall clock is what a user waits."""
    walls, cpus, result = [], [], None
    for _round in range(repeat):
        own, child = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = func()
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((time.process_time() - own, (after.ru_utime - child.ru_utime) + (after.ru_stime - child.ru_stime)))
    return min(walls), min(cpus, key=sum), result


def ansible_module():
    """A real AnsibleModule, as network_audit_info has: its runner is the one the audit uses."""
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core before 2.19
        basic._ANSIBLE_ARGS = b'{"ANSIBLE_MODULE_ARGS": {}}'
        return basic.AnsibleModule(argument_spec={})
    with patch_module_args({"_ansible_remote_tmp": "/tmp", "_ansible_keep_remote_files": False}):
        return basic.AnsibleModule(argument_spec={})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k services only")
    parser.add_argument("--services", type=int, help="this many services (default 10k, 1k with --quick)")
    args = parser.parse_args(argv)
    count = args.services or (1_000 if args.quick else 10_000)
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
        repeat = 3 if count <= 3_000 else 1  # nft lists a 10k-service table in minutes on a busy machine
        print(f"  load average before the reads: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")

        def nft_alone():
            return subprocess.run(
                ["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", "kube-proxy"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        alone, alone_cpu, out = best(nft_alone, repeat)
        print(
            f"  nft -j list table ip kube-proxy alone (ip netns exec): {alone * 1000:8.1f} ms, {len(out) / 1e6:.1f} MB"
        )
        module = ansible_module()
        reader = Reader(module_runner(module), module_which(module), timeout=900)

        def audit_read():
            entry = in_netns(path, read_nft, reader)
            ruleset = parse_json(entry["text"], source="bench")
            return ruleset, kube_proxy_nft_summary(ruleset)

        ours, (own, child), (ruleset, summary) = best(audit_read, repeat)
        table = kube_proxy_table(ruleset)
        print(
            f"  read + parse + summary ({len(summary)} services, {table.rule_count()} rules): {ours * 1000:8.1f} ms "
            f"-> {ours / alone:.2f}x (target <= 2x)"
        )
        print(
            f"  CPU time: nft alone {sum(alone_cpu) * 1000:.0f} ms; read + parse + summary "
            f"{(own + child) * 1000:.0f} ms (Python {own * 1000:.0f} ms + nft {child * 1000:.0f} ms) "
            f"-> {(own + child) / sum(alone_cpu):.2f}x; "
            f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
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
        cold, _cpu, result = best(lambda: tracer.trace(packet), 1)
        warm, _cpu, result = best(lambda: tracer.trace(packet), 20)
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
