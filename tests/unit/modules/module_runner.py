"""Run a module's main() through Ansible's real argument handling (kubernetes.core's
set_module_args pattern) and return what it printed: the module's JSON result, invocation
included, exactly as Ansible would read it."""

import contextlib
import io
import json

import pytest
from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


def run_module(main, args, check_mode=False):
    """(result dict, exit code) of ``main()`` called with ``args``."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_remote_tmp="/tmp", _ansible_keep_remote_files=False)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main()
    return json.loads(out.getvalue()), exited.value.code


def show_tracebacks(monkeypatch):
    """ansible-core 2.19 returns a failure's traceback only when the controller asks for it
    (ANSIBLE_DISPLAY_TRACEBACK=error); older releases always return it (shown at -vvv)."""
    try:
        from ansible.module_utils._internal import _traceback
    except ImportError:
        return
    monkeypatch.setattr(_traceback, "_is_traceback_enabled", lambda event: True)


def assert_reported_as_bug(result, code, exception_name, function_name):
    """A failure that says it is a bug of the collection, with the traceback apart from the message."""
    assert code == 1, result
    assert "bug in meshops.istio" in result["msg"] and exception_name in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert "Traceback" in result["exception"] and function_name in result["exception"]
