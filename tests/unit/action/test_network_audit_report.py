"""The network_audit_report action plugin's run(), called directly with its task arguments (the
plugin's counterpart of a module's set_module_args tests): arguments validated like a module's,
node names that are not file names refused, nothing written in check mode, changed only when a
file's content differs. tests/integration/network_audit/test_report_plugin.py runs it through
ansible-playbook."""

import os
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.meshops.istio.plugins.action.network_audit_report import ActionModule

REPORT = {"schema_version": 1, "node": {"hostname": "n1"}, "summary": {"worst_severity": None}, "pods": []}


def run_action(args, check_mode=False):
    task = SimpleNamespace(
        args=dict(args), check_mode=check_mode, async_val=0, action="meshops.istio.network_audit_report"
    )
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="/nonexistent"))  # never used: no connection
    action = ActionModule(task, connection, play_context=None, loader=None, templar=None)
    return action.run(task_vars={})


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"node": "n1", "report": REPORT, "colour": "blue"}, "colour"),
        ({"node": "n1"}, "report"),
        ({"report": REPORT}, "node"),
        ({"node": "n1", "report": REPORT, "reports": {"n1": REPORT}}, "mutually exclusive"),
        ({"node": "n1", "report": REPORT, "formats": ["pdf"]}, "pdf"),
        ({"node": "n1", "report": "not a dict"}, "report"),
    ],
    ids=["unknown-option", "node-without-report", "report-without-node", "both-uses", "bad-format", "bad-type"],
)
def test_arguments_are_validated_like_a_module(tmp_path, args, named):
    with pytest.raises(AnsibleActionFail) as failure:
        run_action(dict(args, dest=str(tmp_path / "r")))
    assert named in str(failure.value)
    assert not (tmp_path / "r").exists()


def test_a_string_format_is_one_format_not_its_characters(tmp_path):
    result = run_action({"dest": str(tmp_path), "node": "n1", "report": REPORT, "formats": "json"})
    assert result["files"] == [str(tmp_path / "n1.json")]
    assert files_under(tmp_path) == ["n1.json"]


@pytest.mark.parametrize("node", ["../escaped", "/tmp/escaped-abs", ".hidden", "a/b", "bad\nname", ""])
def test_node_names_that_are_not_file_names_are_refused_before_anything_is_written(tmp_path, node):
    dest = tmp_path / "reports" / "dest"
    with pytest.raises(AnsibleActionFail) as failure:
        run_action({"dest": str(dest), "node": node, "report": REPORT, "dumps": {"host.nft.rules": "x"}})
    assert "node" in str(failure.value)
    assert files_under(tmp_path) == []


def test_a_reports_key_that_is_not_a_file_name_is_refused(tmp_path):
    with pytest.raises(AnsibleActionFail) as failure:
        run_action({"dest": str(tmp_path), "reports": {"../n1": REPORT}})
    assert "reports key" in str(failure.value)
    assert files_under(tmp_path) == []


def test_check_mode_predicts_apply_changes_a_second_run_is_unchanged(tmp_path):
    dest = tmp_path / "r"
    args = {"dest": str(dest), "node": "n1", "report": REPORT, "dumps": {"host.nft.rules": "*nat\nCOMMIT\n"}}
    checked = run_action(args, check_mode=True)
    assert checked["changed"] is True and not dest.exists()
    expected = sorted([str(dest / "n1.json"), str(dest / "n1.md"), str(dest / "n1" / "dumps" / "host.nft.rules")])
    assert sorted(checked["changed_files"]) == expected

    applied = run_action(args)
    assert applied["changed"] is True and sorted(applied["changed_files"]) == expected
    assert files_under(dest) == ["n1.json", "n1.md", "n1/dumps/host.nft.rules"]

    assert run_action(args, check_mode=True)["changed"] is False
    again = run_action(args)
    assert again["changed"] is False and again["changed_files"] == []

    changed_report = dict(REPORT, pods=[{"name": "p"}])
    changed = run_action(dict(args, report=changed_report), check_mode=True)
    assert changed["changed_files"] == [str(dest / "n1.json"), str(dest / "n1.md")]


def test_the_cluster_summary_is_written_once(tmp_path):
    args = {"dest": str(tmp_path), "reports": {"n1": REPORT, "n2": dict(REPORT, node={"hostname": "n2"})}}
    first = run_action(args)
    assert first["changed"] is True and files_under(tmp_path) == ["summary.json", "summary.md"]
    assert "summary" in first
    assert run_action(args)["changed"] is False


def test_a_symbolic_link_out_of_dest_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "n1")
    with pytest.raises(AnsibleActionFail) as failure:
        run_action({"dest": str(dest), "node": "n1", "report": REPORT, "dumps": {"host.nft.rules": "x"}})
    assert "outside dest" in str(failure.value)
    assert files_under(outside) == []


def test_a_directory_that_cannot_be_written_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    dest = blocker / "reports"  # below a regular file: cannot be created, even by root
    with pytest.raises(AnsibleActionFail) as failure:
        run_action({"dest": str(dest), "node": "n1", "report": REPORT})
    assert str(dest) in str(failure.value) and "network_audit_report_dir" in str(failure.value)
