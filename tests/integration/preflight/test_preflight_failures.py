"""The preflight play against real podman node containers that lack prerequisites.

One playbook run, three broken nodes and an inventory without two required groups:

* ``no-iptables``: iptables binaries, nsenter and bash-completion removed;
* ``both-backends``: rules in the legacy and the nft back end at once (in the container's own
  network namespace);
* ``no-owner``: the xtables library of the owner match removed, so a rule using it does not load
  (the kernel side cannot be removed here: no kernel modules directory);
* ``no-python``: python3 removed, so the check module cannot run there;
* ``ghost``: an inventory host whose container does not exist (unreachable);
* the inventory lacks ``istio_controller`` and ``workstations``.

The play must fail once, at the end, with one line per problem naming the host, the check and
the fix, and a play after it (which would create a file on the nodes) must not run.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
import yaml

pytestmark = pytest.mark.podman

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
IMAGE = "localhost/meshops-node:bookworm"
MARKER = "/tmp/meshops-preflight-should-not-exist"
BREAKAGE = {
    "no-iptables": "rm -f /usr/sbin/iptables* /usr/sbin/ip6tables* /usr/sbin/xtables-* /usr/bin/nsenter "
    "/usr/share/bash-completion/bash_completion",
    "both-backends": "iptables-legacy -t nat -N KUBE-SERVICES && iptables-nft -A INPUT -i lo -j ACCEPT",
    "no-owner": "rm -f /usr/lib/*/xtables/libxt_owner.so",
    "no-python": "rm -f /usr/bin/python3*",
}


def _podman_env():
    return dict(os.environ, CONTAINERS_CONF=os.path.join(REPO_ROOT, "lab", "podman", "containers.conf"))


def _podman(*args, check=True):
    return subprocess.run(["podman", *args], env=_podman_env(), capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def nodes():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc)")
    subprocess.run([os.path.join(REPO_ROOT, "lab", "nodeimage", "build.sh")], env=_podman_env(), check=True)
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"meshops-pf-{role}-{suffix}" for role in BREAKAGE}
    try:
        for name in list(names.values()):
            _podman("run", "-d", "--name", name, "--privileged", "--network", "none", IMAGE, "sleep", "infinity")
        for role, name in names.items():
            _podman("exec", name, "sh", "-c", BREAKAGE[role])
        yield {**names, "ghost": f"meshops-pf-ghost-{suffix}"}  # never created
    finally:
        for name in names.values():
            _podman("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture(scope="module")
def preflight_run(nodes, tmp_path_factory):
    work = tmp_path_factory.mktemp("preflight")
    # control_plane, workers and k8s_cluster exist; istio_controller and workstations do not.
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "containers.podman.podman",
                "ansible_python_interpreter": "/usr/bin/python3",
            },
            "children": {
                "k8s_cluster": {
                    "children": {
                        "control_plane": {"hosts": {nodes["no-iptables"]: None}},
                        "workers": {
                            "hosts": {
                                nodes["both-backends"]: None,
                                nodes["no-owner"]: None,
                                nodes["no-python"]: None,
                                nodes["ghost"]: None,
                            }
                        },
                    }
                }
            },
        }
    }
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    playbook = [
        {"ansible.builtin.import_playbook": os.path.join(REPO_ROOT, "playbooks", "preflight.yml")},
        {
            "name": "A change that must never happen after a failed preflight",
            "hosts": "k8s_cluster",
            "gather_facts": False,
            "tasks": [{"name": "Touch", "ansible.builtin.raw": f"touch {MARKER}"}],
        },
    ]
    (work / "site.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    env = dict(
        _podman_env(),
        ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, "collections"),
    )
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run(
        [ansible_playbook, "-i", str(work / "hosts.yml"), str(work / "site.yml")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(proc.stdout)
    failures = [
        (host, result)
        for play in report["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
        if result.get("failed") and not result.get("ignore_errors")
    ]
    return {"proc": proc, "report": report, "failures": failures, "nodes": nodes}


def _lines(run):
    result = run["failures"][0][1]
    return result["msg"]


def test_play_fails_once_at_the_end(preflight_run):
    assert preflight_run["proc"].returncode != 0
    # One failed task (the final report, run once), however many hosts and problems.
    headlines = {str(result.get("msg"))[:40] for _host, result in preflight_run["failures"]}
    assert len(headlines) == 1, preflight_run["failures"]
    assert _lines(preflight_run)[0].startswith("Preflight found 12 problem(s); nothing was changed.")


def test_nothing_after_preflight_ran(preflight_run):
    plays = [play["play"]["name"] for play in preflight_run["report"]["plays"]]
    assert "A change that must never happen after a failed preflight" not in plays
    for role, name in preflight_run["nodes"].items():
        if role != "ghost":
            assert _podman("exec", name, "test", "-e", MARKER, check=False).returncode == 1


@pytest.mark.parametrize(
    ("role", "check", "fix"),
    [
        ("no-iptables", "command iptables-save", "apt-get install iptables"),
        ("no-iptables", "command nsenter", "apt-get install util-linux"),
        ("no-iptables", "bash-completion", "apt-get install bash-completion"),
        ("no-iptables", "iptables back end", "apt-get install iptables"),
        ("both-backends", "iptables back ends in use", "update-alternatives --set iptables"),
        ("no-owner", "iptables extension owner", "apt-get install --reinstall iptables"),
        ("no-python", "node_preflight_info", "install python3 >= 3.9"),
        ("ghost", "node_preflight_info", "make the node reachable"),
    ],
)
def test_node_problem_names_host_check_and_fix(preflight_run, role, check, fix):
    host = preflight_run["nodes"][role]
    matching = [line for line in _lines(preflight_run) if line.startswith(f"{host} | {check} | ")]
    assert len(matching) == 1, _lines(preflight_run)
    assert fix in matching[0].split(" | ")[3]


@pytest.mark.parametrize("group", ["istio_controller", "workstations"])
def test_missing_inventory_group_is_named_with_fix(preflight_run, group):
    matching = [line for line in _lines(preflight_run) if line.startswith(f"inventory | inventory group {group} | ")]
    assert len(matching) == 1, _lines(preflight_run)
    assert f"add group {group} to the inventory" in matching[0]


def test_healthy_groups_are_not_reported(preflight_run):
    for group in ("control_plane", "workers", "k8s_cluster"):
        assert not [line for line in _lines(preflight_run) if f"inventory group {group} " in line]


@pytest.mark.parametrize(
    ("role", "only_check"),
    [("both-backends", "iptables back ends in use"), ("no-owner", "iptables extension owner")],
)
def test_a_node_with_one_fault_reports_nothing_else(preflight_run, role, only_check):
    host = preflight_run["nodes"][role]
    checks = [line.split(" | ")[1] for line in _lines(preflight_run) if line.startswith(f"{host} | ")]
    assert checks == [only_check], _lines(preflight_run)
