#!/usr/bin/env python3
"""The whole tutorial on the lab of real nodes, timed (prints figures; asserts nothing):

1. ``lab.stack up --samples`` of ``meshops-mesh`` from nothing (images from the cache);
2. site.yml: first run and second (no-op) run, the time spent in each role
   (ansible.posix.profile_roles);
3. the control plane against the peer a user would pick instead, both run on cp1 (the
   istio_controller) with the same demo profile and the lab's overlay: ``istioctl install -y``
   versus the istio_control_plane role, each from an uninstalled control plane to Deployments
   Available, then each run again on the installed one;
4. CPU and resident memory of the running mesh (every process of each node container, 30 s).

    python benchmarks/real_mesh.py            # all of it (about 20 minutes on the 2-core VM)
    python benchmarks/real_mesh.py --keep     # leave the lab up afterwards
    python benchmarks/real_mesh.py --quick    # only 4., of a meshops-mesh lab already up (none
                                              # is started: the whole run takes too long for CI)
    python benchmarks/real_mesh.py --control-plane   # only 3., of a meshops-mesh lab after site.yml

Takes down a ``meshops-mesh`` lab left up, and its own at the end. The issue's goals: the role's
first install within 1.2x istioctl's, its re-run no slower than istioctl's re-run.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab import stack
from lab.nodes.containers import podman_cmd

LAB = "meshops-mesh"
ROLE_LINE = re.compile(r"^(?P<role>[\w.]+) -+ (?P<seconds>[\d.]+)s$")
NODES = ("cp1", "w1", "w2")
KUBECONFIG_IN_CP1 = "/etc/meshops-lab/kubeconfig"
AGAIN = 5  # re-runs of each, for their median: one re-run takes about 2 s and varies by a third


def env():
    return dict(
        os.environ,
        MESHOPS_LAB=LAB,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        CONTAINERS_CONF=str(REPO / "lab" / "podman" / "containers.conf"),
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_roles",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )


def run(*args, stdin=None):
    start = time.monotonic()
    result = subprocess.run(args, cwd=REPO, env=env(), input=stdin, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    print(f"[{seconds:6.1f} s] {' '.join(args)[:120]}", file=sys.stderr, flush=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-2000:]}")
    return seconds, result.stdout


def playbook(path, *extra):
    seconds, output = run("ansible-playbook", "-i", "inventories/lab/hosts.yml", path, *extra)
    roles = {m["role"]: float(m["seconds"]) for m in map(ROLE_LINE.match, output.splitlines()) if m}
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))
    return seconds, roles, changed


def in_cp1(*argv, stdin=None):
    return run(*podman_cmd(), "exec", "-i", f"{LAB}-cp1", *argv, stdin=stdin)


def istio_operator():
    """The demo profile with the lab inventory's overlay: what the role installs."""
    lab_vars = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all" / "lab.yml").read_text())
    operator = lab_vars["istio_control_plane_overlay"]
    operator["spec"]["profile"] = "demo"
    return yaml.safe_dump(operator)


def wait_available():
    """From the host, with the lab's kubeconfig (the node containers have no kubectl)."""
    kubeconfig = yaml.safe_load((stack.lab_home(LAB) / "vars.yml").read_text())["lab_kubeconfig"]
    run(
        "kubectl",
        "--kubeconfig",
        kubeconfig,
        "-n",
        "istio-system",
        "wait",
        "--for=condition=Available",
        "deployment",
        "--all",
        "--timeout=600s",
    )


def uninstall():
    playbook("playbooks/control_plane.yml", "-e", "istio_control_plane_state=absent")


def control_plane_figures():
    in_cp1("sh", "-c", "cat > /tmp/meshops-bench-operator.yaml", stdin=istio_operator())
    istioctl = [
        "istioctl",
        "install",
        "-y",
        "--kubeconfig",
        KUBECONFIG_IN_CP1,
        "-f",
        "/tmp/meshops-bench-operator.yaml",
    ]
    figures = {}
    uninstall()
    seconds, _ = in_cp1(*istioctl)  # waits for the components' readiness itself
    start = time.monotonic()
    wait_available()
    figures["istioctl install -y, first"] = seconds + time.monotonic() - start
    figures[f"istioctl install -y, again (median of {AGAIN})"] = statistics.median(
        in_cp1(*istioctl)[0] for _ in range(AGAIN)
    )
    uninstall()
    seconds, roles, changed = playbook("playbooks/control_plane.yml")
    figures[f"ansible-playbook control_plane.yml, first (changed={changed})"] = seconds
    figures["  of which the role's tasks, first"] = roles.get("istio_control_plane", 0.0)
    again = [playbook("playbooks/control_plane.yml") for _ in range(AGAIN)]
    changed = max(run[2] for run in again)
    figures[f"ansible-playbook control_plane.yml, again (median of {AGAIN}, changed={changed})"] = statistics.median(
        run[0] for run in again
    )
    figures["  of which the role's tasks, again"] = statistics.median(
        run[1].get("istio_control_plane", 0.0) for run in again
    )
    return figures


