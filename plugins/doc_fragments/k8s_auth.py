# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the meshops.istio modules that talk to the Kubernetes API.

The same options as kubernetes.core's ``k8s_auth_options`` (so one ``module_defaults`` entry for
``group/meshops.istio.k8s`` serves both collections), plus ``request_timeout``. The argument
spec is ``plugins/module_utils/k8s/args.py``.
"""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig content as a mapping (for example
        C("{{ lookup('ansible.builtin.file', 'admin.conf') | from_yaml }}")).
      - When neither O(kubeconfig) nor O(host) is set, C($KUBECONFIG), then C(~/.kube/config), then the
        in-cluster service account are used.
      - Never logged on the target. In what the module returns, the credentials of an inline kubeconfig
        (everything under C(users), and a password inside a URL such as C(proxy-url)) are masked; its
        path, clusters and contexts are shown.
      - Kubeconfig content given as text (several lines, or one line of JSON or YAML flow style) is
        refused without being shown; give the path, or the content as a mapping.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The kubeconfig context to use; the current context when unset.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, overriding the kubeconfig's.
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token for the API server. Never logged nor shown.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - User name for basic authentication to the API server.
      - Can also be set with the E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Password for basic authentication to the API server. Never logged nor shown.
      - Can also be set with the E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's certificate.
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate that signed the API server's certificate.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate for the API server.
      - Can also be set with the E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - Can also be set with the E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through.
      - A password inside the URL (C(http://user:password@proxy:3128)) is masked in what the module returns.
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, domains, addresses or networks reached without O(proxy).
      - Can also be set with the E(K8S_AUTH_NO_PROXY) environment variable.
    type: str
  proxy_headers:
    description:
      - Headers for O(proxy).
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(user:password) for the proxy. Never logged nor shown.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH) environment variable.
        type: str
      basic_auth:
        description:
          - C(user:password) for basic authentication through the proxy. Never logged nor shown.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH) environment variable.
        type: str
      user_agent:
        description:
          - User-Agent header sent to the proxy.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_USER_AGENT) environment variable.
        type: str
  persist_config:
    description:
      - Whether to write refreshed tokens (for example of an OIDC provider) back to the kubeconfig file.
      - Can also be set with the E(K8S_AUTH_PERSIST_CONFIG) environment variable.
    type: bool
  impersonate_user:
    description:
      - User to impersonate for the requests (C(kubectl --as)).
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_USER) environment variable.
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate for the requests (C(kubectl --as-group)).
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_GROUPS) environment variable (comma-separated).
    type: list
    elements: str
  request_timeout:
    description:
      - Seconds to connect to the Kubernetes API, and to wait for each answer, on every request (discovery
        included). A server that accepts the connection and does not answer fails the task after this time
        with a message naming the server.
      - Must be a number above 0; zero, a negative value, C(nan) or C(inf) is refused before any request.
      - Not a kubernetes.core option, so not part of the C(group/meshops.istio.k8s) defaults; set it per task
        or with C(module_defaults) for the module.
    type: float
    default: 30
requirements:
  - kubernetes >= 29.0.0 (Python library)
  - PyYAML
"""
