"""iptables_info's result (module_utils/iptables/info.py): every rule, the first max_rules, or a
summary, and the size figures; cases in data/info_cases.yml."""

import json

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.info import (
    human_size,
    info_result,
    validate_info_options,
)
from ansible_collections.meshops.istio.plugins.module_utils.iptables.options import OptionError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import read_rules
from tests.rulegen.kube_proxy_rules import kube_proxy_rules, synthetic_services

from .helpers import load_yaml

DATA = load_yaml("info_cases.yml")
ALL_TABLES = ["raw", "mangle", "nat", "filter"]


def _read(tmp_path, text):
    path = tmp_path / "dump.txt"
    path.write_text(text)
    return read_rules(src=str(path))


def _listed(view):
    return {table: {name: len(chain["rules"]) for name, chain in t["chains"].items()} for table, t in view.items()}


def _left_out(view):
    return {
        f"{table}/{name}": chain["rules_left_out"]
        for table, t in view.items()
        for name, chain in t["chains"].items()
        if "rules_left_out" in chain
    }


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_info_result(case, tmp_path):
    read = _read(tmp_path, DATA["dumps"][case["dump"]])
    result, warnings = info_result(
        read, case.get("tables", ALL_TABLES), case.get("detail", "rules"), case.get("max_rules")
    )
    assert result["changed"] is False
    assert result["truncated"] is case["truncated"]
    for key, value in case["size"].items():
        assert result["size"][key] == value, key
    for key, suffix in (("iptables", ""), ("ip6tables", "6")):
        if "listed" + suffix in case:
            assert _listed(result[key]) == case["listed" + suffix]
        if "left_out" + suffix in case or ("listed" + suffix in case and case.get("detail") != "summary"):
            assert _left_out(result[key]) == case.get("left_out" + suffix, {})
        for table, count in case.get("table_rule_count" + suffix, {}).items():
            assert result[key][table]["rule_count"] == count
    for where, fields in case.get("summary", {}).items():
        table, chain = where.split("/")
        summary = result["iptables"][table]["chains"][chain]
        assert "rules" not in summary
        for field, value in fields.items():
            assert summary[field] == value, (where, field)
    # The size figures describe what is returned.
    data = sum(len(json.dumps(result[k])) for k in ("iptables", "ip6tables", "other_backend") if k in result)
    assert result["size"]["json_bytes"] == data
    if not result["size"]["full_json_bytes_estimated"]:
        assert result["size"]["full_json_bytes"] == data
    if case["truncated"]:
        (warning,) = warnings
        assert case["warning"] in warning
        assert "detail=summary" in warning and "max_rules" in warning
        assert f"every rule is about {human_size(result['size']['full_json_bytes'])} of JSON" in warning
    else:
        assert warnings == []


def test_estimate_of_the_full_rule_list_is_close(tmp_path):
    """The summary's and a truncated list's estimate of the full size, against the real size."""
    read = _read(tmp_path, kube_proxy_rules(synthetic_services(400, 3)))
    full, _warnings = info_result(read, ALL_TABLES)
    real = full["size"]["json_bytes"]
    assert full["size"]["full_json_bytes"] == real
    assert full["size"]["rules"] > 5000
    # kube-proxy's chains hold a few rules each: the summary is smaller, not tiny (figures in README).
    for detail, limit, at_most in (("summary", None, 0.7), ("rules", 10, 0.01), ("rules", 3000, 0.7)):
        result, _warnings = info_result(read, ALL_TABLES, detail, limit)
        assert result["size"]["full_json_bytes_estimated"] is True
        assert abs(result["size"]["full_json_bytes"] - real) / real < 0.05, (detail, limit)
        assert result["size"]["json_bytes"] < real * at_most, (detail, limit)
        assert result["size"]["rules"] == full["size"]["rules"]


def test_large_rule_list_warns_with_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr("ansible_collections.meshops.istio.plugins.module_utils.iptables.info.LARGE_RESULT_BYTES", 1000)
    read = _read(tmp_path, DATA["dumps"]["small"])
    result, warnings = info_result(read, ALL_TABLES)
    assert result["truncated"] is False
    (warning,) = warnings
    assert f"the rule list is {human_size(result['size']['json_bytes'])} of JSON (6 rules)" in warning
    assert "detail=summary" in warning
    assert info_result(read, ALL_TABLES, "summary")[1] == []


def test_both_backends_other_rules_come_last(tmp_path):
    read = _read(tmp_path, DATA["dumps"]["small"])
    other = _read(tmp_path, DATA["dumps"]["no_counters"]).rulesets["ipv4"]
    read.by_backend = {("ipv4", "nft"): read.rulesets["ipv4"], ("ipv4", "legacy"): other}
    read.rulesets["ipv4"].backend = "nft"
    result, _warnings = info_result(read, ALL_TABLES, max_rules=8)
    assert result["both_backends"] == ["ipv4"]
    assert result["size"]["rules"] == 6 + 5
    assert result["size"]["rules_returned"] == 8
    assert _listed(result["other_backend"]["ipv4"]["rules"]) == {"filter": {"INPUT": 2, "FORWARD": 0, "OUTPUT": 0}}
    summary, _warnings = info_result(read, ALL_TABLES, "summary")
    assert summary["other_backend"]["ipv4"]["rules"]["filter"]["chains"]["LOG-DROP"]["rule_count"] == 2


@pytest.mark.parametrize(
    ("detail", "max_rules", "message"),
    [
        ("rules", 0, "max_rules: 0 is out of range; give a positive number of rules"),
        ("rules", -5, "max_rules: -5 is out of range"),
        ("summary", -1, "max_rules: -1 is out of range"),
        ("rules", True, "max_rules: True is not a number of rules"),
        ("rules", "10", "max_rules: '10' is not a number of rules"),
        ("rules", 2.5, "max_rules: 2.5 is not a number of rules"),
        ("full", None, "detail: 'full' is not one of rules, summary"),
        (None, None, "detail: None is not one of rules, summary"),
    ],
)
def test_bad_options_are_named(detail, max_rules, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(")):
        validate_info_options(detail, max_rules)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (999, "999 bytes"), (1000, "1.0 kB"), (85_300_000, "85.3 MB"), (2e12, "2000.0 GB")],
)
def test_human_size(size, text):
    assert human_size(size) == text
