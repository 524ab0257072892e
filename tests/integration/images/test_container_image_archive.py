"""meshops.istio.container_image_archive(_info) through Ansible against a real containerd v2.4.2:
import, four-way idempotence, check mode and diff, replacement of another image under a name,
mismatched and corrupt archives refused before anything is imported, and the rest of the
namespace left as it was."""

from __future__ import annotations

import gzip
import json
import subprocess

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.images.containerd import Containerd
from tests.image_archives import docker_archive, oci_archive
from tests.integration.images.conftest import ansible_env

OCI_NAME = "registry.example/team/app:1.0"


def module(tmp_path, containerd, args, name="container_image_archive", check=False, diff=False, ctr_args=True):
    """Run the module once on node1 through ``ansible``; return its result."""
    if ctr_args and name == "container_image_archive":
        args = {"ctr": containerd.ctr_path, "address": containerd.address, **args}
    argv = ["ansible", "node1", "-m", f"meshops.istio.{name}", "-a", json.dumps(args)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    proc = subprocess.run(argv, env=ansible_env(tmp_path), capture_output=True, text=True, check=False)
    try:
        output = json.loads(proc.stdout)
    except ValueError as e:
        raise AssertionError(f"ansible printed no JSON: {proc.stdout}\n{proc.stderr}") from e
    return output["plays"][0]["tasks"][0]["hosts"]["node1"]


def node_ids(containerd, names):
    return Containerd(containerd.run, containerd.ctr_path, containerd.address, containerd.namespace).image_ids(names)


@pytest.fixture
def bystander(clean_containerd, tmp_path):
    """An image of another name in the namespace, imported directly: it must never change."""
    built = docker_archive(tmp_path / "bystander.tar", ["bystander:1"], marker="bystander")
    clean_containerd.ctr("images", "import", built.path)
    return clean_containerd.images()["docker.io/library/bystander:1"]


def test_docker_archive_four_way(tmp_path, clean_containerd, bystander):
    ctrd = clean_containerd
    built = docker_archive(tmp_path / "app.tar", ["app:1", "registry.example/team/app:1"])
    names = ["docker.io/library/app:1", "registry.example/team/app:1"]
    args = {"path": built.path}

    predicted = module(tmp_path, ctrd, args, check=True, diff=True)
    assert predicted["changed"] is True
    assert predicted["missing"] == names
    assert "docker.io/library/app:1: (absent)" in predicted["diff"]["before"]
    assert f"docker.io/library/app:1: {built.image_id}" in predicted["diff"]["after"]
    assert node_ids(ctrd, names) == dict.fromkeys(names), "check mode imported something"

    applied = module(tmp_path, ctrd, args, diff=True)
    assert applied["changed"] is True
    assert applied["format"] == "docker-archive"
    assert node_ids(ctrd, names) == dict.fromkeys(names, built.image_id)

    again_check = module(tmp_path, ctrd, args, check=True, diff=True)
    again = module(tmp_path, ctrd, args)
    assert again_check["changed"] is False and again_check["missing"] == []
    assert again_check["diff"]["before"] == again_check["diff"]["after"]
    assert again["changed"] is False
    assert [i["before"] for i in again["images"]] == [built.image_id] * 2

    assert ctrd.images()["docker.io/library/bystander:1"] == bystander
    assert set(ctrd.images()) == {*names, "docker.io/library/bystander:1"}


def test_oci_archive_keeps_its_manifest_and_name(tmp_path, clean_containerd):
    ctrd = clean_containerd
    built = oci_archive(tmp_path / "oci.tar", {"io.containerd.image.name": OCI_NAME})
    assert module(tmp_path, ctrd, {"path": built.path})["changed"] is True
    assert ctrd.images()[OCI_NAME] == built.manifest_digest
    assert node_ids(ctrd, [OCI_NAME]) == {OCI_NAME: built.image_id}
    assert module(tmp_path, ctrd, {"path": built.path})["changed"] is False


def test_oci_multi_platform_index(tmp_path, clean_containerd):
    ctrd = clean_containerd
    built = oci_archive(tmp_path / "oci.tar", {"io.containerd.image.name": OCI_NAME}, index_wrapped=True)
    assert module(tmp_path, ctrd, {"path": built.path})["changed"] is True
    assert ctrd.images()[OCI_NAME] == built.image_id
    assert module(tmp_path, ctrd, {"path": built.path})["changed"] is False


def test_gzip_compressed_archive(tmp_path, clean_containerd):
    built = docker_archive(tmp_path / "app.tar", ["zipped:1"])
    (tmp_path / "app.tar.gz").write_bytes(gzip.compress((tmp_path / "app.tar").read_bytes()))
    args = {"path": str(tmp_path / "app.tar.gz")}
    assert module(tmp_path, clean_containerd, args)["changed"] is True
    assert node_ids(clean_containerd, ["docker.io/library/zipped:1"]) == {"docker.io/library/zipped:1": built.image_id}
    assert module(tmp_path, clean_containerd, args)["changed"] is False


def test_another_image_under_the_name_is_replaced(tmp_path, clean_containerd, bystander):
    ctrd = clean_containerd
    old = docker_archive(tmp_path / "old.tar", ["app:1"], marker="old")
    new = docker_archive(tmp_path / "new.tar", ["app:1"], marker="new")
    module(tmp_path, ctrd, {"path": old.path})

    predicted = module(tmp_path, ctrd, {"path": new.path}, check=True, diff=True)
    assert predicted["changed"] is True
    assert predicted["images"] == [
        {"name": "docker.io/library/app:1", "image_id": new.image_id, "before": old.image_id, "changed": True}
    ]
    assert f"app:1: {old.image_id}" in predicted["diff"]["before"]
    assert node_ids(ctrd, ["docker.io/library/app:1"]) == {"docker.io/library/app:1": old.image_id}

    assert module(tmp_path, ctrd, {"path": new.path})["changed"] is True
    assert node_ids(ctrd, ["docker.io/library/app:1"]) == {"docker.io/library/app:1": new.image_id}
    assert ctrd.images()["docker.io/library/bystander:1"] == bystander


def test_images_option_without_archive(tmp_path, clean_containerd):
    ctrd = clean_containerd
    built = docker_archive(tmp_path / "app.tar", ["app:1"])
    info = module(tmp_path, ctrd, {"path": built.path}, name="container_image_archive_info")
    assert info["images"][0]["name"] == "docker.io/library/app:1"
    images = info["images"]

    predicted = module(tmp_path, ctrd, {"images": images}, check=True)
    assert predicted["changed"] is True and predicted["missing"] == ["docker.io/library/app:1"]
    # check mode with a path that is not there yet (the role copies it only in a real run)
    predicted = module(tmp_path, ctrd, {"images": images, "path": str(tmp_path / "later.tar")}, check=True)
    assert predicted["changed"] is True and predicted["format"] is None

    refused = module(tmp_path, ctrd, {"images": images})
    assert refused.get("failed") and "path is required to import docker.io/library/app:1" in refused["msg"]

    module(tmp_path, ctrd, {"path": built.path, "images": images})
    assert module(tmp_path, ctrd, {"images": images})["changed"] is False


def test_mismatched_archive_is_refused(tmp_path, clean_containerd, bystander):
    ctrd = clean_containerd
    expected = docker_archive(tmp_path / "expected.tar", ["app:1"], marker="expected")
    other = docker_archive(tmp_path / "other.tar", ["app:1"], marker="other")
    images = [{"name": "docker.io/library/app:1", "image_id": expected.image_id}]
    result = module(tmp_path, ctrd, {"path": other.path, "images": images})
    assert result.get("failed")
    assert f"image archive {other.path}: holds" in result["msg"] and "mismatched archive" in result["msg"]
    assert set(ctrd.images()) == {"docker.io/library/bystander:1"}


def test_corrupt_archive_is_refused_before_import(tmp_path, clean_containerd, bystander):
    ctrd = clean_containerd

    def flip(members, manifest):
        layer = manifest[0]["Layers"][0]
        members[layer] = members[layer].replace(b"hello", b"HELLO")

    broken = docker_archive(tmp_path / "broken.tar", ["app:1"], mutate=flip)
    for check in (True, False):
        result = module(tmp_path, ctrd, {"path": broken.path}, check=check)
        assert result.get("failed")
        assert f"image archive {broken.path}" in result["msg"] and "its config expects" in result["msg"]
    assert set(ctrd.images()) == {"docker.io/library/bystander:1"}


def test_info_checks_the_file_sha256(tmp_path, containerd):
    built = docker_archive(tmp_path / "app.tar", ["app:1"])
    good = module(tmp_path, containerd, {"path": built.path}, name="container_image_archive_info")
    assert good["changed"] is False and good["format"] == "docker-archive"
    ok = module(
        tmp_path,
        containerd,
        {"path": built.path, "sha256": "sha256:" + good["sha256"].upper()},
        name="container_image_archive_info",
    )
    assert not ok.get("failed")
    bad = module(tmp_path, containerd, {"path": built.path, "sha256": "0" * 64}, name="container_image_archive_info")
    assert bad.get("failed") and f"has sha256 {good['sha256']}, expected {'0' * 64}" in bad["msg"]
    typo = module(tmp_path, containerd, {"path": built.path, "sha256": "abc"}, name="container_image_archive_info")
    assert typo.get("failed") and "sha256 must be 64 hex digits" in typo["msg"]


def test_no_containerd_at_the_socket(tmp_path, containerd):
    built = docker_archive(tmp_path / "app.tar", ["app:1"])
    result = module(tmp_path, containerd, {"path": built.path, "address": str(tmp_path / "none.sock")}, check=True)
    assert result.get("failed") and "none.sock does not exist; start containerd or set address" in result["msg"]
