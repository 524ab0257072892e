"""Reading rules from a saved file, and the errors for sources that do not exist (no root needed)."""

import os
import shutil
import subprocess

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError, SourceError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import namespace_path, read_rules

from .helpers import dump_text


def test_src_file_with_both_families(tmp_path):
    path = tmp_path / "dump.txt"
    path.write_text(dump_text("istio-default", "legacy.save") + dump_text("istio-ipv6-dns", "nft.save"))
    read = read_rules(src=str(path))
    assert read.backend == "file"
    assert sorted(read.rulesets) == ["ipv4", "ipv6"]
    assert read.rulesets["ipv4"].dialect == "legacy"
    assert read.rulesets["ipv6"].dialect == "nft"
    assert read.local_addresses is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"netns": "mo-no-such-namespace"}, "network namespace 'mo-no-such-namespace' not found"),
        ({"netns": "/proc/999999999/ns/net"}, "/proc/999999999/ns/net does not exist"),
        ({"pid": 999999999}, "process 999999999 not found"),
        ({"pid": "abc"}, "pid 'abc' is not a process id"),
        ({"src": "/nonexistent/dump.txt"}, "src /nonexistent/dump.txt: no such file"),
        ({"src": "/etc"}, "src /etc: is not a regular file; give the path of a saved iptables-save"),
        ({"src": "/dev/null"}, "src /dev/null: is not a regular file"),
        ({"src": "/etc/hostname", "netns": "x"}, "cannot be combined with netns or pid"),
        ({"backend": "ebpf"}, "backend must be one of auto, nft, legacy"),
        # An empty value would silently mean the host: refused, naming the option.
        ({"netns": ""}, "netns: an empty value would read the host's own rules"),
        ({"netns": "   "}, "netns: an empty value would read the host's own rules"),
        ({"src": ""}, "src: an empty value would read the host's own rules"),
        ({"src": "", "netns": "x"}, "src: an empty value"),
        ({"pid": 0}, "pid 0: a process id is a positive number"),
        ({"pid": -1}, "pid -1: a process id is a positive number"),
    ],
)
def test_bad_sources_are_named(kwargs, message):
    with pytest.raises(SourceError, match=message.replace("(", r"\(")):
        read_rules(**kwargs)


def test_netns_and_pid_together():
    with pytest.raises(SourceError, match="either netns or pid"):
        namespace_path("a", 1)


def test_truncated_file_names_file_and_line(tmp_path):
    path = tmp_path / "cut.txt"
    text = dump_text("kube-node", "nft.save")
    path.write_text(text[: text.index("COMMIT")])
    with pytest.raises(ParseError, match=rf"^{path} line \d+: truncated dump: table 'nat' opened at line 2"):
        read_rules(src=str(path))


def test_a_process_the_user_may_not_read_says_permission_not_missing():
    # As nobody, /proc/1/ns/net exists but cannot be read: the message must say permission.
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to switch to an unprivileged uid")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import namespace_path\n"
        "from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import SourceError\n"
        "try:\n    namespace_path(pid=1)\nexcept SourceError as e:\n    print(e)"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3"]
    out = subprocess.run(
        [*unprivileged, "-c", code, os.path.join(repo, "collections")],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    assert "process 1: permission denied on /proc/1/ns/net" in out.stdout, out
    assert "become: true" in out.stdout


def test_a_binary_src_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "dump.gz"
    path.write_bytes(b"*nat\n:PREROUTING ACCEPT [0:0]\n\x1f\x8b\x08\xff\xfe\n")
    with pytest.raises(SourceError, match=rf"^src {path}: line 3 is not UTF-8 text \(byte 31\): not a saved dump"):
        read_rules(src=str(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="entering a namespace needs root")
@pytest.mark.parametrize("netns", [".", "..", "/etc/hostname", "/proc/self/ns/uts"])
def test_a_file_that_is_not_a_network_namespace_says_so(netns):
    with pytest.raises(SourceError, match=r"not a network namespace: give a name from `ip netns list`"):
        read_rules(netns=netns)
