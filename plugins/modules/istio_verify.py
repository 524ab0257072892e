#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: istio_verify
short_description: Read-only checks of an Istio mesh and of the traffic it routes
version_added: 0.1.0
description:
  - Runs the checks named in O(checks) and returns one structured result per check.
  - The task fails when a check fails, with the list of what failed and why in RV(failures).
  - V(control_plane) - every Deployment in O(istio_namespace) is Available with all replicas ready,
    the O(control_plane.deployments) exist, and istiod runs the same major.minor version as istioctl.
    A rollout still under way (old pods serving while new ones start) is a warning; one past its
    progress deadline (the new pods do not start) is a failure.
  - V(sidecars) - every pod in O(sidecars.namespaces) has an C(istio-proxy) container (or native
    sidecar), an C(istio-init) or C(istio-validation) init container, and READY n/n.
  - V(http) - a URL answers with an expected status and a body matching a pattern. The default URL
    is the ingress gateway's node port C(http://<ingress host>:<http2 node port>/productpage).
  - V(traffic_split) - sends O(traffic_split.requests) requests, attributes each response to a destination
    by the caller's pattern, and compares the shares with the VirtualService weights by an exact binomial
    test (two destinations) or Pearson's chi-square test (three or more) at O(traffic_split.confidence).
    Warns when the caller is outside the mesh, because then kube-proxy's round robin, not Envoy, picks
    the destination.
  - V(versions_seen) - keeps requesting until every expected version answered (Bookinfo's reviews
    v1, v2 and v3 by default) or the budget runs out.
  - V(mtls) - reads the PeerAuthentication objects of O(istio_namespace) (the mesh's root namespace) and of
    O(mtls.namespaces), computes the mutual TLS mode of each namespace and of each pod with a sidecar the way
    istiod does (namespace-wide policy over mesh-wide, C(UNSET) inherits, no policy means C(PERMISSIVE), the
    oldest policy of a scope wins, workload policies and their C(portLevelMtls) over the namespace's), and
    fails when a namespace, a pod or a port is not in O(mtls.mode). With O(mtls.probe) it also sends a
    plain-text HTTP GET from where the module runs (a caller without a sidecar) to every TCP container port
    of those pods; in C(STRICT) mode each must be refused, in C(PERMISSIVE) mode answered.
  - A check passes only on what it observed; one that made no observation fails with a reason.
    Counts, durations and timeouts that are negative, zero where that would mean "never", or not
    finite (C(nan), C(inf)), weights outside 0-100 or all 0, and patterns that are not valid regular
    expressions are refused before any request.
  - Never changes anything; always returns RV(ignore:changed=false).
author:
  - meshops.istio developers (@meshops)
extends_documentation_fragment:
  - meshops.istio.k8s_auth
  - meshops.istio.attributes
  - meshops.istio.attributes.info_module
  - meshops.istio.attributes.k8s_action_group
attributes:
  check_mode:
    support: full
    details: The checks are read-only and run the same way in check mode.
  platform:
    support: full
    details: Runs where the Kubernetes API (and, for the traffic checks, the ingress gateway) is reachable.
options:
  checks:
    description: The checks to run, in this order.
    type: list
    elements: str
    required: true
    choices: [control_plane, sidecars, http, traffic_split, versions_seen, mtls]
  istio_namespace:
    description:
      - Namespace of the Istio control plane and ingress gateway.
      - The V(mtls) check takes it for the mesh's root namespace (C(meshConfig.rootNamespace), the same by
        default), whose PeerAuthentication without selector is mesh-wide.
    type: str
    default: istio-system
  istioctl_path:
    description:
      - Path of the istioctl binary whose version V(control_plane) compares with istiod's.
      - Defaults to C(istioctl) on E(PATH); playbooks pass the C(istioctl_path) fact.
    type: path
  ingress:
    description:
      - Where the traffic checks send requests when they have no O(http.url) (etc.) of their own.
      - Unset keys are discovered from the cluster the way the tutorial's Bookinfo chapter does it - the
        hostIP of a running C(istio=ingressgateway) pod and the node port of the gateway Service's C(http2) port.
    type: dict
    default: {}
    suboptions:
      host:
        description: Address of the ingress (a node address, or a load balancer).
        type: str
      port:
        description: Port of the ingress.
        type: int
      scheme:
        description: URL scheme.
        type: str
        choices: [http, https]
        default: http
      service:
        description: Name of the ingress gateway Service.
        type: str
        default: istio-ingressgateway
      port_name:
        description: Name of the Service port whose node port is used.
        type: str
        default: http2
  validate_certs_http:
    description: Whether HTTPS requests of the traffic checks verify the server certificate.
    type: bool
    default: true
  control_plane:
    description: Options of the V(control_plane) check.
    type: dict
    default: {}
    suboptions:
      deployments:
        description: Deployments that must exist in O(istio_namespace).
        type: list
        elements: str
        default: [istiod]
      compare_istioctl_version:
        description: Compare istiod's version with C(istioctl version --remote=false).
        type: bool
        default: true
  sidecars:
    description: Options of the V(sidecars) check.
    type: dict
    default: {}
    suboptions:
      namespaces:
        description:
          - Namespaces whose pods must all have sidecars.
          - Pods labelled or annotated C(sidecar.istio.io/inject=false) are skipped.
          - Finished pods (C(Succeeded), C(Failed)) and pods being deleted (terminating, for example the old
            pods of a restart) are skipped.
        type: list
        elements: str
        default: []
  http:
    description: Options of the V(http) check.
    type: dict
    default: {}
    suboptions:
      url:
        description: Full URL; when unset, the ingress address with O(http.path).
        type: str
      path:
        description: Path appended to the ingress address.
        type: str
        default: /productpage
      host_header:
        description: C(Host) header to send (the gateway host name, e.g. C(jiuxi.com)).
        type: str
      status:
        description: Accepted HTTP status codes.
        type: list
        elements: int
        default: [200]
      body_pattern:
        description: Python regular expression the body must match.
        type: str
        default: <title>Simple Bookstore App</title>
      timeout:
        description: Seconds per request.
        type: float
        default: 5
      retries:
        description: Further attempts when the check fails (gateway configuration still propagating).
        type: int
        default: 0
      delay:
        description: Seconds between attempts.
        type: float
        default: 2
  traffic_split:
    description: Options of the V(traffic_split) check.
    type: dict
    default: {}
    suboptions:
      url:
        description: Full URL; when unset, the ingress address with O(traffic_split.path).
        type: str
      path:
        description: Path appended to the ingress address.
        type: str
        default: /
      host_header:
        description: C(Host) header to send (the VirtualService host, e.g. C(jiuxi.com)).
        type: str
      destinations:
        description:
          - One entry per destination of the route.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description:
              - Destination name. With O(traffic_split.virtual_service) it must be the route destination's
                host (short name), with C(/subset) when the route uses subsets (C(reviews/v1)).
            type: str
            required: true
          pattern:
            description: Python regular expression that identifies this destination's responses.
            type: str
            required: true
          weight:
            description:
              - Expected weight, 0 to 100 as in the VirtualService route; required unless
                O(traffic_split.virtual_service) gives the weights. Weights that are all 0 are refused.
            type: int
      virtual_service:
        description: VirtualService whose first weighted HTTP route gives the expected weights.
        type: dict
        suboptions:
          name:
            description: Name of the VirtualService.
            type: str
            required: true
          namespace:
            description: Namespace of the VirtualService.
            type: str
            required: true
      requests:
        description:
          - Number of requests. With 400 requests at confidence 0.999 a correct 50/50 split fails at most
            once in 1000 runs, while an 80/20 split claimed as 50/50 passes with probability below 1e-12.
        type: int
        default: 400
      confidence:
        description: Confidence of the test; the check fails when the p-value is below 1 - confidence.
        type: float
        default: 0.999
      caller_in_mesh:
        description:
          - Set when the module runs inside a pod with a sidecar; suppresses the outside-the-mesh warning.
        type: bool
        default: false
      timeout:
        description: Seconds per request.
        type: float
        default: 5
  versions_seen:
    description: Options of the V(versions_seen) check.
    type: dict
    default: {}
    suboptions:
      url:
        description: Full URL; when unset, the ingress address with O(versions_seen.path).
        type: str
      path:
        description: Path appended to the ingress address.
        type: str
        default: /productpage
      host_header:
        description: C(Host) header to send.
        type: str
      versions:
        description:
          - Version name to the Python regular expression that identifies it in a response.
          - The default recognises the C(Reviews served by) line of Bookinfo's product page.
        type: dict
        default:
          v1: 'Reviews served by:\s*reviews-v1-'
          v2: 'Reviews served by:\s*reviews-v2-'
          v3: 'Reviews served by:\s*reviews-v3-'
      max_requests:
        description: Give up after this many requests.
        type: int
        default: 100
      timeout_seconds:
        description: Give up after this many seconds.
        type: float
        default: 60
      timeout:
        description: Seconds per request.
        type: float
        default: 5
  mtls:
    description: Options of the V(mtls) check.
    type: dict
    default: {}
    suboptions:
      namespaces:
        description:
          - Namespaces whose mutual TLS mode to check; required when the check runs.
        type: list
        elements: str
        default: []
      mode:
        description:
          - The mode every namespace, pod with a sidecar and port must have.
          - V(STRICT) - only mutual TLS (callers without a sidecar are refused).
          - V(PERMISSIVE) - mutual TLS and plain text alike.
        type: str
        choices: [STRICT, PERMISSIVE]
        default: STRICT
      probe:
        description:
          - Also send one plain-text HTTP/1.1 GET to each TCP C(containerPort) of every running pod with an
            C(istio-proxy) sidecar in O(mtls.namespaces) (ports 15000-15099 and the sidecar's own are left out),
            from the host where the module runs, and classify what comes back.
          - V(answered) - an HTTP status line came back.
          - V(refused) - the connection was refused, reset or closed without an HTTP response.
          - V(unreachable) - no connection within O(mtls.timeout), no route, or a connection that stayed silent;
            no evidence either way.
          - V(intercepted) - the pod also answered on its control port (the first of 9, 7, 19 and 1 that no
            container declares), where no pod answers in either mode; something between this host and the pod
            (a transparent proxy) answers for it, so its probes are no evidence either way.
          - V(STRICT) expects every probe refused, V(PERMISSIVE) every probe answered. The check fails when no
            probe reached a pod, saying that the pod addresses are not reachable from that host or that something
            on the way answers for them; run it on a node of the cluster, or leave O(mtls.probe) false.
        type: bool
        default: false
      timeout:
        description: Seconds a probe waits to connect, and again for the answer; more than 0.
        type: float
        default: 3
seealso:
  - module: meshops.istio.istio_sidecar_injection
notes:
  - The traffic checks open a new connection per request, like a browser refresh.
  - The V(mtls) check reads C(security.istio.io/v1) PeerAuthentications, or C(v1beta1) where v1 is not served
    (Istio before 1.22).
"""

EXAMPLES = r"""
- name: Control plane up and matching istioctl, every pod in jiuxi with its sidecar (READY 2/2)
  meshops.istio.istio_verify:
    checks: [control_plane, sidecars]
    istioctl_path: "{{ istioctl_path | default(omit) }}"
    sidecars:
      namespaces: [jiuxi]

- name: Bookinfo answers through the ingress gateway's node port, and every reviews version shows
  meshops.istio.istio_verify:
    checks: [http, versions_seen]
    versions_seen:
      max_requests: 200

- name: The jiuxi.com split between tomcat and nginx follows the VirtualService weights
  meshops.istio.istio_verify:
    checks: [traffic_split]
    traffic_split:
      host_header: jiuxi.com
      virtual_service:
        name: jiuxi-virtual-svc
        namespace: jiuxi
      destinations:
        - name: tomcat-svc
          pattern: '<title>Apache Tomcat'
        - name: nginx-svc
          pattern: '<title>Welcome to nginx!</title>'
      requests: 400
      confidence: 0.999
  register: split

- name: The samples namespace only takes mutual TLS, and a plain-text caller is refused (run on a node)
  meshops.istio.istio_verify:
    checks: [mtls]
    mtls:
      namespaces: [jiuxi]
      mode: STRICT
      probe: true
      timeout: 3

- name: Show the observed shares
  ansible.builtin.debug:
    msg: "{{ split.report.traffic_split.observed_shares }} (p = {{ split.report.traffic_split.p_value }})"
"""

RETURN = r"""
report:
  description:
    - One result per check, keyed by check name.
    - Every result has C(name), C(passed), C(failures) and C(warnings).
  returned: always
  type: dict
  contains:
    control_plane:
      description:
        - Per-Deployment replicas/ready/available/version and C(rollout_pending) (what of a rollout is not
          done yet, or null), C(istiod_version), C(istioctl_version).
      returned: when the check ran
      type: dict
    sidecars:
      description:
        - Per-pod containers, init containers and C(ready) (as C(kubectl get pods) shows it, e.g. C(2/2)).
        - C(skipped) lists the pods not checked and why.
      returned: when the check ran
      type: dict
    http:
      description: C(url), C(host), C(status), C(matched) (the matched text), C(through_envoy), C(attempts).
      returned: when the check ran
      type: dict
    traffic_split:
      description:
        - C(counts) per destination, C(observed_shares), C(expected_shares), C(p_value), C(method), C(statistic),
          C(df), C(alpha), C(unattributed), C(ambiguous), C(failed_requests), C(through_envoy).
      returned: when the check ran
      type: dict
      sample:
        counts: {nginx-svc: 206, tomcat-svc: 194}
        observed_shares: {nginx-svc: 0.515, tomcat-svc: 0.485}
        expected_shares: {nginx-svc: 0.5, tomcat-svc: 0.5}
        p_value: 0.58
        method: exact binomial (two-sided)
    versions_seen:
      description: C(seen) (responses per version), C(first_seen_at) (request number), C(missing), C(requests).
      returned: when the check ran
      type: dict
    mtls:
      description:
        - C(expected_mode), C(api_version) (of the PeerAuthentications read), C(root_namespace), C(mesh_policy)
          (C(name) and C(mode) of the mesh-wide policy in force, or null), C(observed).
        - C(namespaces) maps each namespace to C(mode) (its effective namespace-wide mode), C(decided_by) (the
          policy that set it, or Istio's default), C(policy) (the namespace-wide policy in force, or null),
          C(policies) (each with C(name), C(scope) namespace, workload or ignored, C(mode) as written,
          C(selector), C(port_level_mtls), C(created), C(selects)) and C(workloads) (per pod with a sidecar,
          C(mode), C(decided_by), C(policy), C(ports) with the mode of each port of C(portLevelMtls),
          C(selected_by)).
        - C(probed), C(probes) (each with C(pod), C(container), C(address), C(port), C(outcome) answered, refused,
          unreachable or intercepted, C(status_line), C(detail), C(connected), C(seconds), C(control) with C(port),
          C(outcome), C(status_line) and C(detail) of the pod's control probe, and C(expected)) and C(probe_skipped).
      returned: when the check ran
      type: dict
      sample:
        expected_mode: STRICT
        api_version: security.istio.io/v1
        root_namespace: istio-system
        mesh_policy: null
        namespaces:
          jiuxi:
            mode: STRICT
            decided_by: namespace policy jiuxi/default
            policy: jiuxi/default
            policies:
              - {name: default, scope: namespace, mode: STRICT, selector: {}, port_level_mtls: {},
                 created: "2026-12-06T10:00:00Z", selects: []}
            workloads:
              nginx-7c5b8d65b8-xk2mq: {mode: STRICT, decided_by: namespace policy jiuxi/default, policy: null,
                                       ports: {}, selected_by: []}
        probed: true
        probes:
          - {pod: jiuxi/nginx-7c5b8d65b8-xk2mq, container: nginx, address: 10.244.1.5, port: 80, outcome: refused,
             status_line: null, detail: connection reset without an HTTP response, connected: true, seconds: 0.004,
             control: {port: 9, outcome: refused, status_line: null,
                       detail: connection reset without an HTTP response},
             expected: refused}
        probe_skipped: []
failures:
  description: Every failure of every check, prefixed with the check name.
  returned: always
  type: list
  elements: str
  sample: ["sidecars: pod jiuxi/nginx-7c5b8d65b8-xk2mq has no istio-proxy container (containers: ['nginx'])"]
passed:
  description: Whether every check passed.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
from ansible_collections.meshops.istio.plugins.module_utils.k8s.client import HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR
from ansible_collections.meshops.istio.plugins.module_utils.k8s.module import k8s_module
from ansible_collections.meshops.istio.plugins.module_utils.verify.runner import VerifyRunner

CHECKS = ["control_plane", "sidecars", "http", "traffic_split", "versions_seen", "mtls"]


def module_options():
    return dict(
        checks={"type": "list", "elements": "str", "required": True, "choices": CHECKS},
        istio_namespace={"type": "str", "default": "istio-system"},
        istioctl_path={"type": "path"},
        validate_certs_http={"type": "bool", "default": True},
        ingress={
            "type": "dict",
            "default": {},
            "options": {
                "host": {"type": "str"},
                "port": {"type": "int"},
                "scheme": {"type": "str", "choices": ["http", "https"], "default": "http"},
                "service": {"type": "str", "default": "istio-ingressgateway"},
                "port_name": {"type": "str", "default": "http2"},
            },
        },
        control_plane={
            "type": "dict",
            "default": {},
            "options": {
                "deployments": {"type": "list", "elements": "str", "default": ["istiod"]},
                "compare_istioctl_version": {"type": "bool", "default": True},
            },
        },
        sidecars={
            "type": "dict",
            "default": {},
            "options": {"namespaces": {"type": "list", "elements": "str", "default": []}},
        },
        http={
            "type": "dict",
            "default": {},
            "options": {
                "url": {"type": "str"},
                "path": {"type": "str", "default": "/productpage"},
                "host_header": {"type": "str"},
                "status": {"type": "list", "elements": "int", "default": [200]},
                "body_pattern": {"type": "str", "default": "<title>Simple Bookstore App</title>"},
                "timeout": {"type": "float", "default": 5},
                "retries": {"type": "int", "default": 0},
                "delay": {"type": "float", "default": 2},
            },
        },
        traffic_split={
            "type": "dict",
            "default": {},
            "options": {
                "url": {"type": "str"},
                "path": {"type": "str", "default": "/"},
                "host_header": {"type": "str"},
                "destinations": {
                    "type": "list",
                    "elements": "dict",
                    "default": [],
                    "options": {
                        "name": {"type": "str", "required": True},
                        "pattern": {"type": "str", "required": True},
                        "weight": {"type": "int"},
                    },
                },
                "virtual_service": {
                    "type": "dict",
                    "options": {
                        "name": {"type": "str", "required": True},
                        "namespace": {"type": "str", "required": True},
                    },
                },
                "requests": {"type": "int", "default": 400},
                "confidence": {"type": "float", "default": 0.999},
                "caller_in_mesh": {"type": "bool", "default": False},
                "timeout": {"type": "float", "default": 5},
            },
        },
        versions_seen={
            "type": "dict",
            "default": {},
            "options": {
                "url": {"type": "str"},
                "path": {"type": "str", "default": "/productpage"},
                "host_header": {"type": "str"},
                "versions": {
                    "type": "dict",
                    "default": {v: rf"Reviews served by:\s*reviews-{v}-" for v in ("v1", "v2", "v3")},
                },
                "max_requests": {"type": "int", "default": 100},
                "timeout_seconds": {"type": "float", "default": 60},
                "timeout": {"type": "float", "default": 5},
            },
        },
        mtls={
            "type": "dict",
            "default": {},
            "options": {
                "namespaces": {"type": "list", "elements": "str", "default": []},
                "mode": {"type": "str", "choices": ["STRICT", "PERMISSIVE"], "default": "STRICT"},
                "probe": {"type": "bool", "default": False},
                "timeout": {"type": "float", "default": 3},
            },
        },
    )


def run(module):
    runner = VerifyRunner(module.params, run_command=_command_runner(module))
    if runner.needs_cluster() and not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    if runner.needs_istioctl() and not module.params["istioctl_path"]:
        module.params["istioctl_path"] = module.get_bin_path("istioctl", required=True)
        runner.params["istioctl_path"] = module.params["istioctl_path"]
    outcome = runner.run()
    for warning in outcome["warnings"]:
        module.warn(warning)
    return {
        "changed": False,
        "report": outcome["results"],
        "failures": outcome["failures"],
        "passed": outcome["passed"],
    }


def main():
    module = k8s_module(module_options(), supports_check_mode=True)
    result = run_module(module, lambda: run(module), "istio_verify")
    if not result["passed"]:
        module.fail_json(msg="istio_verify failed: " + "; ".join(result["failures"]), **result)
    module.exit_json(**result)


def _command_runner(module):
    def run(argv):
        return module.run_command(argv, environ_update={"LANG": "C", "LC_ALL": "C"})

    return run


if __name__ == "__main__":
    main()