def container_cgroup(node):
    """The node container's own cgroup (cgroup v1: its processes, its pods' included, are below)."""
    pid = subprocess.run(
        [*podman_cmd(), "inspect", "--format", "{{.State.Pid}}", f"{LAB}-{node}"],
        capture_output=True,
        text=True,
        check=True,
        env=env(),
    ).stdout.strip()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return path.removesuffix("/init.scope")
    raise SystemExit(f"no cpuacct cgroup for {LAB}-{node}")


def node_usage(seconds=30.0):
    """CPU (share of one core) and resident memory (total_rss of memory.stat) of each node
    container's cgroup: the node's agents and every pod on it."""
    groups = {node: container_cgroup(node) for node in NODES}

    def cpu_ns(path):
        return int(Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage").read_text())

    before = {node: cpu_ns(path) for node, path in groups.items()}
    time.sleep(seconds)
    usage = {}
    for node, path in groups.items():
        stat = dict(line.split() for line in Path(f"/sys/fs/cgroup/memory{path}/memory.stat").read_text().splitlines())
        usage[node] = ((cpu_ns(path) - before[node]) / 1e9 / seconds, int(stat["total_rss"]))
    return usage


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the lab up")
    parser.add_argument("--quick", action="store_true", help="only the usage of a lab already up")
    parser.add_argument(
        "--control-plane", action="store_true", help="only 3., on a lab already up that site.yml has run on"
    )
    args = parser.parse_args()
    python = sys.executable
    if args.quick or args.control_plane:
        if subprocess.run([*podman_cmd(), "container", "exists", f"{LAB}-cp1"], env=env(), check=False).returncode:
            print(f"{LAB} is not up: nothing measured (the whole benchmark: python benchmarks/real_mesh.py)")
            return
        if args.quick:
            print_usage(node_usage(10.0), 10.0)
        else:
            print_control_plane(control_plane_figures())
        return
    run(python, "-m", "lab.stack", "down", "--lab", LAB)
    try:
        up, _ = run(python, "-m", "lab.stack", "up", "--lab", LAB, "--samples")
        run("ansible-playbook", "-i", "inventories/lab/hosts.yml", "lab/playbooks/prepare.yml")
        with tempfile.TemporaryDirectory() as reports:
            report = ["-e", f"network_audit_report_dir={reports}"]
            first, first_roles, first_changed = playbook("site.yml", *report)
            second, second_roles, second_changed = playbook("site.yml", *report)
        usage = node_usage()
        control_plane = control_plane_figures()
    finally:
        if not args.keep:
            take_down(python)
    print(f"lab up with the samples' images (real nodes): {up:.1f} s")
    print(f"site.yml first run:  {first:.1f} s (changed={first_changed})")
    print(f"site.yml second run: {second:.1f} s (changed={second_changed})")
    print(f"{'role':40} {'first s':>9} {'second s':>9}")
    for role in sorted(set(first_roles) | set(second_roles), key=lambda r: -first_roles.get(r, 0)):
        print(f"{role:40} {first_roles.get(role, 0):9.1f} {second_roles.get(role, 0):9.1f}")
    print_control_plane(control_plane)
    print_usage(usage, 30.0)


def print_control_plane(control_plane):
    print("control plane, demo profile with the lab overlay, run on cp1, uninstalled -> Available:")
    for what, seconds in control_plane.items():
        print(f"  {what:52} {seconds:7.1f} s")
    istioctl_first, istioctl_again, play_first, role_first, play_again, role_again = control_plane.values()
    print(f"  playbook first / istioctl first: {play_first / istioctl_first:.2f} (goal <= 1.2)")
    print(f"  playbook again / istioctl again: {play_again / istioctl_again:.2f} (goal <= 1.0)")
    print(f"  role's tasks first / istioctl first: {role_first / istioctl_first:.2f} (goal <= 1.2)")
    print(f"  role's tasks again / istioctl again: {role_again / istioctl_again:.2f} (goal <= 1.0)")


def take_down(python):
    """The lab down at the end; a failure here is reported without hiding the measurement's own."""
    done = subprocess.run(
        [python, "-m", "lab.stack", "down", "--lab", LAB], cwd=REPO, env=env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        print(f"taking {LAB} down failed ({done.returncode}): {done.stderr[-2000:]}", file=sys.stderr)


def print_usage(usage, seconds):
    print(f"running mesh, idle, over {seconds:.0f} s (the node container's cgroup: its agents and pods):")
    for node, (cpu, rss) in usage.items():
        print(f"  {node}: {cpu:.1%} of a core, {rss / 2**30:.2f} GiB resident")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
