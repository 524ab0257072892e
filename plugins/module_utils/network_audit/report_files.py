"""Where the audit's report files go on the controller, and writing them (used by the
network_audit_report action plugin).

:func:`node_file_name` turns an inventory host name into a file name or refuses it: a name with a
path separator, a NUL or control character, a leading dot, or over 200 characters is refused
(naming it), so nothing is ever written outside ``dest``; so is ``summary``, whose files would be
the cluster summary's. :func:`plan` returns
``[(path, text)]``; :func:`apply` writes the files whose content differs (atomically) and returns
the paths that changed; in check mode nothing is written and the same list is predicted.
"""

import json
import os
import tempfile

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import htmlreport, render

FORMATS = ("json", "markdown", "html")
MAX_NAME = 200
SUMMARY_NAMES = ("summary",)


class ReportError(MeshopsError):
    """A report cannot be written; the message names the option or the path, and the fix."""


def node_file_name(node, field="node"):
    if not isinstance(node, str) or not node.strip():
        raise ReportError(f"{field}: {node!r} is not a node name; give the inventory host name")
    bad = [c for c in node if c in "/\\\0" or ord(c) < 32 or ord(c) == 127]
    if bad or node.startswith(".") or len(node) > MAX_NAME:
        raise ReportError(
            f"{field}: {node!r} cannot be used as a file name (no '/', '\\\\', control characters or leading "
            f"'.', at most {MAX_NAME} characters); rename the inventory host or give node a plain name"
        )
    if node in SUMMARY_NAMES:
        raise ReportError(
            f"{field}: {node!r} is the name of the cluster summary's files (summary.json, summary.md) in dest, "
            "so one report would overwrite the other; rename the inventory host or give node another name"
        )
    return node


def _inside(dest, path):
    real_dest = os.path.realpath(dest)
    real = os.path.realpath(path)
    if os.path.commonpath([real_dest, real]) != real_dest:
        raise ReportError(f"{path} would be written outside dest {dest} (through a symbolic link?); nothing written")
    return path


def plan(dest, formats, node=None, report=None, dumps=None, reports=None):
    """Files to write: [(path, text)]; the summary (with ``reports``) comes back as the 2nd value."""
    files = []
    summary = None
    if reports is not None:
        for name in reports:
            node_file_name(name, "reports key")
        summary = render.summary(reports)
        if "json" in formats:
            files.append((os.path.join(dest, "summary.json"), json.dumps(summary, indent=2, sort_keys=True) + "\n"))
        if "markdown" in formats:
            files.append((os.path.join(dest, "summary.md"), render.markdown_summary(summary)))
        return files, summary
    name = node_file_name(node)
    dumps_dir = os.path.join(dest, name, "dumps")
    for dump_name, text in (dumps or {}).items():
        if os.path.basename(dump_name) != dump_name or dump_name.startswith(".") or not dump_name:
            raise ReportError(f"dumps: unsafe dump file name {dump_name!r}; nothing written")
        files.append((os.path.join(dumps_dir, dump_name), text))
    if "json" in formats:
        files.append((os.path.join(dest, f"{name}.json"), json.dumps(report, indent=2, sort_keys=True) + "\n"))
    if "markdown" in formats:
        files.append((os.path.join(dest, f"{name}.md"), render.markdown_node(report, dumps_dir=f"{name}/dumps")))
    if "html" in formats:
        files.append((os.path.join(dest, f"{name}.html"), htmlreport.html_node(report, dumps_dir=f"{name}/dumps")))
    return files, summary


def _differs(path, text):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read() != text
    except OSError:
        return True


def _write(path, text):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
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


def apply(dest, files, check_mode=False):
    """Write the files that differ; returns the changed (or, in check mode, would-change) paths."""
    for path, _text in files:
        _inside(dest, path)
    changed = [path for path, text in files if _differs(path, text)]
    if not check_mode:
        for path, text in files:
            if path in changed:
                _write(path, text)
    return changed
