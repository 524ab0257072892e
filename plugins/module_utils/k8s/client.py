# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one wrapper around the Kubernetes Python client for meshops.istio modules.

* ``K8S_AUTH_ARGSPEC``: the connection options every cluster-facing module accepts (documented by
  the ``meshops.istio.k8s_auth`` doc fragment); values left unset fall back to the ``K8S_AUTH_*``
  environment variables, then to ``$KUBECONFIG`` / ``~/.kube/config`` (or the in-cluster
  service account).
* ``get_client(params)``: a cached ``K8sClient`` per distinct set of connection options.
* ``K8sClient``: get/list/patch/apply/delete by apiVersion and kind through the dynamic client,
  raising ``K8sError`` / ``NotFoundError`` with the object named in the message.

No Ansible imports: modules call ``missing_required_lib`` themselves when ``HAS_KUBERNETES`` is
False (``KUBERNETES_IMPORT_ERROR`` holds the traceback).
"""

import os
import traceback

try:
    import kubernetes
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client.rest import ApiException
    from kubernetes.config import kube_config
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
    from kubernetes.dynamic.exceptions import NotFoundError as DynamicNotFound

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised on hosts without the library
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

FIELD_MANAGER = "meshops-istio"

K8S_AUTH_ARGSPEC = {
    "kubeconfig": {"type": "raw"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": "path", "aliases": ["cert_file"]},
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": False},
}

_ENV = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG",
    "context": "K8S_AUTH_CONTEXT",
    "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY",
    "validate_certs": "K8S_AUTH_VERIFY_SSL",
    "ca_cert": "K8S_AUTH_SSL_CA_CERT",
    "client_cert": "K8S_AUTH_CERT_FILE",
    "client_key": "K8S_AUTH_KEY_FILE",
}

_CLIENTS = {}


class K8sError(Exception):
    """An API call failed; the message names the object and the cause."""


class NotFoundError(K8sError):
    """The named object (or its kind) does not exist."""


def auth_params(params):
    """The connection options from module params, with the K8S_AUTH_* environment fallbacks."""
    resolved = {}
    for name in K8S_AUTH_ARGSPEC:
        value = params.get(name)
        if value is None and os.environ.get(_ENV[name]):
            value = os.environ[_ENV[name]]
            if name == "validate_certs":
                value = value.lower() in ("1", "true", "yes", "on")
        resolved[name] = value
    return resolved


def _configuration(auth):
    configuration = Configuration()
    kubeconfig = auth.get("kubeconfig")
    if isinstance(kubeconfig, dict):
        kube_config.load_kube_config_from_dict(
            kubeconfig, context=auth.get("context"), client_configuration=configuration
        )
    elif kubeconfig or not auth.get("host"):
        path = os.path.expanduser(kubeconfig) if kubeconfig else None
        if (
            path is None
            and not os.environ.get("KUBECONFIG")
            and not os.path.exists(os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION))
        ):
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            if path and not os.path.exists(path):
                raise K8sError(f"kubeconfig {path} does not exist; set kubeconfig to the cluster's kubeconfig file")
            kube_config.load_kube_config(
                config_file=path, context=auth.get("context"), client_configuration=configuration
            )
    if auth.get("host"):
        configuration.host = auth["host"]
    if auth.get("api_key"):
        configuration.api_key = {"authorization": "Bearer " + auth["api_key"]}
    if auth.get("validate_certs") is not None:
        configuration.verify_ssl = auth["validate_certs"]
    for option, attribute in (("ca_cert", "ssl_ca_cert"), ("client_cert", "cert_file"), ("client_key", "key_file")):
        if auth.get(option):
            setattr(configuration, attribute, auth[option])
    return configuration


def get_client(params):
    """A cached K8sClient for the connection options in ``params`` (module params dict)."""
    if not HAS_KUBERNETES:
        raise K8sError("the kubernetes Python library is required (pip install kubernetes)")
    auth = auth_params(params)
    key = tuple(sorted((k, repr(v)) for k, v in auth.items()))
    if key not in _CLIENTS:
        try:
            configuration = _configuration(auth)
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise K8sError(f"cannot load the Kubernetes client configuration: {exc}") from exc
        try:
            _CLIENTS[key] = K8sClient(DynamicClient(ApiClient(configuration)))
        except Exception as exc:  # discovery: connection refused, TLS, 401 ...
            raise K8sError(f"cannot reach the Kubernetes API at {configuration.host}: {exc}") from exc
    return _CLIENTS[key]


def _describe(kind, name=None, namespace=None):
    if name is None:
        return kind + (f" in namespace {namespace}" if namespace else "")
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


def _reason(exc):
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    summary = getattr(exc, "summary", None)
    if callable(summary):
        return summary()
    return f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '')} {body or exc}".strip()


class K8sClient:
    def __init__(self, dynamic):
        self.dynamic = dynamic

    def resource(self, api_version, kind):
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise NotFoundError(
                f"the cluster does not serve {kind} ({api_version}); is the CRD installed (Istio control plane)?"
            ) from exc

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DynamicNotFound as exc:
            raise NotFoundError(f"{what} not found") from exc
        except (DynamicApiError, ApiException) as exc:
            raise K8sError(f"{what}: {_reason(exc)}") from exc

    def get(self, api_version, kind, name, namespace=None):
        """The object as a dict, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        try:
            return self._call(_describe(kind, name, namespace), resource.get, name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version, kind, namespace=None, label_selector=None):
        resource = self.resource(api_version, kind)
        listed = self._call(
            _describe(kind, namespace=namespace), resource.get, namespace=namespace, label_selector=label_selector
        )
        return [item.to_dict() for item in listed.items]

    def merge_patch(self, api_version, kind, name, body, namespace=None, dry_run=False):
        resource = self.resource(api_version, kind)
        kwargs = {"dry_run": "All"} if dry_run else {}
        return self._call(
            _describe(kind, name, namespace),
            resource.patch,
            body=body,
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            **kwargs,
        ).to_dict()

    def apply(self, definition, dry_run=False):
        """Server-side apply of one object (field manager meshops-istio); returns the result."""
        api_version, kind = definition["apiVersion"], definition["kind"]
        metadata = definition.get("metadata") or {}
        resource = self.resource(api_version, kind)
        namespace = metadata.get("namespace") if resource.namespaced else None
        kwargs = {"dry_run": "All"} if dry_run else {}
        return self._call(
            _describe(kind, metadata.get("name"), namespace),
            self.dynamic.server_side_apply,
            resource,
            body=definition,
            name=metadata.get("name"),
            namespace=namespace,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            **kwargs,
        ).to_dict()

    def delete(self, api_version, kind, name, namespace=None):
        resource = self.resource(api_version, kind)
        return self._call(_describe(kind, name, namespace), resource.delete, name=name, namespace=namespace)

    def version(self):
        return self.dynamic.version
