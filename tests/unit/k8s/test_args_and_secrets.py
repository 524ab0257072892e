"""The connection options are kubernetes.core's, and only credentials stay masked."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.k8s import args, secrets

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "lab",
    "clusters": [{"name": "lab", "cluster": {"server": "https://10.0.0.1:6443", "certificate-authority-data": "Q0E="}}],
    "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}],
    "users": [
        {
            "name": "admin",
            "user": {"token": "tok-123", "client-key-data": "S0VZ", "client-certificate-data": "Q0VSVA=="},
        },
        {"name": "oidc", "user": {"auth-provider": {"name": "oidc", "config": {"id-token": "id-456"}}}},
        {"name": "exec", "user": {"exec": {"command": "get-token", "env": [{"name": "PW", "value": "pw-789"}]}}},
    ],
}


def kubernetes_core_spec():
    module = pytest.importorskip("ansible_collections.kubernetes.core.plugins.module_utils.args_common")
    return module.AUTH_ARG_SPEC


def normalised(spec):
    """Option -> (type, aliases, no_log, suboptions) with kubernetes.core's implicit str made explicit."""
    return {
        name: (
            options.get("type", "str"),
            tuple(options.get("aliases", ())),
            bool(options.get("no_log")),
            normalised(options["options"]) if "options" in options else None,
        )
        for name, options in spec.items()
    }


def test_auth_options_are_kubernetes_cores():
    assert normalised(args.K8S_AUTH_ARGSPEC) == normalised(kubernetes_core_spec())


def test_request_timeout_is_not_an_auth_option():
    assert "request_timeout" not in args.K8S_AUTH_ARGSPEC
    assert args.k8s_argument_spec(mode={"type": "str"})["request_timeout"]["default"] == 30


def test_inline_kubeconfig_credentials_stay_masked():
    assert secrets.kubeconfig_secrets(KUBECONFIG) == {
        "tok-123",
        "S0VZ",
        "Q0VSVA==",
        "oidc",
        "id-456",
        "get-token",
        "PW",
        "pw-789",
    }
    revealed = secrets.revealable({"kubeconfig": KUBECONFIG})
    assert {"v1", "Config", "lab", "https://10.0.0.1:6443", "admin", "exec"} <= revealed
    assert not revealed & {"tok-123", "S0VZ", "id-456", "pw-789"}


def test_a_value_of_another_secret_option_is_never_revealed():
    kubeconfig = {"clusters": [{"name": "shared-value"}]}
    assert secrets.revealable({"kubeconfig": kubeconfig, "api_key": "shared-value"}) == set()
    assert secrets.revealable({"kubeconfig": kubeconfig, "proxy_headers": {"basic_auth": "shared-value"}}) == set()


@pytest.mark.parametrize(
    ("kubeconfig", "revealed"),
    [
        ("/etc/kubernetes/admin.conf", {"/etc/kubernetes/admin.conf"}),
        ("apiVersion: v1\nusers: [{user: {token: t}}]\n", set()),
        ('{"apiVersion": "v1", "users": [{"user": {"token": "t"}}]}', set()),
        ("{users: [{name: u, user: {token: t}}]}", set()),
        (None, set()),
        (["a", "b"], set()),
    ],
    ids=["path", "yaml-text", "json-one-line", "yaml-flow-one-line", "unset", "list"],
)
def test_paths_are_shown_text_and_other_shapes_are_not(kubeconfig, revealed):
    assert secrets.revealable({"kubeconfig": kubeconfig}) == revealed


@pytest.mark.parametrize(
    ("params", "masked"),
    [
        ({"proxy": "http://proxyuser:proxy-pw-1@10.0.0.9:3128"}, {"proxy-pw-1"}),
        ({"host": "https://admin:host-pw-2@10.0.0.1:6443"}, {"host-pw-2"}),
        (
            {"kubeconfig": {"clusters": [{"name": "c", "cluster": {"proxy-url": "http://u:kc-proxy-pw-3@p:3128"}}]}},
            {"kc-proxy-pw-3"},
        ),
        ({"proxy": "http://10.0.0.9:3128", "host": "https://10.0.0.1:6443"}, set()),
        ({"proxy": "http://user-only@10.0.0.9:3128"}, set()),
        ({"host": "https://[::1"}, set()),
    ],
    ids=["proxy", "host", "kubeconfig-proxy-url", "no-credentials", "user-only", "unparsable"],
)
def test_passwords_inside_urls_are_masked(params, masked):
    assert secrets.connection_url_secrets(params) == masked


def test_the_rest_of_a_proxy_url_in_the_kubeconfig_stays_readable():
    kubeconfig = {"clusters": [{"name": "c", "cluster": {"proxy-url": "http://u:kc-proxy-pw@p:3128"}}]}
    assert "http://u:kc-proxy-pw@p:3128" in secrets.revealable({"kubeconfig": kubeconfig})
    assert "kc-proxy-pw" in secrets.kubeconfig_secrets(kubeconfig)
