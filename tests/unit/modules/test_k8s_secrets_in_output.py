"""The cluster-facing modules through main(): kubeconfig content given as one line of text
(JSON, YAML flow style) and passwords inside URLs never reach what the module prints, and the
module says what to give instead."""

import json

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.k8s import client
from ansible_collections.meshops.istio.plugins.modules import istio_install, istio_sidecar_injection, istio_verify
from tests.support.loopback_api import UnauthorizedServer

from .module_runner import run_module

MODULES = {
    "istio_verify": (
        istio_verify.main,
        {"checks": ["control_plane"], "control_plane": {"compare_istioctl_version": False}},
    ),
    "istio_sidecar_injection": (istio_sidecar_injection.main, {"mode": "namespace", "namespaces": ["jiuxi"]}),
    # The API is read before istioctl runs: no istioctl is needed to reach it.
    "istio_install": (istio_install.main, {"istioctl": "/nonexistent/istioctl"}),
}
TOKEN = "tok-one-line-0123456789"


@pytest.fixture(autouse=True)
def fresh_clients():
    client._CLIENTS.clear()
    yield
    client._CLIENTS.clear()


def kubeconfig(server, **cluster):
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
    }


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(
    "text",
    [
        json.dumps(kubeconfig("https://127.0.0.1:1")),
        f"{{users: [{{name: u, user: {{token: {TOKEN}}}}}]}}",
        f'  [{{"name": "u", "user": {{"token": "{TOKEN}"}}}}]',
    ],
    ids=["json", "yaml-flow", "json-list"],
)
def test_kubeconfig_content_on_one_line_is_refused_and_never_shown(module, text):
    main, options = MODULES[module]
    result, code = run_module(main, dict(options, kubeconfig=text, request_timeout=1))
    assert code == 1
    assert "kubeconfig is text" in result["msg"] and "not a path" in result["msg"]
    assert TOKEN not in json.dumps(result)


@pytest.mark.parametrize("module", MODULES)
def test_passwords_in_proxy_and_host_urls_are_masked(module):
    main, options = MODULES[module]
    with UnauthorizedServer() as server:
        host = server.url.replace("http://", "http://admin:host-pw-4711@")
        result, code = run_module(
            main, dict(options, host=host, proxy="http://proxyuser:proxy-pw-4712@127.0.0.1:1", request_timeout=2)
        )
    assert code == 1
    printed = json.dumps(result)
    assert "host-pw-4711" not in printed and "proxy-pw-4712" not in printed
    assert "proxyuser" in result["invocation"]["module_args"]["proxy"]


@pytest.mark.parametrize("module", MODULES)
def test_password_in_the_kubeconfig_proxy_url_is_masked_and_the_rest_is_shown(module):
    main, options = MODULES[module]
    with UnauthorizedServer() as server:
        config = kubeconfig(server.url, **{"proxy-url": "http://pu:kc-proxy-pw-4713@127.0.0.1:1"})
        result, code = run_module(main, dict(options, kubeconfig=config, request_timeout=2))
    assert code == 1
    printed = json.dumps(result)
    assert "kc-proxy-pw-4713" not in printed and TOKEN not in printed
    shown = result["invocation"]["module_args"]["kubeconfig"]
    assert shown["clusters"][0]["cluster"]["server"] == server.url
    assert shown["clusters"][0]["cluster"]["proxy-url"].startswith("http://pu:")
