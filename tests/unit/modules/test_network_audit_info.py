"""network_audit_info's main(): argument handling, the audit's own errors naming the option, and
bugs as bugs. The audit itself (which reads /proc and the node's rules) is monkeypatched: the
integration tests run it on real namespaces."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.network_audit import audit
from ansible_collections.meshops.istio.plugins.modules import network_audit_info

from .module_runner import assert_reported_as_bug, run_module, show_tracebacks


@pytest.fixture
def audited(monkeypatch):
    """Record the options the module hands to run_audit (validated as the real one does)."""
    calls = []

    def fake_run_audit(options, runner=None, which=None):
        calls.append(audit.validate_options(options))
        return {"schema_version": audit.SCHEMA_VERSION, "pods": []}, {"host.nft.rules": ""}

    monkeypatch.setattr(network_audit_info, "run_audit", fake_run_audit)
    return calls


def test_defaults_come_from_the_audits_one_source_and_nothing_changes(audited):
    result, code = run_module(network_audit_info.main, {}, check_mode=True)
    assert code == 0, result
    assert result["changed"] is False
    assert result["network_audit"]["pods"] == [] and result["dumps"] == {"host.nft.rules": ""}
    (options,) = audited
    for key in ("proxy_uids", "proxy_names", "backends", "families", "probe", "dump_timeout"):
        assert options[key] == audit.DEFAULTS[key], key


def test_an_unknown_backend_is_refused_by_the_argument_spec(audited):
    result, code = run_module(network_audit_info.main, {"backends": ["nft", "iptables"]})
    assert code == 1 and "backends" in result["msg"] and "iptables" in result["msg"]
    assert audited == []


@pytest.mark.parametrize(
    ("args", "named"),
    [({"probe_timeout": -1}, "probe_timeout: -1.0 is out of range"), ({"proxy_uids": [-5]}, "proxy_uids: -5")],
)
def test_a_bad_value_is_the_collections_error_naming_the_option(audited, args, named):
    result, code = run_module(network_audit_info.main, args)
    assert code == 1
    assert result["msg"].startswith(named) and "bug" not in result["msg"]


def test_an_unexpected_exception_is_reported_as_a_bug(monkeypatch):
    def broken_audit(options, runner=None, which=None):
        raise KeyError("ready")

    monkeypatch.setattr(network_audit_info, "run_audit", broken_audit)
    show_tracebacks(monkeypatch)
    result, code = run_module(network_audit_info.main, {})
    assert_reported_as_bug(result, code, "KeyError", "broken_audit")
