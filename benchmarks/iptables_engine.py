"""Benchmarks of the iptables engine (plugins/module_utils/iptables). Prints figures; asserts nothing.

    python benchmarks/iptables_engine.py           # 1k, 10k, 100k rules; namespace comparison at 10k and 100k
    python benchmarks/iptables_engine.py --quick   # 1k and 10k rules; namespace comparison at 1k (smoke run)

Figures (targets from issue 3):
* parse rate of kube-proxy node rulesets (services with 3 endpoints) and of sidecar rulesets,
  target >= 200k rules/s;
* one NodePort trace through the largest ruleset after parsing, cold (first trace: chain index
  built, rules compiled) and warm, target <= 5 ms;
* read + parse + audit of a real network namespace (iptables-nft-save run by the engine) against
  iptables-nft-save alone on the same namespace, target <= 2x. Needs root; skipped otherwise.
* iptables_info on a saved 200k-rule kube-proxy dump (20k with --quick): time and JSON size of the
  module's result with every rule, the first 1000 (max_rules) and detail=summary (issue 18: 200k
  rules took 55 s and returned 85 MB). The module runs as Ansible runs it on a node (its own
  process, exit_json), so the figures hold everything the node does, not the controller's part.
"""

import argparse
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
importlib.import_module("conftest")  # installs the collection finder for ansible_collections.*

from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.module_support import short_lived_process
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import read_rules
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer
from tests.rulegen.istio_capture_rules import (
    istio_capture_rules,
)
from tests.rulegen.kube_proxy_rules import (
    kube_proxy_rules,
    rule_count,
    synthetic_services,
)

NODE_IP = "10.203.0.2"


def services_for(target_rules, endpoints=3):
    low, high = 1, max(2, target_rules)
    while low < high:  # smallest service count reaching the target
        mid = (low + high) // 2
        if rule_count(synthetic_services(mid, endpoints)) >= target_rules:
            high = mid
        else:
            low = mid + 1
    return synthetic_services(low, endpoints)


def best_of(func, repeat, clock=time.perf_counter):
    times = []
    result = None
    for _round in range(repeat):
        start = clock()
        result = func()
        times.append(clock() - start)
    return min(times), statistics.median(times), result


def bench_parse(sizes):
    print("== parse (kube-proxy node rulesets, 3 endpoints per service; CPU time of this process)")
    rulesets = {}
    for size in sizes:
        services = services_for(size)
        text = kube_proxy_rules(services)
        repeat = 5 if size <= 10_000 else 3
        best, median, ruleset = best_of(
            lambda text=text: parse_dump(text, source="bench", family="ipv4"), repeat, time.process_time
        )
        count = ruleset.rule_count()
        print(
            f"  {count:>7} rules ({len(services)} services): best {best * 1000:8.1f} ms  "
            f"median {median * 1000:8.1f} ms  -> {count / best:>9,.0f} rules/s (target >= 200,000)"
        )
        eager, _median, full = best_of(
            lambda text=text: parse_dump(text, source="bench", family="ipv4", lazy=False), 2, time.process_time
        )
        print(
            f"  {'':>7} eager (every match parsed and checked now): {eager * 1000:8.1f} ms -> "
            f"{full.rule_count() / eager:>9,.0f} rules/s"
        )
        rulesets[size] = (services, ruleset, text)
    sidecar = istio_capture_rules(dns_capture=True, exclude_outbound_ports=[3306])
    per = parse_dump(sidecar).rule_count()
    best, _median, _r = best_of(
        lambda: [parse_dump(sidecar, family="ipv4") for _copy in range(500)], 3, time.process_time
    )
    print(
        f"  sidecar ruleset ({per} rules) x500: {best * 1000:.1f} ms -> {per * 500 / best:,.0f} rules/s, "
        f"{best / 500 * 1e6:.0f} us per sidecar dump"
    )
    return rulesets


