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
