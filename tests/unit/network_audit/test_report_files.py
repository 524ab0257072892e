"""report_files: node names become file names inside dest or are refused naming the option;
nothing is planned outside dest, and no node's report can overwrite the cluster summary."""

import os

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.network_audit import report_files

REPORT = {"schema_version": 1, "node": {"hostname": "n1"}, "summary": {"worst_severity": None}, "pods": []}


@pytest.mark.parametrize(
    "node",
    ["n1", "node-1.example.com", "w2_lab", "kwok-node-0", "UPPER", "a b", "n" * report_files.MAX_NAME, "Summary"],
)
def test_plain_names_are_used_as_they_are(node):
    assert report_files.node_file_name(node) == node


@pytest.mark.parametrize(
    ("node", "why"),
    [
        ("../x", "cannot be used as a file name"),
        ("/etc/passwd", "cannot be used as a file name"),
        ("a/b", "cannot be used as a file name"),
        ("a\\b", "cannot be used as a file name"),
        (".", "cannot be used as a file name"),
        ("..", "cannot be used as a file name"),
        (".hidden", "cannot be used as a file name"),
        ("tab\tname", "cannot be used as a file name"),
        ("nul\0name", "cannot be used as a file name"),
        ("del\x7f", "cannot be used as a file name"),
        ("n" * (report_files.MAX_NAME + 1), "at most 200 characters"),
        ("", "is not a node name"),
        ("   ", "is not a node name"),
        (None, "is not a node name"),
        (42, "is not a node name"),
        ("summary", "is the name of the cluster summary's files"),
    ],
)
def test_names_that_are_not_file_names_are_refused(node, why):
    with pytest.raises(report_files.ReportError, match=r"^node: ") as raised:
        report_files.node_file_name(node)
    assert why in str(raised.value)


def test_a_summary_key_that_is_not_a_file_name_is_refused(tmp_path):
    for key in ("../x", "summary"):
        with pytest.raises(report_files.ReportError, match=r"^reports key: "):
            report_files.plan(str(tmp_path), ["json"], reports={key: REPORT, "n1": REPORT})


def test_every_planned_file_is_inside_dest(tmp_path):
    dest = str(tmp_path / "reports")
    files, _summary = report_files.plan(
        dest, ["json", "markdown", "html"], node="n1", report=REPORT, dumps={"host.nft.rules": "*nat\nCOMMIT\n"}
    )
    assert files and all(os.path.commonpath([dest, path]) == dest for path, _text in files)
    for bad in ("../x.rules", ".x", "", "a/b"):
        with pytest.raises(report_files.ReportError, match="unsafe dump file name"):
            report_files.plan(dest, ["json"], node="n1", report=REPORT, dumps={bad: "x"})
