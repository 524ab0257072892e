# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base of meshops.istio's own errors, and how a module turns an error into a failure.

module_utils raise a subclass of ``MeshopsError`` whose message names the option or object and
the fix; a module wraps its work in ``run_module`` so that

* a ``MeshopsError`` becomes ``fail_json(msg=<that message>)`` (the traceback of its cause, if
  any, goes to ``exception``, shown at -vvv), with the error's ``result`` fields beside it;
* anything else is a bug of the collection and says so in the message, with the traceback in
  ``exception``, never as the message.

No Ansible imports: ``module`` is the caller's AnsibleModule.
"""

import traceback


class MeshopsError(Exception):
    """An error the user can fix; the message says what is wrong and what to do. A subclass may
    set ``result``: fields the failed module returns beside ``msg`` (what a playbook may act on)."""


def bug_message(module_name, exc):
    return (
        f"{module_name} failed on an unexpected {type(exc).__name__} ({exc}): this is a bug in meshops.istio, "
        "please report it with the traceback (run with -vvv to see it)"
    )


def run_module(module, work, module_name):
    """``work()`` returns the result dict for ``exit_json``; errors become ``fail_json``."""
    try:
        result = work()
    except MeshopsError as exc:
        module.fail_json(msg=str(exc), exception=traceback.format_exc(), **(getattr(exc, "result", None) or {}))
    except Exception as exc:  # every other exception is a bug: say so, keep the traceback out of msg
        module.fail_json(msg=bug_message(module_name, exc), exception=traceback.format_exc())
    return result
