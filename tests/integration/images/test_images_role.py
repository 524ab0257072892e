"""The role meshops.istio.images through ansible-playbook against localhost (connection local) and
a real containerd v2.4.2: check mode predicts and leaves containerd and the node's disk alone, the
run imports a controller archive and a URL archive (sha256-checked), copies them only where
needed and removes its copies, a second run changes nothing, and bad input or a broken archive
fails before any node is touched."""

from __future__ import annotations

import hashlib
import json
import subprocess

import yaml

from tests.image_archives import docker_archive, oci_archive
from tests.integration.images.conftest import ansible_env

OCI_NAME = "registry.example/team/tool:2.0"


def playbook(tmp_path, containerd, archives, *flags):
    play = [
        {
            "name": "Load image archives",
            "hosts": "node1",
            "gather_facts": False,
            "roles": [
                {
                    "role": "meshops.istio.images",
                    "vars": {
                        "images_archives": archives,
                        "images_ctr": containerd.ctr_path,
                        "images_containerd_socket": containerd.address,
                        "images_node_tmp_dir": str(tmp_path / "node-tmp"),
                        "images_controller_cache_dir": str(tmp_path / "cache"),
                    },
                }
            ],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    proc = subprocess.run(
        ["ansible-playbook", str(path), *flags], env=ansible_env(tmp_path), capture_output=True, text=True, check=False
    )
    try:
        output = json.loads(proc.stdout)
    except ValueError as e:
        raise AssertionError(f"ansible-playbook printed no JSON: {proc.stdout}\n{proc.stderr}") from e
    output["rc"] = proc.returncode
    return output


def task_results(output, name):
    # tasks of a role are named "<role> : <task>"
    return [t["hosts"]["node1"] for t in output["plays"][0]["tasks"] if t["task"]["name"].endswith(f" : {name}")]


def test_role_four_way(tmp_path, clean_containerd):
    ctrd = clean_containerd
    (tmp_path / "node-tmp").mkdir()
    local = docker_archive(tmp_path / "local.tar", ["app:1"])
    remote = oci_archive(tmp_path / "remote.tar", {"io.containerd.image.name": OCI_NAME})
    remote_sha = hashlib.sha256((tmp_path / "remote.tar").read_bytes()).hexdigest()
    archives = [{"src": local.path}, {"url": f"file://{remote.path}", "sha256": remote_sha}]
    expected = {"docker.io/library/app:1", OCI_NAME}

    check = playbook(tmp_path, ctrd, archives, "--check", "--diff")
    assert check["rc"] == 0, check
    assert check["stats"]["node1"]["changed"] >= 2
    diffs = [r["diff"] for r in task_results(check, "Import the missing images into containerd")]
    assert any("docker.io/library/app:1: (absent)" in d["before"] for d in diffs)
    assert ctrd.images() == {}, "check mode imported something"
    assert list((tmp_path / "node-tmp").iterdir()) == []

    run = playbook(tmp_path, ctrd, archives)
    assert run["rc"] == 0, run
    assert run["stats"]["node1"]["changed"] > 0
    assert set(ctrd.images()) == expected
    assert ctrd.images()[OCI_NAME] == remote.manifest_digest
    assert list((tmp_path / "node-tmp").iterdir()) == [], "the node's copies were not removed"
    assert (tmp_path / "cache" / f"{remote_sha}.tar").is_file()

    for flags in (("--check", "--diff"), ()):
        again = playbook(tmp_path, ctrd, archives, *flags)
        assert again["rc"] == 0, again
        assert again["stats"]["node1"]["changed"] == 0, again["stats"]
        copies = task_results(again, "Copy the archive to the node")
        assert len(copies) == 2 and all(c.get("skipped") for c in copies), "the archive was copied again"
        assert len(task_results(again, "Compare the node's containerd with the archive")) == 2
    assert set(ctrd.images()) == expected


def test_role_imports_an_archive_staged_on_the_node_in_place(tmp_path, clean_containerd):
    """node_path: the archive is already on the node (a shared mount); it is read there, imported
    from where it is, never copied, and left in place."""
    ctrd = clean_containerd
    (tmp_path / "node-tmp").mkdir()
    (tmp_path / "staged").mkdir()
    staged = docker_archive(tmp_path / "staged" / "app.tar", ["app:2"])
    staged_sha = hashlib.sha256((tmp_path / "staged" / "app.tar").read_bytes()).hexdigest()
    archives = [{"node_path": staged.path, "sha256": staged_sha}]

    check = playbook(tmp_path, ctrd, archives, "--check", "--diff")
    assert check["rc"] == 0, check
    assert check["stats"]["node1"]["changed"] == 1, check["stats"]
    assert ctrd.images() == {}, "check mode imported something"

    run = playbook(tmp_path, ctrd, archives)
    assert run["rc"] == 0, run
    assert set(ctrd.images()) == {"docker.io/library/app:2"}
    assert task_results(run, "Read and validate the archive on the controller")[0].get("skipped")
    assert all(c.get("skipped") for c in task_results(run, "Copy the archive to the node"))
    assert list((tmp_path / "node-tmp").iterdir()) == [], "a staged archive was copied"
    assert hashlib.sha256((tmp_path / "staged" / "app.tar").read_bytes()).hexdigest() == staged_sha

    for flags in (("--check", "--diff"), ()):
        again = playbook(tmp_path, ctrd, archives, *flags)
        assert again["rc"] == 0 and again["stats"]["node1"]["changed"] == 0, again["stats"]

    wrong = playbook(tmp_path, ctrd, [{"node_path": staged.path, "sha256": "2" * 64}])
    assert wrong["rc"] != 0 and "expected " + "2" * 64 in json.dumps(wrong)
    missing = playbook(tmp_path, ctrd, [{"node_path": str(tmp_path / "staged" / "absent.tar")}])
    assert missing["rc"] != 0 and "absent.tar" in json.dumps(missing)
    assert set(ctrd.images()) == {"docker.io/library/app:2"}


def test_role_refuses_bad_input_before_any_task(tmp_path, clean_containerd):
    local = docker_archive(tmp_path / "local.tar", ["app:1"])
    for archives, words in (
        ([{"url": "file:///nowhere.tar"}], "missing parameter(s) required by 'url': sha256"),
        ([{"src": local.path, "url": "file:///x.tar", "sha256": "0" * 64}], "mutually exclusive: src|url|node_path"),
        ([{"sha256": "0" * 64}], "one of the following is required: src, url, node_path"),
        ([{"src": local.path, "node_path": "/srv/images/local.tar"}], "mutually exclusive: src|url|node_path"),
    ):
        out = playbook(tmp_path, clean_containerd, archives)
        assert out["rc"] != 0
        assert words in json.dumps(out), out
    assert clean_containerd.images() == {}


def test_role_stops_at_a_broken_or_mismatched_archive(tmp_path, clean_containerd):
    (tmp_path / "node-tmp").mkdir()

    def drop_layer(members, manifest):
        del members[manifest[0]["Layers"][0]]

    broken = docker_archive(tmp_path / "broken.tar", ["app:1"], mutate=drop_layer)
    out = playbook(tmp_path, clean_containerd, [{"src": broken.path}])
    assert out["rc"] != 0
    assert f"image archive {broken.path}" in json.dumps(out) and "is missing" in json.dumps(out)

    good = docker_archive(tmp_path / "good.tar", ["app:1"])
    out = playbook(tmp_path, clean_containerd, [{"src": good.path, "sha256": "1" * 64}])
    assert out["rc"] != 0 and "expected " + "1" * 64 in json.dumps(out)

    assert clean_containerd.images() == {}
    assert list((tmp_path / "node-tmp").iterdir()) == []
