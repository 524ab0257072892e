"""The Kubernetes client wrapper fails cleanly: a server that never answers times out with its
address in the message, a kubeconfig that is not one is refused naming the option."""

import threading
import time

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.istio.plugins.module_utils.k8s import client
from tests.support.loopback_api import SilentServer, UnauthorizedServer


def kubeconfig_for(tmp_path, server):
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
        f"clusters: [{{name: lab, cluster: {{server: '{server}'}}}}]\n"
        "contexts: [{name: lab, context: {cluster: lab, user: lab}}]\n"
        "users: [{name: lab, user: {token: not-a-real-token}}]\n"
    )
    return str(path)


@pytest.fixture(autouse=True)
def fresh_client_cache():
    client._CLIENTS.clear()
    yield
    client._CLIENTS.clear()


def outcome_within(seconds, func, *args):
    """Run ``func`` in a thread; a call still running after ``seconds`` fails the test instead of
    hanging the suite (the defect under test is a hang)."""
    box = {}

    def call():
        try:
            box["value"] = func(*args)
        except Exception as exc:
            box["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting after {seconds} s: the request has no timeout"
    return box


@pytest.mark.parametrize("timeout", [1, 1.5])
def test_silent_server_times_out_naming_the_server(tmp_path, timeout):
    with SilentServer() as server:
        started = time.monotonic()
        box = outcome_within(
            timeout * 3 + 5,
            client.get_client,
            {"kubeconfig": kubeconfig_for(tmp_path, server.url), "request_timeout": timeout},
        )
        elapsed = time.monotonic() - started
        assert server.accepted, "the client never connected: the test proves nothing"
    assert isinstance(box.get("error"), client.K8sError), box
    message = str(box["error"])
    assert server.url in message
    assert f"did not answer within {timeout:g} s" in message
    assert "request_timeout" in message
    # One attempt, not urllib3's default retries of it.
    assert elapsed < timeout * 2 + 1


def test_silent_server_reached_through_host_option():
    with SilentServer() as server:
        box = outcome_within(10, client.get_client, {"host": server.url, "api_key": "x", "request_timeout": 1})
    assert "did not answer within 1 s" in str(box.get("error"))


def test_default_timeout_applies_when_unset():
    assert client.auth_params({})["request_timeout"] == client.DEFAULT_REQUEST_TIMEOUT


def test_refused_discovery_names_the_server(tmp_path):
    with UnauthorizedServer() as server, pytest.raises(client.K8sError) as raised:
        client.get_client({"host": server.url, "api_key": "x", "request_timeout": 2})
    assert server.url in str(raised.value) and "401" in str(raised.value)


def test_impersonation_headers_reach_the_server():
    with UnauthorizedServer() as server, pytest.raises(client.K8sError):
        client.get_client(
            {
                "host": server.url,
                "api_key": "x",
                "impersonate_user": "alice",
                "impersonate_groups": ["team-a", "team-b"],
                "request_timeout": 2,
            }
        )
    headers = server.requests[0][2]
    assert ("Impersonate-User", "alice") in headers
    assert [value for name, value in headers if name == "Impersonate-Group"] == ["team-a", "team-b"]
    assert ("authorization", "Bearer x") in [(name.lower(), value) for name, value in headers]


BAD_FILES = [
    ("not-yaml", b"apiVersion: v1\nclusters: [unclosed\n", "is not valid YAML at line"),
    ("a-list", b"- one\n- two\n", "is a list, not a mapping"),
    ("a-string", b"just some words\n", "is a str, not a mapping"),
    ("empty", b"", "is empty, not a mapping"),
    ("binary", bytes(range(256)) * 4, "is not a text file"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_kubeconfig_file_that_is_not_a_kubeconfig(tmp_path, content, expected):
    path = tmp_path / "kubeconfig"
    path.write_bytes(content)
    with pytest.raises(client.K8sError) as raised:
        client.get_client({"kubeconfig": str(path)})
    assert f"kubeconfig {path}" in str(raised.value)
    assert expected in str(raised.value)
    assert isinstance(raised.value, MeshopsError)


def test_missing_kubeconfig_file(tmp_path):
    with pytest.raises(client.K8sError, match="does not exist; set kubeconfig"):
        client.get_client({"kubeconfig": str(tmp_path / "absent")})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["a", "list"], "kubeconfig is a list, not a mapping"),
        (42, "kubeconfig is a int, not a mapping"),
        ("apiVersion: v1\nkind: Config\nusers: [{user: {token: SECRET}}]\n", "kubeconfig is text"),
        ('{"apiVersion": "v1", "users": [{"user": {"token": "SECRET"}}]}', "kubeconfig is text"),
        ("  {users: [{name: u, user: {token: SECRET}}]}", "kubeconfig is text"),
        ('[{"user": {"token": "SECRET"}}]', "kubeconfig is text"),
    ],
    ids=["list", "number", "yaml-text", "json-one-line", "yaml-flow-one-line", "json-list-one-line"],
)
def test_inline_kubeconfig_that_is_not_a_mapping(value, expected):
    with pytest.raises(client.K8sError) as raised:
        client.get_client({"kubeconfig": value})
    assert expected in str(raised.value)
    assert "SECRET" not in str(raised.value)
