"""After converge: the preflight facts agree with what a person finds on each node, and a
preflight run leaves the node's live iptables rules and network namespaces as they were."""

import json
import os
import subprocess

import pytest
import testinfra

PROJECT_DIR = os.environ["MOLECULE_PROJECT_DIRECTORY"]
# The directory: molecule writes provisioner.inventory.hosts (k8s_cluster, workstations) next
# to the generated ansible_inventory.yml.
INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
FACTS_PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preflight_facts.yml")
NODES = ("meshops-md-cp1", "meshops-md-w1", "meshops-md-w2")
EXTENSION_RULES = {
    "owner": ["-m", "owner", "--uid-owner", "1337", "-j", "RETURN"],
    "multiport": ["-m", "multiport", "--dports", "15020,15021", "-j", "RETURN"],
    "REDIRECT": ["-j", "REDIRECT", "--to-ports", "15001"],
}


def _live_state(node):
    """Rules of both back ends (IPv4 and IPv6, without comment lines) and the named network
    namespaces, read in one podman exec."""
    out = node.check_output(
        "for save in iptables-nft-save iptables-legacy-save ip6tables-nft-save ip6tables-legacy-save; do "
        'echo "== $save"; $save | grep -v "^#"; done; echo "== netns"; ip netns list'
    )
    return out.splitlines()


def _run_preflight_playbook():
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CONFIG=os.path.join(PROJECT_DIR, "ansible.cfg"),
    )
    proc = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, FACTS_PLAYBOOK],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    facts = {}
    changed = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                changed[host] = changed.get(host, 0) + int(bool(result.get("changed")))
                if task["task"]["name"] == "Print the preflight facts":
                    facts[host] = result["msg"]
    return facts, changed


@pytest.fixture(scope="module")
def preflight():
    nodes = {name: testinfra.get_host(f"podman://{name}") for name in NODES}
    before = {name: _live_state(node) for name, node in nodes.items()}
    facts, changed = _run_preflight_playbook()
    after = {name: _live_state(node) for name, node in nodes.items()}
    return {"facts": facts, "changed": changed, "before": before, "after": after}


def _facts(host, preflight):
    return preflight["facts"][host.backend.get_hostname()]


def test_every_node_reports_and_has_no_problem(host, preflight):
    facts = _facts(host, preflight)
    assert facts["node_problems"] == []
    assert facts["problems"] == []


def test_backend_fact_is_the_one_iptables_selects(host, preflight):
    facts = _facts(host, preflight)
    version = host.check_output("iptables --version")
    expected = "nft" if "nf_tables" in version else "legacy"
    assert facts["default_backend"] == expected
    # A fresh node holds no rules, so the sidecar init would use the selected back end.
    assert facts["backends_in_use"] == []
    assert facts["backend"] == expected


def test_nat_table_and_extensions_really_load(host, preflight):
    facts = _facts(host, preflight)
    assert facts["nat_table"] is True
    assert facts["extensions"] == dict.fromkeys(EXTENSION_RULES, True)
    # The same by hand, with plain iptables commands in a network namespace of our own.
    script = "iptables -t nat -N PROBE" + "".join(
        f" && iptables -t nat -A PROBE -p tcp {' '.join(rule)}" for rule in EXTENSION_RULES.values()
    )
    result = host.run(f"unshare --net sh -c '{script} && iptables -t nat -S PROBE'")
    assert result.rc == 0, result.stderr
    assert len([line for line in result.stdout.splitlines() if line.startswith("-A PROBE")]) == len(EXTENSION_RULES)


def test_command_facts_point_at_executables(host, preflight):
    commands = _facts(host, preflight)["commands"]
    names = ("iptables", "iptables-save", "iptables-restore", "nsenter", "unshare")
    assert all(commands[name] for name in names), commands
    # Each reported path is an executable file on the node, and the one the shell finds.
    script = " && ".join(f'test -x {commands[name]} && [ "$(command -v {name})" = {commands[name]} ]' for name in names)
    assert host.run(f"PATH=/usr/sbin:/usr/bin:/sbin:/bin; {script}").rc == 0, commands


def test_bash_completion_and_python_facts(host, preflight):
    facts = _facts(host, preflight)
    assert facts["bash_completion"] is True
    out = host.check_output(
        "test -f /usr/share/bash-completion/bash_completion && "
        "python3 -c 'import platform; print(platform.python_version())'"
    )
    assert facts["python_version"] == out


def test_preflight_changes_nothing(host, preflight):
    name = host.backend.get_hostname()
    assert preflight["changed"][name] == 0
    assert preflight["after"][name] == preflight["before"][name]
    assert "MESHOPS_PREFLIGHT" not in "\n".join(preflight["after"][name])
