"""The network_audit_report action plugin through ansible-playbook on localhost: its arguments
are validated like a module's, node names never write outside dest, check mode writes nothing,
and changed is true only when a file's content changes."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
REPORT = {"schema_version": 1, "node": {"hostname": "n1"}, "summary": {"worst_severity": None}, "pods": []}


def play(tmp_path, tasks, check=False):
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
    )
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    argv += ["-e", f"ansible_python_interpreter={sys.executable}", str(path)] + (["--check"] if check else [])
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    data = json.loads(proc.stdout)
    return [task["hosts"]["localhost"] for task in data["plays"][0]["tasks"]]


def report_task(dest, **args):
    return {"meshops.istio.network_audit_report": {"dest": str(dest), **args}, "ignore_errors": True}


def all_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("node", ["../escaped", "/tmp/escaped-abs", ".hidden", "a/b", "bad\nname", "", "summary"])
def test_node_names_that_are_not_file_names_are_refused_and_nothing_is_written(tmp_path, node):
    dest = tmp_path / "reports" / "dest"
    (result,) = play(tmp_path, [report_task(dest, node=node, report=REPORT, dumps={"host.nft.rules": "x"})])
    assert result.get("failed"), result
    assert "node" in result["msg"]
    assert not dest.exists() or all_files(dest) == []
    assert all_files(tmp_path / "reports") == []
    assert not os.path.exists("/tmp/escaped-abs.json")


def test_arguments_are_validated_like_a_module(tmp_path):
    dest = tmp_path / "r"
    results = play(
        tmp_path,
        [
            report_task(dest, node="n1", report=REPORT, colour="blue"),
            report_task(dest, node="n1"),
            report_task(dest, node="n1", report=REPORT, reports={"n1": REPORT}),
            report_task(dest, node="n1", report=REPORT, formats=["pdf"]),
            report_task(dest, node="n1", report=REPORT, formats="json"),
        ],
    )
    assert "colour" in results[0]["msg"]
    assert "report" in results[1]["msg"]
    assert "mutually exclusive" in results[2]["msg"]
    assert "pdf" in results[3]["msg"]
    # A string is one format, not the characters j, s, o, n.
    assert not results[4].get("failed"), results[4]
    assert all_files(dest) == ["n1.json"]


def test_check_mode_predicts_apply_changes_second_run_unchanged(tmp_path):
    dest = tmp_path / "r"
    task = report_task(dest, node="n1.example", report=REPORT, dumps={"host.nft.rules": "*nat\nCOMMIT\n"})
    (checked,) = play(tmp_path, [task], check=True)
    assert checked["changed"] and not dest.exists()
    assert len(checked["changed_files"]) == 3
    (applied,) = play(tmp_path, [task])
    assert applied["changed"]
    assert all_files(dest) == ["n1.example.json", "n1.example.md", "n1.example/dumps/host.nft.rules"]
    (again,) = play(tmp_path, [task])
    assert not again["changed"] and again["changed_files"] == []
    (checked_again,) = play(tmp_path, [task], check=True)
    assert not checked_again["changed"]
    changed_report = dict(REPORT, pods=[{"id": "x"}])
    (different,) = play(tmp_path, [report_task(dest, node="n1.example", report=changed_report)])
    assert different["changed"] and different["changed_files"] == [
        str(dest / "n1.example.json"),
        str(dest / "n1.example.md"),
    ]


def test_a_symbolic_link_out_of_dest_is_refused(tmp_path):
    dest = tmp_path / "r"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "n1").symlink_to(outside)
    (result,) = play(tmp_path, [report_task(dest, node="n1", report=REPORT, dumps={"a.rules": "x"})])
    assert result.get("failed") and "outside dest" in result["msg"]
    assert all_files(outside) == []


def test_the_old_module_name_still_works_and_says_it_is_deprecated(tmp_path):
    path = tmp_path / "old.yml"
    task = {"meshops.istio.network_audit_facts": {"dump_timeout": 0}, "ignore_errors": True}
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    argv += ["-e", f"ansible_python_interpreter={sys.executable}", str(path)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    output = " ".join((proc.stdout + proc.stderr).split())
    # Routed to network_audit_info (its option check answers), with a deprecation naming the new name.
    assert "dump_timeout: 0 is out of range" in output, output[-2000:]
    assert "network_audit_info" in output and "deprecat" in output.lower(), output[-2000:]
