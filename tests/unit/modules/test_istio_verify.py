"""istio_verify's main(): argument handling, refusals before any request, a real pass against a
loopback web server, secrets masked in the printed result, a hung API named."""

import http.server
import threading

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.k8s import client
from ansible_collections.meshops.istio.plugins.modules import istio_verify
from tests.support.loopback_api import SilentServer

from .module_runner import run_module


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits += 1
        body = b"<html><title>Simple Bookstore App</title></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def page():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    httpd.hits = 0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def fresh_clients():
    client._CLIENTS.clear()
    yield
    client._CLIENTS.clear()


def http_args(page, **http):
    return {"checks": ["http"], "ingress": {"host": "127.0.0.1", "port": page.server_address[1]}, "http": http}


def test_http_check_passes_on_a_real_answer(page):
    result, code = run_module(istio_verify.main, http_args(page), check_mode=True)
    assert code == 0, result
    assert result["passed"] is True and result["changed"] is False
    assert result["report"]["http"]["attempts"] == 1 and page.hits == 1


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ({"retries": -1}, "http.retries is -1: it must be at least 0"),
        ({"retries": -1, "delay": 0}, "http.retries is -1"),
        ({"timeout": 0}, "http.timeout is 0: it must be more than 0"),
        ({"status": []}, "http.status [] must list HTTP status codes"),
    ],
)
def test_bad_counts_fail_before_any_request(page, http, message):
    result, code = run_module(istio_verify.main, http_args(page, **http))
    assert code == 1 and message in result["msg"]
    assert page.hits == 0
    assert result.get("passed") is not True


def test_unknown_check_is_refused_by_the_argument_spec():
    result, code = run_module(istio_verify.main, {"checks": ["http", "latency"]})
    assert code == 1 and "checks" in result["msg"] and "latency" in result["msg"]


def test_wrong_type_in_a_suboption_names_it(page):
    result, code = run_module(istio_verify.main, http_args(page, retries="many"))
    assert code == 1 and "retries" in result["msg"]


def test_hung_api_fails_naming_the_server_and_keeps_the_inline_credentials_masked():
    with SilentServer() as server:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": server.url}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "tok-secret-0123456789"}}],
        }
        result, code = run_module(
            istio_verify.main,
            {
                "checks": ["control_plane"],
                "control_plane": {"compare_istioctl_version": False},
                "kubeconfig": kubeconfig,
                "request_timeout": 1,
            },
        )
    assert code == 1
    assert result["msg"] == (
        f"the Kubernetes API at {server.url} did not answer within 1 s; check that the server is up and reachable, "
        "or raise request_timeout"
    )
    shown = result["invocation"]["module_args"]["kubeconfig"]
    assert shown["clusters"][0]["cluster"]["server"] == server.url
    assert shown["users"][0]["user"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert "tok-secret-0123456789" not in repr(result)
