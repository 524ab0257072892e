"""request_timeout through the cluster-facing modules' main(): zero, negative and non-finite
values are refused naming the option before any connection (zero was taken for the default of
30 s by istio_sidecar_injection, negative and infinite ones crashed both modules)."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.k8s import client
from ansible_collections.meshops.istio.plugins.modules import istio_install, istio_sidecar_injection, istio_verify
from tests.support.loopback_api import SilentServer

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


@pytest.fixture(autouse=True)
def fresh_clients():
    client._CLIENTS.clear()
    yield
    client._CLIENTS.clear()


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(("timeout", "shown"), [(0, "0"), (-5, "-5"), ("nan", "nan"), ("inf", "inf"), ("-inf", "-inf")])
def test_unusable_request_timeout_is_refused_before_any_connection(module, timeout, shown):
    main, options = MODULES[module]
    with SilentServer() as server:
        result, code = run_module(main, dict(options, host=server.url, request_timeout=timeout))
        accepted = list(server.accepted)
    assert code == 1
    assert result["msg"] == f"request_timeout is {shown}: give the seconds an API request may take, e.g. 30"
    assert accepted == []


@pytest.mark.parametrize("module", MODULES)
def test_a_small_request_timeout_is_used_as_given(module):
    main, options = MODULES[module]
    with SilentServer() as server:
        result, code = run_module(main, dict(options, host=server.url, request_timeout=0.5))
    assert code == 1
    assert f"the Kubernetes API at {server.url} did not answer within 0.5 s" in result["msg"]
