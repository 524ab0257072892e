"""Wall time of site.yml on the lab: a first run, then a second (no-op) run, with the time
spent in each role (ansible.posix.profile_roles), and the floor of a task that asks every node
something (an ansible.builtin.stat). Prints figures; asserts nothing.

    python benchmarks/site.py                     # the whole site.yml
    python benchmarks/site.py --quick             # only the istioctl part (preflight always runs)
    python benchmarks/site.py --connection podman # through containers.podman.podman instead of
                                                  # the lab inventory's lab_podman (no pipelining)

It brings up its own lab (lab.stack, lab "meshops-site") and takes it down afterwards. The
issue's target: the no-op run takes at most 40% of the first.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
LAB = "meshops-site"
ROLE_LINE = re.compile(r"^(?P<role>[\w.]+) -+ (?P<seconds>[\d.]+)s$")


def run(*args, env=None, capture=True):
    start = time.monotonic()
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=capture, text=True, check=False)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        tail = (result.stdout or "")[-4000:] + (result.stderr or "")[-2000:]
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{tail}")
    return seconds, result.stdout or ""


def lab_hosts(node):
    """Names of the hosts in an inventory file's tree."""
    names = set((node or {}).get("hosts") or {})
    for child in ((node or {}).get("children") or {}).values():
        names |= lab_hosts(child)
    return names


def connection_overlay(connection, directory):
    """A second inventory source that sets ansible_connection as a host variable of every lab
    host (an extra variable would also move the controller-side localhost tasks off "local")."""
    with open(REPO / "inventories" / "lab" / "hosts.yml", encoding="utf-8") as handle:
        hosts = lab_hosts(yaml.safe_load(handle)["all"])
    path = Path(directory) / "connection.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {h: {"ansible_connection": connection} for h in sorted(hosts)}}}))
    return str(path)


def playbook(env, tags, overlay):
    args = ["ansible-playbook", "-i", "inventories/lab/hosts.yml", "site.yml"]
    if tags:
        args += ["--tags", tags]
    if overlay:
        args += ["-i", overlay]
    seconds, output = run(*args, env=env)
    roles = {m["role"]: float(m["seconds"]) for m in map(ROLE_LINE.match, output.splitlines()) if m}
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", output))
    return seconds, roles, changed, recap_counts(output)


FLOOR_TASKS = 10


def floor_playbook(directory, tasks):
    """A play of `tasks` stat tasks on every lab node: the least a task that asks a node costs."""
    play = [
        {
            "name": "Floor",
            "hosts": "all:!localhost",
            "gather_facts": False,
            "tasks": [{"ansible.builtin.stat": {"path": "/etc/hosts"}} for _ in range(tasks)],
        }
    ]
    path = Path(directory) / f"floor-{tasks}.yml"
    path.write_text(yaml.safe_dump(play))
    return str(path)


def per_task_floor(env, directory, overlay):
    """Seconds per task of a stat on every node (ten tasks minus one, so start-up cancels out)."""
    timings = []
    for tasks in (1, 1 + FLOOR_TASKS):
        args = ["ansible-playbook", "-i", "inventories/lab/hosts.yml", floor_playbook(directory, tasks)]
        seconds, _ = run(*args, *(["-i", overlay] if overlay else []), env=env)
        timings.append(seconds)
    return (timings[1] - timings[0]) / FLOOR_TASKS


def recap_counts(output):
    """Tasks that ran (ok) and were skipped, summed over the hosts of the recap."""
    return {key: sum(int(n) for n in re.findall(rf"\b{key}=(\d+)", output)) for key in ("ok", "skipped")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the istioctl part")
    parser.add_argument(
        "--connection",
        choices=("lab", "podman"),
        default="lab",
        help="lab: the lab inventory's lab_podman (default); podman: containers.podman.podman",
    )
    args = parser.parse_args()
    connection = "containers.podman.podman" if args.connection == "podman" else ""
    tags = "istioctl" if args.quick else ""
    env = dict(
        os.environ,
        MESHOPS_LAB=LAB,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        CONTAINERS_CONF=str(REPO / "lab" / "podman" / "containers.conf"),
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_roles",
        ANSIBLE_NOCOLOR="1",
    )
    python = sys.executable
    workdir = tempfile.mkdtemp(prefix="meshops-site-bench-")
    # From a known start: a lab left up by an interrupted run would make "lab up" a no-op.
    run(python, "-m", "lab.stack", "down", "--lab", LAB, env=env)
    try:
        up_seconds, _ = run(python, "-m", "lab.stack", "up", "--lab", LAB, "--nodes", "kwok", env=env)
        run("ansible-playbook", "-i", "inventories/lab/hosts.yml", "lab/playbooks/prepare.yml", env=env)
        overlay = connection_overlay(connection, workdir) if connection else ""
        first, first_roles, first_changed, _ = playbook(env, tags, overlay)
        second, second_roles, second_changed, second_counts = playbook(env, tags, overlay)
        floor = per_task_floor(env, workdir, overlay)
    finally:
        run(python, "-m", "lab.stack", "down", "--lab", LAB, env=env)
        shutil.rmtree(workdir, ignore_errors=True)
    scope = "site.yml --tags istioctl" if args.quick else "site.yml"
    print(f"connection: {connection or 'lab_podman (nsenter, pipelining)'}")
    print(f"lab up (nodes, cluster, bundle): {up_seconds:.1f} s")
    print(f"{scope} first run:  {first:.1f} s (changed={first_changed})")
    print(f"{scope} second run: {second:.1f} s (changed={second_changed})")
    print(f"second / first: {second / first:.0%} (target: at most 40%)")
    print(f"second run: {second_counts['ok']} tasks ran, {second_counts['skipped']} skipped (summed over hosts)")
    print(f"floor: {floor:.2f} s per task that stats a file on every node ({FLOOR_TASKS} tasks)")
    print(f"{'role':40} {'first s':>9} {'second s':>9}")
    for role in sorted(set(first_roles) | set(second_roles), key=lambda r: -first_roles.get(r, 0)):
        print(f"{role:40} {first_roles.get(role, 0):9.1f} {second_roles.get(role, 0):9.1f}")


if __name__ == "__main__":
    main()
