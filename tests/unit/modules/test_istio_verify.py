"""istio_verify's main(): argument handling, refusals before any request, a real pass against a
loopback web server, secrets masked in the printed result, a hung API named."""

import http.server
import socket
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


# -- mtls ---------------------------------------------------------------------------------------


class _Cluster:
    """The API objects the mtls check reads, served the way K8sClient serves them; only the
    PeerAuthentication API versions in ``served`` exist."""

    def __init__(self, objects, served=("security.istio.io/v1",)):
        self.objects = objects
        self.served = served
        self.asked = []

    def resource(self, api_version, kind):
        self.asked.append((api_version, kind))
        if kind == "PeerAuthentication" and api_version not in self.served:
            raise client.NotFoundError(f"the cluster does not serve {kind} ({api_version})")

    def get(self, api_version, kind, name, namespace=None):
        return {"metadata": {"name": name}} if kind == "Namespace" and name in self.objects else None

    def list(self, api_version, kind, namespace=None, label_selector=None):
        self.resource(api_version, kind)
        return [o for o in self.objects.get(namespace, []) if o["kind"] == kind]


def _peer_authentication(namespace, mode, name="default", selector=None):
    spec = {"mtls": {"mode": mode}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2026-12-06T10:00:00Z"},
        "spec": spec,
    }


def _meshed_pod(name, port, ip="127.0.0.1"):
    return {
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [
                {"name": "app", "ports": [{"containerPort": port}]},
                {"name": "istio-proxy", "ports": [{"containerPort": 15090}]},
            ],
            "initContainers": [{"name": "istio-init"}],
        },
        "status": {"phase": "Running", "podIP": ip},
    }


@pytest.fixture
def cluster(monkeypatch):
    from ansible_collections.meshops.istio.plugins.module_utils.verify import runner

    holder = {}
    monkeypatch.setattr(runner, "get_client", lambda params: holder["cluster"])

    def serve(objects, **kwargs):
        holder["cluster"] = _Cluster(objects, **kwargs)
        return holder["cluster"]

    return serve


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("mtls", "message"),
    [
        ({}, "mtls.namespaces is empty: name the namespaces whose mutual TLS mode to check"),
        ({"namespaces": []}, "mtls.namespaces is empty"),
        ({"namespaces": ["jiuxi"], "timeout": 0}, "mtls.timeout is 0: it must be more than 0"),
        ({"namespaces": ["jiuxi"], "timeout": -2.5}, "mtls.timeout is -2.5: it must be more than 0"),
    ],
)
def test_mtls_bad_options_fail_before_the_cluster_is_asked(cluster, mtls, message):
    asked = cluster({})
    result, code = run_module(istio_verify.main, {"checks": ["mtls"], "mtls": mtls})
    assert code == 1 and message in result["msg"], result["msg"]
    assert asked.asked == [] and result.get("passed") is not True


def test_mtls_mode_outside_the_choices_is_refused_by_the_argument_spec():
    result, code = run_module(istio_verify.main, {"checks": ["mtls"], "mtls": {"namespaces": ["a"], "mode": "DISABLE"}})
    assert code == 1 and "mode" in result["msg"] and "DISABLE" in result["msg"]


def test_mtls_strict_namespace_passes_on_v1beta1_when_v1_is_not_served(cluster):
    asked = cluster(
        {"jiuxi": [_peer_authentication("jiuxi", "STRICT"), _meshed_pod("web", 80, ip="10.244.1.5")]},
        served=("security.istio.io/v1beta1",),
    )
    result, code = run_module(istio_verify.main, {"checks": ["mtls"], "mtls": {"namespaces": ["jiuxi"]}}, True)
    assert code == 0, result.get("msg")
    assert result["passed"] is True and result["changed"] is False
    report = result["report"]["mtls"]
    assert report["api_version"] == "security.istio.io/v1beta1"
    assert report["namespaces"]["jiuxi"]["mode"] == "STRICT"
    assert report["namespaces"]["jiuxi"]["workloads"]["web"]["mode"] == "STRICT"
    assert report["probed"] is False and report["observed"] == 1
    assert ("security.istio.io/v1", "PeerAuthentication") in asked.asked


def test_mtls_without_peer_authentication_served_names_the_crds(cluster):
    cluster({"jiuxi": []}, served=())
    result, code = run_module(istio_verify.main, {"checks": ["mtls"], "mtls": {"namespaces": ["jiuxi"]}})
    assert code == 1
    assert "serves PeerAuthentication in none of security.istio.io/v1, security.istio.io/v1beta1" in result["msg"]


def test_mtls_permissive_namespace_fails_a_strict_expectation(cluster):
    cluster({"jiuxi": [_peer_authentication("jiuxi", "PERMISSIVE")], "istio-system": []})
    result, code = run_module(istio_verify.main, {"checks": ["mtls"], "mtls": {"namespaces": ["jiuxi"]}})
    assert code == 1 and result["passed"] is False
    assert "mtls: namespace jiuxi is PERMISSIVE (namespace policy jiuxi/default), expected STRICT" in result["msg"]


def test_mtls_probe_of_a_real_loopback_server_answering_in_plain_text(cluster, page):
    port = page.server_address[1]
    cluster({"jiuxi": [_peer_authentication("jiuxi", "STRICT"), _meshed_pod("web", port)]})
    args = {"checks": ["mtls"], "mtls": {"namespaces": ["jiuxi"], "probe": True, "timeout": 2}}
    result, code = run_module(istio_verify.main, args)
    assert code == 1 and page.hits == 1
    (probe,) = result["report"]["mtls"]["probes"]
    assert probe["outcome"] == "answered" and probe["status_line"] == "HTTP/1.0 200 OK"
    assert probe["expected"] == "refused" and probe["port"] == port and probe["pod"] == "jiuxi/web"
    assert (probe["control"]["port"], probe["control"]["outcome"]) == (9, "refused")  # nothing on 127.0.0.1:9
    assert "answered a caller without sidecar in plain text (HTTP/1.0 200 OK)" in result["msg"]

    args["mtls"]["mode"] = "PERMISSIVE"
    cluster({"jiuxi": [_peer_authentication("jiuxi", "PERMISSIVE"), _meshed_pod("web", port)]})
    result, code = run_module(istio_verify.main, args)
    assert code == 0, result.get("msg")
    assert result["report"]["mtls"]["probes"][0]["outcome"] == "answered"


def test_mtls_probe_of_a_closed_port_is_refused_and_passes_strict(cluster):
    cluster({"jiuxi": [_peer_authentication("jiuxi", "STRICT"), _meshed_pod("web", _closed_port())]})
    args = {"checks": ["mtls"], "mtls": {"namespaces": ["jiuxi"], "probe": True, "timeout": 2}}
    result, code = run_module(istio_verify.main, args)
    assert code == 0, result.get("msg")
    (probe,) = result["report"]["mtls"]["probes"]
    assert (probe["outcome"], probe["detail"], probe["connected"]) == ("refused", "TCP connection refused", False)
    assert result["report"]["mtls"]["observed"] == 2
