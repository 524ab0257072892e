"""preflight/checks.py: dump parsing, back-end detection and the problem list, table-driven."""

import copy
import os

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.preflight import checks

DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "preflight")


def _load(name):
    with open(os.path.join(DATA_DIR, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


SAVE_OUTPUTS = _load("save_outputs.yml")
VERSION_OUTPUTS = _load("version_outputs.yml")
EVALUATE_CASES = _load("evaluate_cases.yml")
EXTENSIONS = ["owner", "multiport", "REDIRECT"]


@pytest.mark.parametrize("case", SAVE_OUTPUTS, ids=lambda c: c["id"])
def test_parse_save_output(case):
    assert checks.parse_save_output(case["text"]) == case["expected"]


@pytest.mark.parametrize("case", VERSION_OUTPUTS, ids=lambda c: c["text"] or "empty")
def test_backend_of_version_output(case):
    assert checks.backend_of_version_output(case["text"]) == case["expected"]


def test_probe_ruleset_names_the_throwaway_chain_and_one_extension():
    assert checks.probe_ruleset() == "*nat\n:MESHOPS_PREFLIGHT - [0:0]\nCOMMIT\n"
    lines = checks.probe_ruleset("owner").splitlines()
    assert lines[2] == "-A MESHOPS_PREFLIGHT -p tcp -m owner --uid-owner 1337 -j RETURN"
    assert lines[-1] == "COMMIT"


@pytest.mark.parametrize(("text", "expected"), [("3.11.2", (3, 11, 2)), ("3.9", (3, 9))])
def test_parse_version(text, expected):
    assert checks.parse_version(text) == expected


def test_parse_version_rejects_garbage():
    with pytest.raises(checks.PreflightError, match=r"3\.x"):
        checks.parse_version("3.x")


def _healthy_backend(name):
    return {
        "installed": True,
        "save_command": f"/usr/sbin/iptables-{name}-save",
        "restore_command": f"/usr/sbin/iptables-{name}-restore",
        "rules": 0,
        "user_chains": 0,
        "non_accept_policies": 0,
        "tables": [],
        "in_use": False,
        "read_error": None,
        "warnings": [],
        "probes": {probe: {"ok": True, "error": ""} for probe in ["nat", *EXTENSIONS]},
    }


def _healthy_node():
    commands = ["iptables", "iptables-save", "iptables-restore", "nsenter"]
    return {
        "commands": {name: f"/usr/sbin/{name}" for name in [*commands, "unshare"]},
        "required_commands": commands,
        "bash_completion": {"path": "/usr/share/bash-completion/bash_completion", "present": True},
        "python": {"version": "3.11.2"},
        "iptables": {
            "default_backend": "nft",
            "version": "iptables v1.8.9 (nf_tables)",
            "backends": {name: _healthy_backend(name) for name in checks.BACKENDS},
        },
        "extensions": list(EXTENSIONS),
        "probe": True,
    }


def _apply(observations, dotted, value):
    # Keys may contain dots only as separators; command names such as iptables-save have none.
    *parents, last = dotted.split(".")
    target = observations
    for key in parents:
        target = target[key]
    target[last] = copy.deepcopy(value)


@pytest.mark.parametrize("case", EVALUATE_CASES, ids=lambda c: c["id"])
def test_evaluate(case):
    observations = _healthy_node()
    for dotted, value in case["set"].items():
        _apply(observations, dotted, value)
    report = checks.evaluate(observations, "3.9")
    expect = case["expect"]
    assert [problem["check"] for problem in report["problems"]] == expect["problems"]
    for key in ("backend", "backends_in_use", "nat_table", "extensions"):
        if key in expect:
            assert report["iptables"][key] == expect[key], key
    fixes = {problem["check"]: problem["fix"] for problem in report["problems"]}
    for check, piece in expect.get("fix_contains", {}).items():
        assert piece in fixes[check]
    for problem in report["problems"]:
        assert set(problem) == {"check", "detail", "fix"}
        assert problem["detail"] and problem["fix"]
