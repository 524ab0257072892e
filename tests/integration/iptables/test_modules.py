"""The three modules run through Ansible against a real namespace: results, errors, read-only proof."""

import json
import os
import subprocess
import sys

import pytest

from tests.rulegen.istio_capture_rules import istio_capture_rules
from tests.rulegen.kube_proxy_rules import kube_proxy_rules

pytestmark = pytest.mark.netns

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run_playbook(tmp_path, tasks):
    """Run tasks on localhost; return the per-task results (json callback)."""
    playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(playbook))
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
    )
    bindir = os.path.dirname(sys.executable)
    proc = subprocess.run(
        [
            os.path.join(bindir, "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"ansible-playbook output is not JSON: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        ) from None
    return [task["hosts"]["localhost"] for task in data["plays"][0]["tasks"]]


def _ruleset_text(netlab, ns):
    """Every table of both back ends and both families, counters and comment lines aside."""
    text = []
    for backend in ("nft", "legacy"):
        for family in ("ipv4", "ipv6"):
            dump = netlab.save(ns, backend, family, counters=False)
            text.append(f"## {backend} {family}")
            text.extend(line for line in dump.splitlines() if not line.startswith("#"))
    return "\n".join(text)


@pytest.fixture
def pod_ns(netlab):
    ns = netlab.netns("pod")
    peer = netlab.netns("peer")
    netlab.link(ns, "10.203.1.2/30", peer, "10.203.1.1/30", name_a="eth0")
    netlab.restore(ns, "nft", istio_capture_rules())
    netlab.restore(ns, "nft", istio_capture_rules(family="ipv6"), family="ipv6")
    services = [
        {
            "namespace": "default",
            "name": "web",
            "cluster_ip": "10.203.200.10",
            "port": 80,
            "node_port": 30080,
            "endpoints": ["10.203.130.2:8080", "10.203.130.6:8080"],
        }
    ]
    netlab.restore(ns, "legacy", kube_proxy_rules(services, cluster_cidr="10.203.130.0/24"))
    return ns


def test_modules_read_only_and_results(netlab, pod_ns, tmp_path):
    before = _ruleset_text(netlab, pod_ns)
    packets = [
        {
            "name": "inbound",
            "hook": "prerouting",
            "src": "10.203.1.1",
            "dst": "10.203.1.2",
            "dport": 80,
            "in_interface": "eth0",
        },
        {
            "name": "proxy out",
            "hook": "output",
            "src": "10.203.1.2",
            "dst": "10.203.1.1",
            "dport": 8080,
            "uid": 1337,
            "gid": 1337,
        },
        {
            "name": "v6 in",
            "hook": "prerouting",
            "src": "fd00::1",
            "dst": "fd00::2",
            "dport": 80,
            "in_interface": "eth0",
        },
    ]
    results = run_playbook(
        tmp_path,
        [
            {"meshops.istio.iptables_info": {"netns": pod_ns, "tables": ["nat", "filter"]}},
            {"meshops.istio.iptables_info": {"netns": pod_ns, "backend": "legacy"}, "check_mode": True},
            {"meshops.istio.iptables_trace": {"netns": pod_ns, "packets": packets}},
            {
                "meshops.istio.sidecar_iptables_audit": {"netns": pod_ns, "expected": {"proxy_uid": 1337}},
                "check_mode": True,
            },
            {"meshops.istio.sidecar_iptables_audit": {"netns": pod_ns, "backend": "legacy"}},
        ],
    )
    after = _ruleset_text(netlab, pod_ns)
    assert after == before, "a module changed the rules"
    for result in results:
        assert result.get("failed") is not True, result
        assert result["changed"] is False
    info, legacy_info, trace, audit, legacy_audit = results

    assert info["backend"] == "nft"
    assert info["both_backends"] == ["ipv4"]
    assert any("both iptables-nft and iptables-legacy" in str(w) for w in info["warnings"])
    assert set(info["iptables"]) == {"nat"}  # filter was asked for, but the namespace has no filter table
    redirect = info["iptables"]["nat"]["chains"]["ISTIO_IN_REDIRECT"]["rules"][0]
    assert redirect["rule_number"] == 1
    assert redirect["target"] == "REDIRECT"
    assert redirect["target_options"] == {"to-ports": "15006"}
    assert redirect["packets"] == 0
    assert info["iptables"]["nat"]["chains"]["OUTPUT"]["policy"] == "ACCEPT"
    assert "KUBE-SERVICES" in info["other_backend"]["ipv4"]["rules"]["nat"]["chains"]
    assert info["ip6tables"]["nat"]["chains"]["ISTIO_OUTPUT"]["rules"][0]["rule"].startswith("-A ISTIO_OUTPUT")
    assert legacy_info["backend"] == "legacy"
    assert "KUBE-SERVICES" in legacy_info["iptables"]["nat"]["chains"]

    assert [t["name"] for t in trace["traces"]] == ["inbound", "proxy out", "v6 in"]
    assert trace["traces"][0]["verdict"]["action"] == "REDIRECT"
    assert trace["traces"][0]["verdict"]["to_ports"] == 15006
    assert trace["traces"][1]["verdict"]["action"] == "ACCEPT"
    assert trace["traces"][2]["family"] == "ipv6"
    assert trace["traces"][2]["verdict"]["to_ports"] == 15006
    assert "10.203.1.2" in trace["local_addresses"]

    assert audit["capture"]["proxy_uids"] == [1337]
    codes = [f["code"] for f in audit["findings"]]
    assert codes[0] == "BOTH_BACKENDS"  # a warning: the nft capture itself is complete
    assert "CAPTURE_OK" in codes
    assert not [f for f in audit["findings"] if f["severity"] == "error"]
    assert audit["probe_pod_ip"] == "10.203.1.2"
    assert legacy_audit["kube_proxy"][0]["name"] == "default/web:http"
    assert [e["probability"] for e in legacy_audit["kube_proxy"][0]["endpoints"]] == [0.5, 0.5]


def test_module_errors_name_the_input(netlab, pod_ns, tmp_path):
    truncated = tmp_path / "truncated.txt"
    truncated.write_text("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j RETURN\n")
    unknown_table = tmp_path / "unknown.txt"
    unknown_table.write_text("*nat\nCOMMIT\n*bogus\nCOMMIT\n")
    bad = {"name": "bad", "hook": "prerouting", "src": "10.203.1.1", "dst": "10.203.1.300", "dport": 80}
    results = run_playbook(
        tmp_path,
        [
            {"meshops.istio.iptables_info": {"netns": "mo-does-not-exist"}, "ignore_errors": True},
            {"meshops.istio.iptables_info": {"pid": 999999999}, "ignore_errors": True},
            {"meshops.istio.iptables_info": {"src": str(truncated)}, "ignore_errors": True},
            {"meshops.istio.sidecar_iptables_audit": {"src": str(unknown_table)}, "ignore_errors": True},
            {"meshops.istio.iptables_trace": {"netns": pod_ns, "packets": [bad]}, "ignore_errors": True},
            {
                "meshops.istio.iptables_trace": {
                    "netns": pod_ns,
                    "packets": [dict(bad, dst="10.203.1.2", dport=70000)],
                },
                "ignore_errors": True,
            },
            {"meshops.istio.iptables_info": {"src": str(truncated), "netns": pod_ns}, "ignore_errors": True},
        ],
    )
    messages = [r.get("msg", "") for r in results]
    assert all(r.get("failed") for r in results), results
    assert "network namespace 'mo-does-not-exist' not found" in messages[0]
    assert "process 999999999 not found" in messages[1]
    assert f"{truncated} line 3: truncated dump: table 'nat' opened at line 1 has no COMMIT" in messages[2]
    assert f"{unknown_table} line 3: unknown table 'bogus'" in messages[3]
    assert "bad: dst '10.203.1.300' is not an IPv4 or IPv6 address" in messages[4]
    assert "bad: dport 70000 is out of range" in messages[5]
    assert "mutually exclusive" in messages[6]
    for result in results:
        assert "iptables" not in result and "traces" not in result and "capture" not in result


def test_empty_and_out_of_range_values_are_refused(netlab, pod_ns, tmp_path):
    good = {"name": "p", "hook": "prerouting", "src": "10.203.1.1", "dst": "10.203.1.2", "dport": 80}
    cases = [
        # An empty value would silently read the host's rules.
        ({"meshops.istio.iptables_info": {"netns": ""}}, "netns: an empty value would read the host's own rules"),
        ({"meshops.istio.iptables_info": {"src": ""}}, "src: an empty value would read the host's own rules"),
        ({"meshops.istio.iptables_trace": {"netns": "", "packets": [good]}}, "netns: an empty value"),
        ({"meshops.istio.iptables_trace": {"netns": pod_ns, "packets": [dict(good, protocol=999)]}}, "out of range"),
        (
            {"meshops.istio.iptables_trace": {"netns": pod_ns, "packets": [dict(good, mark=-1)]}},
            "mark '-1' is out of range",
        ),
        ({"meshops.istio.iptables_trace": {"netns": pod_ns, "packets": [dict(good, mark=2**32)]}}, "out of range"),
        # One validator for expected: both audit modules refuse the same values.
        (
            {"meshops.istio.sidecar_iptables_audit": {"netns": pod_ns, "expected": {"app_port": 0}}},
            "expected.app_port: 0 is out of range",
        ),
        (
            {"meshops.istio.network_audit_info": {"netns_include": [], "expected": {"app_port": 0}}},
            "expected.app_port: 0 is out of range",
        ),
        (
            {"meshops.istio.sidecar_iptables_audit": {"netns": pod_ns, "expected": {"inbound_prot": 1}}},
            "inbound_prot",
        ),
        (
            {"meshops.istio.network_audit_info": {"expected": {"inbound_prot": 1}}},
            "inbound_prot",
        ),
        (
            {"meshops.istio.sidecar_iptables_audit": {"netns": pod_ns, "expected": {"outbound_exclude_cidrs": ["x"]}}},
            "expected.outbound_exclude_cidrs[0]: 'x' is not a CIDR",
        ),
        (
            {"meshops.istio.network_audit_info": {"expected": {"outbound_include_cidrs": ["10.0.0.0/33"]}}},
            "expected.outbound_include_cidrs[0]: '10.0.0.0/33' is not a CIDR",
        ),
        (
            {"meshops.istio.sidecar_iptables_audit": {"netns": pod_ns, "local_addresses": ["nope"]}},
            "local_addresses[0]: 'nope' is not an IP address",
        ),
        ({"meshops.istio.network_audit_info": {"dump_timeout": 0}}, "dump_timeout: 0 is out of range"),
    ]
    results = run_playbook(tmp_path, [dict(task, ignore_errors=True) for task, _message in cases])
    for result, (task, message) in zip(results, cases, strict=True):
        assert result.get("failed"), (task, result)
        assert message in result.get("msg", ""), (task, result.get("msg"))
