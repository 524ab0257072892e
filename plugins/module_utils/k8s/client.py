# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one wrapper around the Kubernetes Python client for meshops.istio modules.

* ``auth_params(params)``: the connection options of ``k8s.args.K8S_AUTH_ARGSPEC`` (documented
  by the ``meshops.istio.k8s_auth`` doc fragment); values left unset fall back to the
  ``K8S_AUTH_*`` environment variables, then to ``$KUBECONFIG`` / ``~/.kube/config`` (or the
  in-cluster service account).
* ``get_client(params)``: a cached ``K8sClient`` per distinct set of connection options; every
  request (discovery included) times out after ``request_timeout`` seconds with an error that
  names the server.
* ``K8sClient``: get/list/patch/apply/delete by apiVersion and kind through the dynamic client,
  raising ``K8sError`` / ``NotFoundError`` with the object named in the message.

No Ansible imports: modules call ``missing_required_lib`` themselves when ``HAS_KUBERNETES`` is
False (``KUBERNETES_IMPORT_ERROR`` holds the traceback).
"""

import os
import traceback

try:
    import kubernetes
    import urllib3
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

try:
    import yaml
except ImportError:  # pragma: no cover - the kubernetes library depends on PyYAML
    yaml = None

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.istio.plugins.module_utils.k8s.args import (
    DEFAULT_REQUEST_TIMEOUT,
    K8S_AUTH_ARGSPEC,
    K8S_PROXY_HEADERS_ARGSPEC,
)
from ansible_collections.meshops.istio.plugins.module_utils.k8s.secrets import is_kubeconfig_text

FIELD_MANAGER = "meshops-istio"
CONNECTIONS = 8

# Environment fallbacks, as kubernetes.core reads them (K8S_AUTH_<OPTION>, or the client's name).
_ENV = {
    "kubeconfig": ("K8S_AUTH_KUBECONFIG",),
    "context": ("K8S_AUTH_CONTEXT",),
    "host": ("K8S_AUTH_HOST",),
    "api_key": ("K8S_AUTH_API_KEY",),
    "username": ("K8S_AUTH_USERNAME",),
    "password": ("K8S_AUTH_PASSWORD",),
    "validate_certs": ("K8S_AUTH_VALIDATE_CERTS", "K8S_AUTH_VERIFY_SSL"),
    "ca_cert": ("K8S_AUTH_CA_CERT", "K8S_AUTH_SSL_CA_CERT"),
    "client_cert": ("K8S_AUTH_CLIENT_CERT", "K8S_AUTH_CERT_FILE"),
    "client_key": ("K8S_AUTH_CLIENT_KEY", "K8S_AUTH_KEY_FILE"),
    "proxy": ("K8S_AUTH_PROXY",),
    "no_proxy": ("K8S_AUTH_NO_PROXY",),
    "persist_config": ("K8S_AUTH_PERSIST_CONFIG",),
    "impersonate_user": ("K8S_AUTH_IMPERSONATE_USER",),
    "impersonate_groups": ("K8S_AUTH_IMPERSONATE_GROUPS",),
}
_BOOLEAN = ("validate_certs", "persist_config")

_CLIENTS = {}


class K8sError(MeshopsError):
    """An API call or the connection set-up failed; the message names the object or option and the cause."""


class NotFoundError(K8sError):
    """The named object (or its kind) does not exist."""


def auth_params(params):
    """The connection options from module params, with the K8S_AUTH_* environment fallbacks."""
    resolved = {}
    for name in K8S_AUTH_ARGSPEC:
        value = params.get(name)
        for variable in _ENV.get(name, ()):
            if value is None and os.environ.get(variable):
                value = os.environ[variable]
                if name in _BOOLEAN:
                    value = value.lower() not in ("0", "false", "no", "off")
                elif name == "impersonate_groups":
                    value = [group for group in value.split(",") if group]
        resolved[name] = value
    if resolved.get("proxy_headers") is None:
        headers = {
            key: os.environ["K8S_AUTH_PROXY_HEADERS_" + key.upper()]
            for key in K8S_PROXY_HEADERS_ARGSPEC
            if os.environ.get("K8S_AUTH_PROXY_HEADERS_" + key.upper())
        }
        resolved["proxy_headers"] = headers or None
    resolved["request_timeout"] = params.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT
    return resolved


def read_kubeconfig_file(path):
    """The kubeconfig file at ``path`` as a mapping; a clear error when it is not one."""
    if not os.path.exists(path):
        raise K8sError(f"kubeconfig {path} does not exist; set kubeconfig to the path of the cluster's kubeconfig file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise K8sError(f"kubeconfig {path} cannot be read ({exc.strerror}); check its permissions") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise K8sError(
            f"kubeconfig {path} is not a text file (byte {exc.start} is not UTF-8); "
            "set kubeconfig to a kubeconfig file (YAML)"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise K8sError(
            f"kubeconfig {path} is not valid YAML{where}; set kubeconfig to a kubeconfig file (like ~/.kube/config)"
        ) from exc
    return check_kubeconfig_mapping(data, f"kubeconfig {path}")


def check_kubeconfig_mapping(data, what="kubeconfig"):
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise K8sError(
            f"{what} is {kind}, not a mapping with clusters, contexts and users; "
            "give a kubeconfig file's path or its content as a mapping"
        )
    return data


def _check_kubeconfig_option(kubeconfig):
    if kubeconfig is None or isinstance(kubeconfig, dict):
        return
    if isinstance(kubeconfig, str):
        if is_kubeconfig_text(kubeconfig):
            raise K8sError(
                "kubeconfig is text (content such as YAML or JSON, not a path; not shown): give the path of a "
                "kubeconfig file, or the content as a mapping (e.g. \"{{ lookup('file', path) | from_yaml }}\")"
            )
        return
    check_kubeconfig_mapping(kubeconfig)


def _configuration(auth):
    configuration = Configuration()
    kubeconfig = auth.get("kubeconfig")
    _check_kubeconfig_option(kubeconfig)
    loader = {"context": auth.get("context"), "client_configuration": configuration}
    if auth.get("persist_config") is not None:
        loader["persist_config"] = auth["persist_config"]
    if isinstance(kubeconfig, dict):
        kube_config.load_kube_config_from_dict(kubeconfig, **loader)
    elif kubeconfig or not auth.get("host"):
        path = os.path.expanduser(kubeconfig) if kubeconfig else None
        if (
            path is None
            and not os.environ.get("KUBECONFIG")
            and not os.path.exists(os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION))
        ):
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            if path:
                read_kubeconfig_file(path)
            kube_config.load_kube_config(config_file=path, **loader)
    if auth.get("host"):
        configuration.host = auth["host"].rstrip("/")
    if auth.get("api_key"):
        configuration.api_key = {"authorization": "Bearer " + auth["api_key"]}
    for option, attribute in (
        ("validate_certs", "verify_ssl"),
        ("ca_cert", "ssl_ca_cert"),
        ("client_cert", "cert_file"),
        ("client_key", "key_file"),
        ("username", "username"),
        ("password", "password"),
        ("proxy", "proxy"),
        ("no_proxy", "no_proxy"),
    ):
        if auth.get(option) is not None:
            setattr(configuration, attribute, auth[option])
    if auth.get("proxy_headers"):
        headers = {key: value for key, value in auth["proxy_headers"].items() if value is not None}
        configuration.proxy_headers = urllib3.util.make_headers(**headers)
    # One attempt per request: a server that accepts and never answers fails after one timeout,
    # not after urllib3's default three retries of it.
    configuration.retries = urllib3.util.Retry(total=1, read=0, redirect=0)
    # The library sizes its pool by the CPUs (5 per CPU); mesh.install sends eight requests at
    # a time, and a smaller pool would open and drop connections with a warning on each.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, CONNECTIONS)
    return configuration


def _with_timeout(api_client, seconds):
    """Every request of ``api_client`` (discovery included) gets ``seconds`` to connect and to
    wait for each answer, unless it sets its own. A (connect, read) pair: the kubernetes
    library before 37 takes a single number only as an int."""
    rest = api_client.rest_client
    request = rest.request

    def request_with_timeout(*args, **kwargs):
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = (seconds, seconds)
        return request(*args, **kwargs)

    rest.request = request_with_timeout
    return api_client


def _api_client(configuration, auth):
    api_client = _with_timeout(ApiClient(configuration), auth["request_timeout"])
    if auth.get("impersonate_user"):
        api_client.set_default_header("Impersonate-User", auth["impersonate_user"])
    for group in auth.get("impersonate_groups") or []:
        # The API server reads one Impersonate-Group header per group; distinct key objects
        # let the header dict hold several (kubernetes.core does the same).
        api_client.set_default_header(_RepeatedHeader("Impersonate-Group"), group)
    return api_client


class _RepeatedHeader(str):
    """A header name that is a distinct dict key each time it is created."""

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other


def transport_error(host, timeout, exc):
    """A K8sError naming the server for a request that got no answer."""
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)) or "timed out" in str(reason):
        return K8sError(
            f"the Kubernetes API at {host} did not answer within {timeout:g} s; check that the server is up and "
            "reachable, or raise request_timeout"
        )
    return K8sError(f"cannot reach the Kubernetes API at {host}: {reason}")


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
            raise K8sError(f"cannot load the Kubernetes client configuration (kubeconfig, context): {exc}") from exc
        timeout = auth["request_timeout"]
        try:
            dynamic = DynamicClient(_api_client(configuration, auth))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise transport_error(configuration.host, timeout, exc) from exc
        except (DynamicApiError, ApiException) as exc:
            raise K8sError(f"the Kubernetes API at {configuration.host} refused discovery: {_reason(exc)}") from exc
        _CLIENTS[key] = K8sClient(dynamic, configuration.host, timeout)
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
    def __init__(self, dynamic, host=None, timeout=DEFAULT_REQUEST_TIMEOUT):
        self.dynamic = dynamic
        self.host = host
        self.timeout = timeout

    def resource(self, api_version, kind):
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise NotFoundError(
                f"the cluster does not serve {kind} ({api_version}); is the CRD installed (Istio control plane)?"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise transport_error(self.host, self.timeout, exc) from exc

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DynamicNotFound as exc:
            raise NotFoundError(f"{what} not found") from exc
        except (DynamicApiError, ApiException) as exc:
            raise K8sError(f"{what}: {_reason(exc)}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise transport_error(self.host, self.timeout, exc) from exc

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

    def apply(self, definition, dry_run=False, field_manager=FIELD_MANAGER):
        """Server-side apply of one object, conflicts forced; returns the stored object."""
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
            field_manager=field_manager,
            force_conflicts=True,
            **kwargs,
        ).to_dict()

    def delete(self, api_version, kind, name, namespace=None, propagation_policy=None):
        resource = self.resource(api_version, kind)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation_policy}
        return self._call(
            _describe(kind, name, namespace),
            resource.delete,
            name=name,
            namespace=namespace,
            **({"body": body} if propagation_policy else {}),
        )

    def version(self):
        try:
            return self.dynamic.version
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise transport_error(self.host, self.timeout, exc) from exc
