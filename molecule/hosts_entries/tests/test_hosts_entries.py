"""hosts_entries on podman node containers, where /etc/hosts is a bind mount.

Runs after converge (names mapped, the prepared foreign line rewritten) and then drives
playbooks/hosts.yml itself with ansible-playbook against the same containers for the
four-way assertions, the foreign-entry refusal and bad input.
"""

import json
import os
import subprocess
import textwrap

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
NAMES = ["jiuxi.com", "bookinfo.example", "www.jiuxi.com"]
ADDRESS = {"meshops-he-ws1": "2001:db8::10", "meshops-he-cp1": "192.0.2.10", "meshops-he-w1": "192.0.2.10"}
BEGIN = "# BEGIN meshops.istio hosts_entries (managed by Ansible, do not edit)"
END = "# END meshops.istio hosts_entries (managed by Ansible, do not edit)"
FOREIGN = "192.0.2.99 jiuxi.com legacy.jiuxi.example # added by hand"
FOREIGN_REWRITTEN = "192.0.2.99 legacy.jiuxi.example # added by hand"

INVENTORY = textwrap.dedent(
    """\
    all:
      vars:
        ansible_connection: containers.podman.podman
        ansible_python_interpreter: /usr/bin/python3
        hosts_entries_names: [jiuxi.com, bookinfo.example, www.jiuxi.com]
      children:
        workstations:
          hosts:
            meshops-he-ws1:
              hosts_entries_address: "2001:db8::10"
        k8s_cluster:
          vars:
            hosts_entries_address: 192.0.2.10
          children:
            control_plane:
              hosts:
                meshops-he-cp1:
            workers:
              hosts:
                meshops-he-w1:
    """
)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("he") / "hosts.yml"
    path.write_text(INVENTORY)
    return str(path)


def run_hosts_playbook(inventory, *args, **extra_vars):
    """Run playbooks/hosts.yml; return (rc, stats per host, failure messages per host)."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections"),
    )
    cmd = ["ansible-playbook", "-i", inventory, "playbooks/hosts.yml", *args]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook output is not JSON:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    failures = {}
    for play in out["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    failures.setdefault(host, []).append(res.get("msg", ""))
    return proc.returncode, out["stats"], failures


def hosts_text(host):
    return host.file("/etc/hosts").content_string


def managed_block(text):
    lines = text.splitlines()
    assert lines.count(BEGIN) == 1 and lines.count(END) == 1, text
    return lines[lines.index(BEGIN) + 1 : lines.index(END)]


def all_hosts():
    import testinfra

    return {name: testinfra.get_host("podman://" + name) for name in ADDRESS}


def four_way(inventory, **extra_vars):
    """check -> changed, apply -> changed, check -> unchanged, apply -> unchanged on every host."""
    seen = []
    for args in (["--check", "--diff"], [], ["--check", "--diff"], []):
        rc, stats, failures = run_hosts_playbook(inventory, *args, **extra_vars)
        assert rc == 0, failures
        seen.append({h: stats[h]["changed"] for h in ADDRESS})
    for host in ADDRESS:
        assert seen[0][host] > 0, ("check mode predicted no change", host, seen)
        assert seen[1][host] > 0, ("apply changed nothing", host, seen)
        assert seen[2][host] == 0, ("check mode after apply still predicts a change", host, seen)
        assert seen[3][host] == 0, ("second apply changed something", host, seen)


def test_converge_wrote_the_block_and_resolves(host):
    name = host.backend.get_hostname()
    block = managed_block(hosts_text(host))
    assert block == [f"{ADDRESS[name]} {n}" for n in NAMES]
    resolved = host.run("getent hosts jiuxi.com")
    assert resolved.rc == 0 and resolved.stdout.split()[0] == ADDRESS[name]


def test_converge_rewrote_only_the_managed_name_of_the_foreign_line(host):
    lines = hosts_text(host).splitlines()
    assert FOREIGN not in lines
    assert FOREIGN_REWRITTEN in lines


def test_no_line_lost_and_hosts_still_bind_mounted(host):
    before = host.file("/root/hosts.before").content_string.splitlines()
    after = hosts_text(host).splitlines()
    outside = after[: after.index(BEGIN)] + after[after.index(END) + 1 :]
    expected = [FOREIGN_REWRITTEN if line == FOREIGN else line for line in before]
    # Every original line, in the original order, nothing else outside the block.
    assert outside == expected
    # The write happened in place: /etc/hosts is still the mount podman made.
    assert host.run("findmnt -n --target /etc/hosts -o TARGET").stdout.strip() == "/etc/hosts"


def test_rename_over_the_bind_mount_fails_which_is_why_unsafe_writes(inventory):
    # The same module without unsafe_writes: the atomic rename onto the mount point is refused
    # (EBUSY). This is the failure the role avoids; the file must be left as it was.
    node = all_hosts()["meshops-he-w1"]
    before = hosts_text(node)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    proc = subprocess.run(
        [
            "ansible",
            "-i",
            inventory,
            "meshops-he-w1",
            "-m",
            "ansible.builtin.blockinfile",
            "-a",
            "path=/etc/hosts marker='# {mark} ebusy probe' block='192.0.2.1 probe.example'",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0, proc.stdout
    assert "busy" in proc.stdout.lower(), proc.stdout
    assert hosts_text(node) == before


def test_four_way_absent_removes_only_the_block(inventory):
    hosts = all_hosts()
    outside_before = {}
    for name, h in hosts.items():
        lines = hosts_text(h).splitlines()
        outside_before[name] = lines[: lines.index(BEGIN)] + lines[lines.index(END) + 1 :]
    four_way(inventory, hosts_entries_state="absent")
    for name, h in hosts.items():
        assert hosts_text(h).splitlines() == outside_before[name]


def test_four_way_present_again(inventory):
    four_way(inventory)
    for name, h in all_hosts().items():
        assert managed_block(hosts_text(h)) == [f"{ADDRESS[name]} {n}" for n in NAMES]


def test_foreign_entry_is_reported_and_nothing_changes(inventory):
    hosts = all_hosts()
    for h in hosts.values():
        h.run("printf '%s\\n' '198.51.100.7 www.jiuxi.com' >> /etc/hosts")
    before = {n: hosts_text(h) for n, h in hosts.items()}
    rc, _stats, failures = run_hosts_playbook(inventory)
    assert rc != 0
    for name in ADDRESS:
        msg = " ".join(failures[name])
        assert "198.51.100.7 www.jiuxi.com" in msg and "hosts_entries_replace" in msg
        assert hosts_text(hosts[name]) == before[name]


def test_four_way_replace_removes_the_foreign_line(inventory):
    four_way(inventory, hosts_entries_replace=True)
    for h in all_hosts().values():
        assert "198.51.100.7 www.jiuxi.com" not in hosts_text(h).splitlines()


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"hosts_entries_names": ["jiuxi.com", "bad_name!"]}, "hosts_entries_names"),
        ({"hosts_entries_names": ["*.jiuxi.com"]}, "hosts_entries_names"),
        ({"hosts_entries_address": "not-an-ip"}, "hosts_entries_address"),
        ({"hosts_entries_address": "10.0.0.0/8"}, "hosts_entries_address"),
    ],
)
def test_bad_input_fails_before_any_change(inventory, extra, variable):
    hosts = all_hosts()
    before = {n: hosts_text(h) for n, h in hosts.items()}
    rc, _stats, failures = run_hosts_playbook(inventory, **extra)
    assert rc != 0
    for name in ADDRESS:
        assert variable in " ".join(failures[name])
        assert hosts_text(hosts[name]) == before[name]
