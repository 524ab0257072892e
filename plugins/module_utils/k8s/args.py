# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the cluster-facing modules, declared once.

``K8S_AUTH_ARGSPEC`` has the same options, types, aliases and ``no_log`` as kubernetes.core's
``AUTH_ARG_SPEC`` (so ``module_defaults`` for the ``group/meshops.istio.k8s`` action group, which
extends kubernetes.core's, fits both); a unit test compares them. Documented by the
``meshops.istio.k8s_auth`` doc fragment.

``kubeconfig`` is ``no_log`` as in kubernetes.core: neither an inline kubeconfig nor its path is
logged on the target. ``k8s.module.k8s_module`` then unmasks in the returned output what is not a
credential (the path; the clusters and contexts of an inline kubeconfig) so that messages stay
readable; ``secrets.kubeconfig_secrets`` says what stays masked.
"""

import math

K8S_PROXY_HEADERS_ARGSPEC = {
    "proxy_basic_auth": {"type": "str", "no_log": True},
    "basic_auth": {"type": "str", "no_log": True},
    "user_agent": {"type": "str"},
}

K8S_AUTH_ARGSPEC = {
    "kubeconfig": {"type": "raw", "no_log": True},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"]},
    "proxy": {"type": "str"},
    "no_proxy": {"type": "str"},
    "proxy_headers": {"type": "dict", "options": K8S_PROXY_HEADERS_ARGSPEC},
    "persist_config": {"type": "bool"},
    "impersonate_user": {"type": "str"},
    "impersonate_groups": {"type": "list", "elements": "str"},
}

# Not an authentication option (kubernetes.core's modules do not take it), so it stays out of
# the action group's module_defaults.
DEFAULT_REQUEST_TIMEOUT = 30.0
K8S_REQUEST_ARGSPEC = {
    "request_timeout": {"type": "float", "default": DEFAULT_REQUEST_TIMEOUT},
}


def request_timeout_problem(params):
    """Why ``request_timeout`` cannot be used (zero, negative, not a finite number), or None.

    Zero is refused rather than taken for the default: it would read as "no timeout"."""
    timeout = params.get("request_timeout")
    if timeout is None or (math.isfinite(timeout) and timeout > 0):
        return None
    return f"request_timeout is {timeout:g}: give the seconds an API request may take, e.g. 30"


def k8s_argument_spec(**module_options):
    """The module's own options plus the connection and request options."""
    spec = {name: dict(options) for name, options in K8S_AUTH_ARGSPEC.items()}
    spec.update({name: dict(options) for name, options in K8S_REQUEST_ARGSPEC.items()})
    spec.update(module_options)
    return spec
