"""The runner the modules give the reader (reader.module_runner) and the nft read that uses it.

The node audit lists kube-proxy's nftables table through this runner: tens of MB at thousands of
services. AnsibleModule.run_command gathers output as ``stdout += chunk`` on bytes, one pipe
read at a time, which copies the whole output so far on every read (quadratic: at 10k services
more CPU than nft's own listing). The runner must give what run_command gave, without it.
"""

import sys

import pytest

# compares with AnsibleModule.run_command: ansible-core is in the controller's virtualenv, not in
# the node-Python ones (3.9, 3.13) where the rest of this directory runs again
basic = pytest.importorskip("ansible.module_utils.basic")

from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import (
    ENV,
    DumpError,
    Reader,
    module_runner,
)
from ansible_collections.meshops.istio.plugins.module_utils.network_audit.kube_proxy_modes import read_nft
from tests.unit.modules.module_runner import patch_module_args

# stdout with bytes that are not UTF-8, stderr, the locale the command sees, and an exit code.
MIXED_OUTPUT = (
    "import os, sys\n"
    "sys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\xfe raw\\n' + os.environ['LANG'].encode() + b'\\n')\n"
    "sys.stderr.write('warning: something\\n')\n"
    "sys.exit(3)\n"
)
# 4 MB in 4 KiB writes, flushed one by one: the reader sees many small pipe reads.
MANY_SMALL_WRITES = (
    "import sys\n"
    "line = b'x' * 4095 + b'\\n'\n"
    "for _ in range(1024):\n"
    "    sys.stdout.buffer.write(line)\n"
    "    sys.stdout.buffer.flush()\n"
)


@pytest.fixture(name="module")
def fixture_module():
    with patch_module_args({"_ansible_remote_tmp": "/tmp", "_ansible_keep_remote_files": False}):
        return basic.AnsibleModule(argument_spec={})


class NoRunCommand:
    """A module whose run_command must not be used."""

    def __init__(self):
        self.run_command_environ_update = {}

    def run_command(self, *_args, **_kwargs):
        raise AssertionError("module_runner went through AnsibleModule.run_command (quadratic in the output)")


def test_gives_what_run_command_gave(module):
    argv = [sys.executable, "-c", MIXED_OUTPUT]
    assert module_runner(module)(argv) == module.run_command(argv, environ_update=dict(ENV), check_rc=False)


def test_the_module_environment_is_kept_and_the_locale_is_c(module):
    module.run_command_environ_update = {"MESHOPS_TEST_VARIABLE": "kept", "LANG": "de_DE.UTF-8"}
    script = "import os; print(os.environ['MESHOPS_TEST_VARIABLE'], os.environ['LANG'], os.environ['LC_ALL'])"
    assert module_runner(module)([sys.executable, "-c", script]) == (0, "kept C C\n", "")


def test_large_output_in_small_reads_is_collected_whole_without_run_command():
    rc, out, err = module_runner(NoRunCommand())([sys.executable, "-c", MANY_SMALL_WRITES])
    assert (rc, err) == (0, "")
    assert len(out) == 4 * 1024 * 1024
    assert out == ("x" * 4095 + "\n") * 1024


def test_a_command_past_its_timeout_is_a_timeout_dump_error():
    reader = Reader(module_runner(NoRunCommand()), which=lambda name: sys.executable, timeout=0.5)
    with pytest.raises(DumpError, match=r"timed out after 0\.5s") as info:
        reader.run([sys.executable, "-c", "import time; time.sleep(30)"])
    assert info.value.reason == "timeout"


def test_a_missing_program_is_not_installed():
    reader = Reader(module_runner(NoRunCommand()))
    with pytest.raises(DumpError, match="is not installed") as info:
        reader.run(["/nonexistent/nft", "-j", "list", "tables"])
    assert info.value.reason == "not-installed"


class CountingRunner:
    """Answers nft as a node would, and records every command."""

    def __init__(self, table_rc):
        self.table_rc = table_rc
        self.calls = []

    def __call__(self, argv, timeout=None):
        self.calls.append(argv[1:])
        if argv[1:] == ["-j", "list", "tables"]:
            return 0, '{"nftables": [{"table": {"family": "inet", "name": "filter"}}]}', ""
        return self.table_rc, '{"nftables": []}' if self.table_rc == 0 else "", "Error: No such file or directory"


def test_the_nft_read_lists_the_table_once():
    runner = CountingRunner(table_rc=0)
    entry = read_nft(Reader(runner, which=lambda name: f"/usr/sbin/{name}"))
    assert entry["status"] == "ok"
    assert runner.calls == [["-j", "list", "table", "ip", "kube-proxy"]]


def test_only_a_failed_listing_asks_for_the_tables():
    runner = CountingRunner(table_rc=1)
    entry = read_nft(Reader(runner, which=lambda name: f"/usr/sbin/{name}"))
    assert entry["status"] == "absent"
    assert runner.calls == [["-j", "list", "table", "ip", "kube-proxy"], ["-j", "list", "tables"]]