def bench_trace(services, ruleset):
    node_port = next(s["node_port"] for s in reversed(services) if s.get("node_port"))
    packet = {
        "name": "nodeport",
        "hook": "prerouting",
        "protocol": "tcp",
        "src": "192.0.2.50",
        "dst": NODE_IP,
        "dport": node_port,
        "in_interface": "eth0",
    }
    tracer = Tracer(ruleset, local_addresses=[NODE_IP])
    start = time.perf_counter()
    first = tracer.trace(packet)
    cold = time.perf_counter() - start
    times = []
    for _round in range(200):
        start = time.perf_counter()
        tracer.trace(packet)
        times.append(time.perf_counter() - start)
    print(
        f"== one NodePort trace through {ruleset.rule_count()} rules (port {node_port}, "
        f"{len(first['branches'])} branches)"
    )
    print(f"  cold (builds the KUBE-SERVICES/KUBE-NODEPORTS index): {cold * 1000:.2f} ms")
    print(f"  warm: median {statistics.median(times) * 1000:.3f} ms, max {max(times) * 1000:.3f} ms (target <= 5 ms)")
    cluster = services[len(services) // 2]
    packet = {
        "name": "clusterip",
        "hook": "prerouting",
        "src": "10.244.0.9",
        "dst": cluster["cluster_ip"],
        "dport": cluster["port"],
        "in_interface": "cni0",
    }
    times = []
    for _round in range(200):
        start = time.perf_counter()
        tracer.trace(packet)
        times.append(time.perf_counter() - start)
    print(f"  ClusterIP trace, warm: median {statistics.median(times) * 1000:.3f} ms")


def _run(argv, input_text=None):
    return subprocess.run(
        argv, input=input_text, capture_output=True, text=True, check=True, env=dict(os.environ, LANG="C", LC_ALL="C")
    )


def bench_namespace(size, text, repeat):
    if os.geteuid() != 0 or not shutil.which("iptables-nft-save") or not shutil.which("nsenter"):
        print(f"== namespace read at {size}: skipped (needs root, iptables-nft and nsenter)")
        return
    ns = f"mo-bench-{uuid.uuid4().hex[:6]}"
    _run(["ip", "netns", "add", ns])
    try:
        start = time.perf_counter()
        _run(["nsenter", f"--net=/run/netns/{ns}", "--", "iptables-nft-restore"], input_text=text)
        load = time.perf_counter() - start
        save_argv = ["nsenter", f"--net=/run/netns/{ns}", "--", shutil.which("iptables-nft-save"), "-c"]
        save_best, save_median, _out = best_of(lambda: _run(save_argv), repeat)

        def engine():
            # As the sidecar_iptables_audit module runs it (no cyclic GC over the rule objects).
            with short_lived_process():
                read = read_rules(netns=ns, backend="nft", families=("ipv4",), local_addresses=False)
                return audit(read.rulesets["ipv4"], local_addresses=[NODE_IP])

        eng_best, eng_median, result = best_of(engine, repeat)

        def cpu_of(func):
            """CPU seconds of this process and of its children while func runs (load-independent)."""
            own, child = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
            func()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            children = (after.ru_utime - child.ru_utime) + (after.ru_stime - child.ru_stime)
            return time.process_time() - own, children

        save_cpu = min(sum(cpu_of(lambda: _run(save_argv))) for _round in range(repeat))
        eng_own, eng_child = min((cpu_of(engine) for _round in range(repeat)), key=sum)

        def engine_auto():
            with short_lived_process():
                read = read_rules(netns=ns)
                return audit(read.rulesets["ipv4"], local_addresses=read.local_addresses)

        auto_best, _auto_median, _r = best_of(engine_auto, repeat)
        rules = sum(len(s["endpoints"]) for s in result["kube_proxy"] or [])
        print(
            f"== real namespace with {size} rules (iptables-nft-restore took {load:.2f} s; "
            f"{len(result['kube_proxy'])} services, {rules} endpoints found by the audit)"
        )
        print(f"  iptables-nft-save -c alone: best {save_best * 1000:.1f} ms, median {save_median * 1000:.1f} ms")
        print(
            f"  engine read+parse+audit (nft, IPv4): best {eng_best * 1000:.1f} ms, median {eng_median * 1000:.1f} ms"
            f" -> ratio {eng_best / save_best:.2f}x (target <= 2x)"
        )
        print(
            f"  CPU time: iptables-nft-save {save_cpu * 1000:.0f} ms; engine {(eng_own + eng_child) * 1000:.0f} ms "
            f"(Python {eng_own * 1000:.0f} ms + iptables-nft-save {eng_child * 1000:.0f} ms) -> ratio "
            f"{(eng_own + eng_child) / save_cpu:.2f}x"
        )
        print(
            f"  engine with backend=auto (nft+legacy, IPv4+IPv6, ip address): best {auto_best * 1000:.1f} ms "
            f"-> ratio {auto_best / save_best:.2f}x"
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def bench_info(size):
    """iptables_info's module process on a saved dump: wall time and bytes of its JSON result."""
    services = services_for(size)
    with tempfile.TemporaryDirectory(prefix="mo-bench-info-") as tmp:
        dump = os.path.join(tmp, "rules.save")
        with open(dump, "w", encoding="utf-8") as handle:
            handle.write(kube_proxy_rules(services))
        module = os.path.join(REPO, "plugins", "modules", "iptables_info.py")
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "collections"))
        print(f"== iptables_info on a saved kube-proxy dump ({len(services)} services; the module's own process)")
        for label, extra in (
            ("every rule (detail=rules)", {}),
            ("max_rules=1000", {"max_rules": 1000}),
            ("detail=summary", {"detail": "summary"}),
        ):
            args = os.path.join(tmp, "args.json")
            with open(args, "w", encoding="utf-8") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": dict({"src": dump}, **extra)}, handle)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, module, args], capture_output=True, env=env, check=True, cwd=tmp)
            elapsed = time.perf_counter() - start
            result = json.loads(proc.stdout)
            figures = result["size"]
            print(
                f"  {label:<26} {elapsed:6.1f} s  {len(proc.stdout) / 1e6:7.2f} MB of JSON  "
                f"({figures['rules_returned']} of {figures['rules']} rules returned; full list "
                f"{'about ' if figures['full_json_bytes_estimated'] else ''}{figures['full_json_bytes'] / 1e6:.1f} MB)"
            )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke run, a few seconds)")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are noisy when it is high)")
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    rulesets = bench_parse(sizes)
    services, ruleset, _text = rulesets[sizes[-1]]
    bench_trace(services, ruleset)
    for size in [1_000] if args.quick else [10_000, 100_000]:
        bench_namespace(size, rulesets[size][2], 3 if size < 100_000 else 2)
    bench_info(20_000 if args.quick else 200_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
