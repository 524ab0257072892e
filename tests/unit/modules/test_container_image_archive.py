"""container_image_archive and container_image_archive_info main(): through Ansible's argument
handling, on archives built in the test and a stand-in ``ctr`` (a script that logs its argv)."""

import os
import stat

import pytest

from ansible_collections.meshops.istio.plugins.modules import container_image_archive, container_image_archive_info
from tests.image_archives import docker_archive

from .module_runner import assert_reported_as_bug, run_module, show_tracebacks

NAME = "docker.io/library/app:1"

# An empty containerd: "images ls" prints only its header; every call is logged.
FAKE_CTR = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in
  *"images ls"*) echo "REF TYPE DIGEST SIZE PLATFORMS LABELS" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def archive(tmp_path):
    return docker_archive(tmp_path / "app.tar", ["app:1"])


@pytest.fixture
def ctr(tmp_path):
    log = tmp_path / "ctr.log"
    script = tmp_path / "ctr"
    script.write_text(FAKE_CTR.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    socket_path = tmp_path / "containerd.sock"
    socket_path.write_text("")  # only its existence is checked before ctr runs
    return {"ctr": str(script), "address": str(socket_path), "log": log}


def test_info_reads_the_archive_and_changes_nothing(archive):
    result, code = run_module(container_image_archive_info.main, {"path": archive.path}, check_mode=True)
    assert code == 0, result
    assert result["changed"] is False and result["format"] == "docker-archive"
    assert [(i["name"], i["image_id"]) for i in result["images"]] == [(NAME, archive.image_id)]


def test_info_path_is_required_by_the_argument_spec():
    result, code = run_module(container_image_archive_info.main, {})
    assert code == 1 and "path" in result["msg"]


def test_info_bad_sha256_names_the_option(archive):
    result, code = run_module(container_image_archive_info.main, {"path": archive.path, "sha256": "xyz"})
    assert code == 1 and result["msg"].startswith("sha256 must be 64 hex digits")


def test_info_wrong_sha256_names_the_archive_and_the_fix(archive):
    result, code = run_module(container_image_archive_info.main, {"path": archive.path, "sha256": "0" * 64})
    assert code == 1
    assert archive.path in result["msg"] and "expected 000" in result["msg"] and "bug" not in result["msg"]


def test_info_an_unexpected_exception_is_reported_as_a_bug(archive, monkeypatch):
    def broken_read(path):
        raise KeyError("ready")

    monkeypatch.setattr(container_image_archive_info, "read_archive", broken_read)
    show_tracebacks(monkeypatch)
    result, code = run_module(container_image_archive_info.main, {"path": archive.path})
    assert_reported_as_bug(result, code, "KeyError", "broken_read")


def test_check_mode_predicts_the_import_and_runs_only_images_ls(archive, ctr):
    args = {"path": archive.path, "ctr": ctr["ctr"], "address": ctr["address"]}
    result, code = run_module(container_image_archive.main, args, check_mode=True)
    assert code == 0, result
    assert result["changed"] is True and result["missing"] == [NAME]
    calls = ctr["log"].read_text().splitlines()
    assert calls and all(call.endswith("images ls") for call in calls)


def test_path_or_images_is_required_by_the_argument_spec(ctr):
    result, code = run_module(container_image_archive.main, {"ctr": ctr["ctr"], "address": ctr["address"]})
    assert code == 1 and "path" in result["msg"] and "images" in result["msg"]


def test_a_missing_socket_names_it_and_the_fix(archive, tmp_path):
    missing = str(tmp_path / "no.sock")
    result, code = run_module(container_image_archive.main, {"path": archive.path, "address": missing})
    assert code == 1
    assert result["msg"] == f"containerd socket {missing} does not exist; start containerd or set address"


def test_a_failing_ctr_is_the_collections_error_not_a_bug(archive, ctr):
    os.unlink(ctr["ctr"])
    with open(ctr["ctr"], "w") as handle:
        handle.write("#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
    os.chmod(ctr["ctr"], 0o755)
    args = {"path": archive.path, "ctr": ctr["ctr"], "address": ctr["address"]}
    result, code = run_module(container_image_archive.main, args, check_mode=True)
    assert code == 1
    assert "connection refused" in result["msg"] and "bug" not in result["msg"]


def test_an_unexpected_exception_is_reported_as_a_bug(archive, ctr, monkeypatch):
    def broken_plan(wanted, present):
        raise TypeError("ready")

    monkeypatch.setattr(container_image_archive, "plan", broken_plan)
    show_tracebacks(monkeypatch)
    args = {"path": archive.path, "ctr": ctr["ctr"], "address": ctr["address"]}
    result, code = run_module(container_image_archive.main, args, check_mode=True)
    assert_reported_as_bug(result, code, "TypeError", "broken_plan")
