# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write network audit reports on the controller (see the network_audit_report module for docs)."""

from __future__ import annotations

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.meshops.istio.plugins.module_utils.network_audit import htmlreport, render

VALID = {"dest", "node", "report", "dumps", "reports", "formats"}


def _write(path, text):
    """Atomic write; returns True when the content changed."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except OSError:
        pass
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        unknown = set(args) - VALID
        if unknown:
            raise AnsibleActionFail(
                f"network_audit_report: unknown option(s) {sorted(unknown)}; valid: {sorted(VALID)}"
            )
        dest = args.get("dest")
        if not dest:
            raise AnsibleActionFail("network_audit_report: dest (the report directory on the controller) is required")
        formats = args.get("formats") or ["json", "markdown"]
        bad = set(formats) - {"json", "markdown", "html"}
        if bad:
            raise AnsibleActionFail(f"network_audit_report: formats {sorted(bad)} unknown; use json, markdown, html")
        dest = os.path.abspath(os.path.expanduser(dest))
        written = []
        try:
            os.makedirs(dest, exist_ok=True)
            if args.get("reports") is not None:
                summ = render.summary(args["reports"])
                if "json" in formats:
                    path = os.path.join(dest, "summary.json")
                    _write(path, json.dumps(summ, indent=2, sort_keys=True) + "\n")
                    written.append(path)
                if "markdown" in formats:
                    path = os.path.join(dest, "summary.md")
                    _write(path, render.markdown_summary(summ))
                    written.append(path)
                result["summary"] = summ
            else:
                node = args.get("node")
                report = args.get("report")
                if not node or not isinstance(report, dict):
                    raise AnsibleActionFail(
                        "network_audit_report: give node and report (one node), or reports (summary)"
                    )
                dumps_dir = os.path.join(dest, node, "dumps")
                dumps = args.get("dumps") or {}
                if dumps:
                    os.makedirs(dumps_dir, exist_ok=True)
                    for name, text in dumps.items():
                        if os.path.basename(name) != name or name.startswith("."):
                            raise AnsibleActionFail(f"network_audit_report: unsafe dump file name {name!r}")
                        path = os.path.join(dumps_dir, name)
                        _write(path, text)
                        written.append(path)
                if "json" in formats:
                    path = os.path.join(dest, f"{node}.json")
                    _write(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
                    written.append(path)
                if "markdown" in formats:
                    path = os.path.join(dest, f"{node}.md")
                    _write(path, render.markdown_node(report, dumps_dir=f"{node}/dumps"))
                    written.append(path)
                if "html" in formats:
                    path = os.path.join(dest, f"{node}.html")
                    _write(path, htmlreport.html_node(report, dumps_dir=f"{node}/dumps"))
                    written.append(path)
        except OSError as exc:
            raise AnsibleActionFail(
                f"network_audit_report: cannot write the report under {dest} ({exc.strerror}: {exc.filename}); "
                "set network_audit_report_dir to a directory the controller user can write"
            ) from exc
        # Reports are the output of a read-only audit: the managed hosts are never changed, so the
        # task reports changed=false even though files on the controller are (re)written.
        result.update(changed=False, files=written, dest=dest)
        return result
