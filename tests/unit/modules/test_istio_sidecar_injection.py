"""istio_sidecar_injection's main(): argument handling and input refused before any change."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.k8s import client
from ansible_collections.meshops.istio.plugins.modules import istio_sidecar_injection
from tests.support.loopback_api import UnauthorizedServer

from .module_runner import run_module


@pytest.fixture(autouse=True)
def fresh_clients():
    client._CLIENTS.clear()
    yield
    client._CLIENTS.clear()


def test_namespace_mode_needs_namespaces():
    result, code = run_module(istio_sidecar_injection.main, {"mode": "namespace"})
    assert code == 1 and "namespaces" in result["msg"]


def test_src_and_definition_are_exclusive(tmp_path):
    result, code = run_module(
        istio_sidecar_injection.main, {"mode": "manifest", "src": str(tmp_path), "definition": "kind: Pod"}
    )
    assert code == 1 and "mutually exclusive" in result["msg"] and "src" in result["msg"]


@pytest.fixture
def offline(tmp_path):
    for name in ("inject.yaml", "mesh.yaml"):
        (tmp_path / name).write_text("{}\n")
    return {
        "mode": "manifest",
        "injector_config": "files",
        "inject_config_file": str(tmp_path / "inject.yaml"),
        "mesh_config_file": str(tmp_path / "mesh.yaml"),
        "istioctl_path": "/bin/false",
        "check_version": False,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)), "is not a text file (byte 128 is not UTF-8); give a YAML manifest"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not a text file"),
        (b"kind: [unclosed\n", "is not valid YAML"),
        (b"- just\n- a list\n", "every document must be a Kubernetes object"),
    ],
    ids=["binary", "png", "not-yaml", "not-objects"],
)
def test_manifest_that_is_not_one_is_refused_naming_the_file(tmp_path, offline, content, message):
    src = tmp_path / "manifest.yaml"
    src.write_bytes(content)
    result, code = run_module(istio_sidecar_injection.main, dict(offline, src=str(src)))
    assert code == 1
    assert f"src {src}" in result["msg"] and message in result["msg"]
    assert "bug" not in result["msg"]


def test_refused_api_names_the_server_and_masks_the_api_key():
    with UnauthorizedServer() as server:
        result, code = run_module(
            istio_sidecar_injection.main,
            {"mode": "namespace", "namespaces": ["jiuxi"], "host": server.url, "api_key": "key-secret-987654321"},
        )
    assert code == 1
    assert f"the Kubernetes API at {server.url} refused discovery" in result["msg"]
    assert "key-secret-987654321" not in repr(result)
    assert result["invocation"]["module_args"]["api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
