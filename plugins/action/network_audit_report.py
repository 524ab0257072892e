# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write network audit reports on the controller (see the network_audit_report module for docs)."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.meshops.istio.plugins.module_utils.network_audit import report_files

ARGUMENT_SPEC = {
    "dest": {"type": "path", "required": True},
    "node": {"type": "str"},
    "report": {"type": "dict"},
    "dumps": {"type": "dict", "default": {}},
    "reports": {"type": "dict"},
    "formats": {
        "type": "list",
        "elements": "str",
        "choices": list(report_files.FORMATS),
        "default": ["json", "markdown"],
    },
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # Checked like a module's arguments: types, choices, unknown options, one of the two uses.
        _validation, args = self.validate_argument_spec(
            argument_spec=ARGUMENT_SPEC,
            mutually_exclusive=[["node", "reports"], ["report", "reports"]],
            required_one_of=[["node", "reports"]],
            required_together=[["node", "report"]],
        )
        dest = os.path.abspath(os.path.expanduser(args["dest"]))
        check_mode = bool(self._task.check_mode)
        try:
            files, summary = report_files.plan(
                dest,
                args["formats"],
                node=args.get("node"),
                report=args.get("report"),
                dumps=args.get("dumps"),
                reports=args.get("reports"),
            )
            changed = report_files.apply(dest, files, check_mode=check_mode)
        except report_files.ReportError as exc:
            raise AnsibleActionFail(f"network_audit_report: {exc}") from exc
        except OSError as exc:
            raise AnsibleActionFail(
                f"network_audit_report: cannot write the report under {dest} ({exc.strerror}: {exc.filename}); "
                "set network_audit_report_dir to a directory the controller user can write"
            ) from exc
        if summary is not None:
            result["summary"] = summary
        # changed: a file's content differs (check mode predicts it and writes nothing).
        result.update(changed=bool(changed), files=[path for path, _text in files], changed_files=changed, dest=dest)
        return result
