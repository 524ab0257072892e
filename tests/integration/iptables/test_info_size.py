"""iptables_info on a large ruleset in a real namespace, through Ansible: every rule, the first
max_rules, the summary, and the size figures each returns (issue 18, class 11)."""

import json

import pytest

from tests.rulegen.kube_proxy_rules import kube_proxy_rules, rule_count, synthetic_services

from .test_modules import run_playbook

pytestmark = pytest.mark.netns


def _data_bytes(result):
    """The JSON size of the rule data of a result, measured here as the module measures it."""
    return sum(len(json.dumps(result[key])) for key in ("iptables", "ip6tables", "other_backend") if key in result)


SERVICES = 1500  # about 20k rules: large enough for megabytes of JSON, quick to load


@pytest.fixture
def node_ns(netlab):
    ns = netlab.netns("node")
    netlab.restore(ns, "nft", kube_proxy_rules(synthetic_services(SERVICES, 3)))
    return ns


def test_rules_limit_and_summary_with_sizes(netlab, node_ns, tmp_path):
    total = rule_count(synthetic_services(SERVICES, 3))
    base = {"netns": node_ns, "backend": "nft", "tables": ["nat"]}
    full, limited, summary = run_playbook(
        tmp_path,
        [
            {"meshops.istio.iptables_info": base},
            {"meshops.istio.iptables_info": dict(base, max_rules=500)},
            {"meshops.istio.iptables_info": dict(base, detail="summary")},
        ],
    )
    for result in (full, limited, summary):
        assert result.get("failed") is not True, result.get("msg")
        assert result["changed"] is False
        assert result["size"]["rules"] == total

    real = full["size"]["json_bytes"]
    assert full["truncated"] is False
    assert full["size"]["rules_returned"] == total
    assert full["size"]["full_json_bytes"] == real
    assert full["size"]["full_json_bytes_estimated"] is False
    assert _data_bytes(full) == real
    assert real > 5_000_000
    assert sum(len(c["rules"]) for c in full["iptables"]["nat"]["chains"].values()) == total

    chains = limited["iptables"]["nat"]["chains"]
    assert limited["truncated"] is True
    assert limited["size"]["rules_returned"] == 500
    assert sum(len(c["rules"]) for c in chains.values()) == 500
    assert limited["size"]["json_bytes"] == _data_bytes(limited) < real / 20
    assert limited["size"]["chains_left_out"] > 0
    assert chains["PREROUTING"]["policy"] == "ACCEPT"  # built-in chains stay listed
    # Past the limit only built-in chains are listed; one user chain at most is cut in the middle.
    cut = [name for name, chain in chains.items() if chain.get("rules_left_out")]
    assert len([name for name in cut if name not in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]) <= 1, cut
    assert len(chains) + limited["size"]["chains_left_out"] == len(full["iptables"]["nat"]["chains"])
    (warning,) = [w for w in limited["warnings"] if "max_rules=500" in w]
    assert f"returned 500 of {total} rules, {total - 500} left out" in warning
    assert "detail=summary" in warning

    nat = summary["iptables"]["nat"]
    assert summary["truncated"] is False
    assert summary["size"]["rules_returned"] == 0
    assert nat["rule_count"] == total
    assert summary["size"]["json_bytes"] == _data_bytes(summary) < real / 2
    assert abs(summary["size"]["full_json_bytes"] - real) / real < 0.05  # the estimate of the full list
    assert not any("rules" in c for c in nat["chains"].values())
    services = nat["chains"]["KUBE-SERVICES"]
    assert services["rule_count"] == SERVICES + 1 and len(services["jumps"]) == SERVICES + 1
    assert nat["chains"]["PREROUTING"]["jumps"] == ["KUBE-SERVICES"]
    assert services["rule_packets"] == 0


def test_bad_limits_are_refused(netlab, node_ns, tmp_path):
    cases = [
        ({"max_rules": 0}, "max_rules: 0 is out of range; give a positive number of rules"),
        ({"max_rules": -3}, "max_rules: -3 is out of range"),
        ({"max_rules": -1, "detail": "summary"}, "max_rules: -1 is out of range"),
        ({"max_rules": True}, "max_rules: True is not a number of rules"),
        ({"max_rules": "many"}, "max_rules"),  # Ansible's own type check names it
        ({"max_rules": 2.5}, "max_rules"),
        ({"detail": "full"}, "detail"),
    ]
    results = run_playbook(
        tmp_path,
        [{"meshops.istio.iptables_info": dict(netns=node_ns, **args), "ignore_errors": True} for args, _m in cases],
    )
    for result, (args, message) in zip(results, cases):  # noqa: B905 - lengths are equal; also runs on 3.9
        assert result.get("failed"), (args, result)
        assert message in result.get("msg", ""), (args, result.get("msg"))
        assert "iptables" not in result
