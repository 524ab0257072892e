"""The main() the three iptables modules share (iptables_info, iptables_trace,
sidecar_iptables_audit), through Ansible's argument handling, on saved dumps (``src``)."""

import os

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables import module_support
from ansible_collections.meshops.istio.plugins.modules import iptables_info, iptables_trace, sidecar_iptables_audit

from .module_runner import assert_reported_as_bug, run_module, show_tracebacks

DUMPS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "iptables", "data", "dumps")
ISTIO = os.path.join(DUMPS, "istio-default.nft.save")
INBOUND = {"name": "inbound", "hook": "prerouting", "src": "10.244.2.9", "dst": "10.244.1.5", "dport": 9080}

MAINS = [
    pytest.param(iptables_info.main, {}, id="iptables_info"),
    pytest.param(iptables_trace.main, {"packets": [INBOUND]}, id="iptables_trace"),
    pytest.param(sidecar_iptables_audit.main, {}, id="sidecar_iptables_audit"),
]


def test_info_reads_a_saved_dump_and_changes_nothing():
    result, code = run_module(iptables_info.main, {"src": ISTIO, "tables": ["nat"]}, check_mode=True)
    assert code == 0, result
    assert result["changed"] is False
    assert result["invocation"]["module_args"]["src"] == ISTIO
    assert result["invocation"]["module_args"]["backend"] == "auto"


def test_trace_follows_the_inbound_packet_to_envoy():
    result, code = run_module(iptables_trace.main, {"src": ISTIO, "packets": [INBOUND]})
    assert code == 0, result
    assert result["changed"] is False
    (trace,) = result["traces"]
    assert trace["verdict"]["action"] == "REDIRECT" and trace["verdict"]["to_ports"] == 15006


def test_audit_of_a_saved_istio_dump_is_read_only():
    result, code = run_module(sidecar_iptables_audit.main, {"src": ISTIO})
    assert code == 0, result
    assert result["changed"] is False and result["backend"] == "file"


@pytest.mark.parametrize(("main", "args"), MAINS)
def test_the_source_options_are_mutually_exclusive(main, args):
    result, code = run_module(main, dict(args, src=ISTIO, pid=1))
    assert code == 1 and "mutually exclusive" in result["msg"] and "src" in result["msg"]


@pytest.mark.parametrize(("main", "args"), MAINS)
def test_an_unknown_backend_is_refused_by_the_argument_spec(main, args):
    result, code = run_module(main, dict(args, backend="both"))
    assert code == 1 and "backend" in result["msg"] and "both" in result["msg"]


@pytest.mark.parametrize(("main", "args"), MAINS)
def test_a_missing_dump_is_the_collections_error_naming_the_file(main, args, tmp_path):
    missing = str(tmp_path / "no-such.save")
    result, code = run_module(main, dict(args, src=missing))
    assert code == 1
    assert missing in result["msg"] and "bug" not in result["msg"]


def test_a_bad_packet_names_the_packet_before_anything_is_read(monkeypatch):
    read = []
    monkeypatch.setattr(iptables_trace, "read_from_module", lambda *a, **kw: read.append(a))
    result, code = run_module(iptables_trace.main, {"packets": [dict(INBOUND, dst="10.244.1.500")]})
    assert code == 1 and "10.244.1.500" in result["msg"]
    assert read == []


def test_info_limits_are_checked_before_anything_is_read(monkeypatch):
    read = []
    monkeypatch.setattr(iptables_info, "read_from_module", lambda *a, **kw: read.append(a))
    result, code = run_module(iptables_info.main, {"max_rules": -1})
    assert code == 1 and "max_rules" in result["msg"]
    assert read == []


@pytest.mark.parametrize(("main", "args"), MAINS)
def test_an_unexpected_exception_is_reported_as_a_bug(main, args, monkeypatch):
    def broken_read(*_args, **_kwargs):
        raise KeyError("ready")

    for module in (iptables_info, iptables_trace, sidecar_iptables_audit, module_support):
        monkeypatch.setattr(module, "read_from_module", broken_read)
    show_tracebacks(monkeypatch)
    result, code = run_module(main, dict(args, src=ISTIO))
    assert_reported_as_bug(result, code, "KeyError", "broken_read")
