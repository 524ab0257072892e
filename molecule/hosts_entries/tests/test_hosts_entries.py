"""hosts_entries on podman node containers, where /etc/hosts is a bind mount.

Runs after converge (names mapped, the prepared foreign line rewritten) and then drives
playbooks/hosts.yml itself with ansible-playbook against the same containers for the
four-way assertions, the foreign-entry refusal and bad input. Converge and idempotence reach
the containers through containers.podman.podman (molecule's inventory); these tens of further
runs through the lab's lab_podman (nsenter, pipelined), the transport of the lab inventory.
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
        ansible_connection: lab_podman
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
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
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
            "ansible.builtin.copy",
            "-a",
            "dest=/etc/hosts content='192.0.2.1 probe.example\n'",
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


# --- Bad input and malformed files (issue "Bad input and faults", class /etc/hosts) -----------
# Each case writes a hosts file into the node container in place (the bind mount stays), runs
# the playbook on one node and compares the file before and after: a refused file is left byte
# for byte; an accepted one keeps every line outside the block, in order.

NODE = "meshops-he-w1"
M = "# {mark} meshops.istio hosts_entries (managed by Ansible, do not edit)"


def put_hosts(data):
    subprocess.run(["podman", "exec", "-i", NODE, "sh", "-c", "cat > /etc/hosts"], input=data, check=True, timeout=300)


def get_hosts():
    return subprocess.run(
        ["podman", "exec", NODE, "cat", "/etc/hosts"], capture_output=True, check=True, timeout=300
    ).stdout


def outside_lines(data):
    """Every line outside the managed block (computed here, not by the role), line endings kept."""
    kept, inside = [], False
    for line in data.decode("utf-8").split("\n"):
        if line.rstrip("\r").strip() == BEGIN:
            inside = True
        elif line.rstrip("\r").strip() == END:
            inside = False
        elif not inside:
            kept.append(line)
    return [line for line in kept if line]


@pytest.fixture
def node_hosts():
    original = get_hosts()
    yield
    put_hosts(original)


def run_on_node(inventory, *args, **extra_vars):
    rc, _stats, failures = run_hosts_playbook(inventory, "--limit", NODE, *args, **extra_vars)
    return rc, " ".join(failures.get(NODE, []))


MALFORMED = {
    "end-before-begin-user-line-between": (
        f"127.0.0.1 localhost\n{END}\n10.1.1.1 users.example\n{BEGIN}\n192.0.2.10 jiuxi.com\n",
        "comes before the BEGIN marker",
    ),
    "begin-without-end-then-user-mapping": (
        f"127.0.0.1 localhost\n{BEGIN}\n192.0.2.10 jiuxi.com\n198.51.100.7 jiuxi.com\n",
        "has no END marker",
    ),
    "end-without-begin": (f"192.0.2.10 jiuxi.com\n{END}\n127.0.0.1 localhost\n", "has no BEGIN marker"),
    "two-complete-blocks": (
        f"{BEGIN}\n192.0.2.10 jiuxi.com\n{END}\n127.0.0.1 localhost\n{BEGIN}\n10.0.0.9 jiuxi.com\n{END}\n",
        "at most one managed block",
    ),
    "two-blocks-crlf": (
        f"{BEGIN}\r\n192.0.2.10 jiuxi.com\r\n{END}\r\n{BEGIN}\r\n10.0.0.9 jiuxi.com\r\n{END}\r\n",
        "at most one managed block",
    ),
    "mistyped-marker": (f"{BEGIN.lower()}\n192.0.2.10 jiuxi.com\n{END}\n", "looks like a marker"),
    "user-line-inside-block": (
        f"{BEGIN}\n192.0.2.10 jiuxi.com\n# my database, do not lose\n{END}\n",
        "was not written by this role",
    ),
}


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_region_is_refused_before_any_write(inventory, node_hosts, case, state):
    text, needle = MALFORMED[case]
    put_hosts(text.encode())
    rc, msg = run_on_node(inventory, hosts_entries_state=state, hosts_entries_replace=True)
    assert rc != 0
    assert "cannot be changed safely" in msg and needle in msg and "Nothing was changed" in msg, msg
    assert get_hosts() == text.encode()


def test_file_that_is_not_utf8_is_refused(inventory, node_hosts):
    data = b"127.0.0.1 localhost\n# caf\xe9\n"
    put_hosts(data)
    rc, msg = run_on_node(inventory)
    assert rc != 0 and "is not UTF-8 text" in msg and "line 2" in msg, msg
    assert get_hosts() == data


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        # CRLF: the foreign mapping goes, every other line keeps its CRLF
        ("127.0.0.1 localhost\r\n10.110.101.205 jiuxi.com\r\n::1 localhost\r\n", ["10.110.101.205 jiuxi.com\r"]),
        # CRLF, the name among others and a comment: only the name goes
        ("10.110.101.205 jiuxi.com legacy.example # by hand\r\n127.0.0.1 localhost\r\n", []),
        # the last line without its newline, a tab-separated mapping of two managed names
        ("127.0.0.1 localhost\n10.110.101.205\tjiuxi.com\tWWW.jiuxi.com", ["10.110.101.205\tjiuxi.com\tWWW.jiuxi.com"]),
    ],
    ids=["crlf", "crlf-shared-line", "no-final-newline-tabs"],
)
def test_replace_keeps_every_foreign_line_and_the_new_address_wins(inventory, node_hosts, text, gone):
    put_hosts(text.encode())
    before = outside_lines(text.encode())
    for args in (["--check", "--diff"], [], []):
        rc, msg = run_on_node(inventory, *args, hosts_entries_replace=True)
        assert rc == 0, msg
    after = outside_lines(get_hosts())
    expected = [line.replace("jiuxi.com ", "").replace("\tjiuxi.com", "") for line in before if line not in gone]
    assert after == expected
    assert managed_block(get_hosts().decode().replace("\r", "")) == [f"192.0.2.10 {n}" for n in NAMES]
    resolved = subprocess.run(
        ["podman", "exec", NODE, "getent", "hosts", "jiuxi.com"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resolved.stdout.split()[0] == "192.0.2.10", resolved.stdout


@pytest.mark.parametrize(
    ("names", "block"),
    [
        ("jiuxi.com", ["192.0.2.10 jiuxi.com"]),
        ("jiuxi.com, www.jiuxi.com", ["192.0.2.10 jiuxi.com", "192.0.2.10 www.jiuxi.com"]),
    ],
)
def test_names_given_as_a_string(inventory, node_hosts, names, block):
    before = outside_lines(get_hosts())
    rc, msg = run_on_node(inventory, hosts_entries_names=names)
    assert rc == 0, msg
    data = get_hosts()
    assert managed_block(data.decode()) == block
    assert outside_lines(data) == before
    rc, msg = run_on_node(inventory, "--check", hosts_entries_names=names)
    assert rc == 0, msg


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"hosts_entries_marker": "# meshops.istio managed"}, "hosts_entries_marker"),
        ({"hosts_entries_marker": "# {mark} a {mark}"}, "hosts_entries_marker"),
        ({"hosts_entries_marker": "{mark} not a comment"}, "hosts_entries_marker"),
        ({"hosts_entries_marker": "# {mark} one\n192.0.2.66 jiuxi.com"}, "hosts_entries_marker"),
        ({"hosts_entries_marker": "# meshops.istio managed", "hosts_entries_state": "absent"}, "hosts_entries_marker"),
        ({"hosts_entries_names": "jiuxi.com,bad_name!"}, "bad_name!"),
        ({"hosts_entries_names": ""}, "hosts_entries_names"),
        ({"hosts_entries_address": "192.0.2.10\n192.0.2.66 evil.example"}, "hosts_entries_address"),
    ],
)
def test_bad_settings_fail_before_any_change(inventory, node_hosts, extra, needle):
    before = get_hosts()
    for _run in range(2):  # a marker without {mark} used to add another block on every run
        rc, msg = run_on_node(inventory, **extra)
        assert rc != 0 and needle in msg, msg
        assert get_hosts() == before
