"""images/reference.py: RepoTags normalised the way containerd's importer names images, and the
plan that compares an archive with a node."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.images.errors import ImageReferenceError
from ansible_collections.meshops.istio.plugins.module_utils.images.plan import plan
from ansible_collections.meshops.istio.plugins.module_utils.images.reference import (
    is_full_reference,
    normalize,
    validate_full,
)

NORMALIZED = [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.25", "docker.io/library/nginx:1.25"),
    ("istio/proxyv2:1.31.0", "docker.io/istio/proxyv2:1.31.0"),
    ("docker.io/nginx:1", "docker.io/library/nginx:1"),
    ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("registry.example/team/app:v1", "registry.example/team/app:v1"),
    ("registry.example:5000/a/b/c:v1", "registry.example:5000/a/b/c:v1"),
    ("app@sha256:" + "a" * 64, "docker.io/library/app@sha256:" + "a" * 64),
    ("my-app_x:1.0-rc.1", "docker.io/library/my-app_x:1.0-rc.1"),
]


@pytest.mark.parametrize(("given", "expected"), NORMALIZED, ids=[case[0] for case in NORMALIZED])
def test_normalize(given, expected):
    assert normalize(given) == expected


@pytest.mark.parametrize("bad", ["", " app", "App:1", "team/App", "app:bad tag", "app:" + "x" * 200, "-app", "app::1"])
def test_normalize_refuses(bad):
    with pytest.raises(ImageReferenceError):
        normalize(bad)


def test_full_references():
    assert is_full_reference("registry/app:1")
    assert is_full_reference("app:1")
    assert not is_full_reference("1.0")
    assert validate_full("localhost/app:2") == "localhost/app:2"
    with pytest.raises(ImageReferenceError):
        validate_full("Registry/App:1 ")


def test_plan_lists_absent_and_different_images_only():
    wanted = {"a:1": "sha256:aa", "b:1": "sha256:bb", "c:1": "sha256:cc"}
    result = plan(wanted, {"a:1": "sha256:aa", "b:1": "sha256:old", "c:1": None})
    assert result.changed
    assert result.missing == ["b:1", "c:1"]
    diff = result.diff("containerd k8s.io")
    assert diff["before"] == "a:1: sha256:aa\nb:1: sha256:old\nc:1: (absent)\n"
    assert diff["after"] == "a:1: sha256:aa\nb:1: sha256:bb\nc:1: sha256:cc\n"
    assert diff["before_header"] == "containerd k8s.io (before)"
    assert [i["changed"] for i in result.images()] == [False, True, True]


def test_plan_nothing_to_do():
    result = plan({"a:1": "sha256:aa"}, {"a:1": "sha256:aa"})
    assert not result.changed
    assert result.missing == []
