"""node_preflight_info's main(): argument handling, errors naming the option, bugs as bugs."""

import platform

from ansible_collections.meshops.istio.plugins.module_utils.preflight import checks
from ansible_collections.meshops.istio.plugins.modules import node_preflight_info

from .module_runner import run_module


def test_reads_without_probing_and_changes_nothing():
    result, code = run_module(node_preflight_info.main, {"probe": False, "required_commands": ["sh"]})
    assert code == 0, result
    assert result["changed"] is False
    assert result["python"]["version"] == platform.python_version()
    assert result["iptables"]["nat_table"] is None
    assert result["invocation"]["module_args"]["min_python_version"] == "3.9"


def test_bad_type_is_refused_by_the_argument_spec():
    result, code = run_module(node_preflight_info.main, {"probe": "perhaps"})
    assert code == 1 and "probe" in result["msg"]


def test_unknown_extension_is_refused_by_the_argument_spec():
    result, code = run_module(node_preflight_info.main, {"iptables_extensions": ["owner", "TPROXY"]})
    assert code == 1 and "iptables_extensions" in result["msg"] and "TPROXY" in result["msg"]


def test_bad_minimum_python_names_the_option_before_anything_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(checks.NodeProbe, "gather", lambda self, **kw: calls.append(kw))
    result, code = run_module(node_preflight_info.main, {"min_python_version": "three"})
    assert code == 1
    assert result["msg"] == "min_python_version 'three' is not a dotted version number; give one like 3.9"
    assert calls == []


def test_an_unexpected_exception_is_reported_as_a_bug_with_the_traceback_apart(monkeypatch):
    def broken(observations, min_python_version):
        raise KeyError("ready")

    monkeypatch.setattr(node_preflight_info, "evaluate", broken)
    # ansible-core 2.19 returns the traceback only when the controller asks for it
    # (ANSIBLE_DISPLAY_TRACEBACK=error); older releases always return it (shown at -vvv).
    try:
        from ansible.module_utils._internal import _traceback
    except ImportError:
        pass
    else:
        monkeypatch.setattr(_traceback, "_is_traceback_enabled", lambda event: True)
    result, code = run_module(node_preflight_info.main, {"probe": False})
    assert code == 1
    assert "bug in meshops.istio" in result["msg"] and "KeyError" in result["msg"]
    assert "Traceback" not in result["msg"]
    assert "Traceback" in result["exception"] and "broken" in result["exception"]
