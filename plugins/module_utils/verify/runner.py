# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the istio_verify checks named by the caller: reads the cluster, calls the checks.

``params`` is the module's parameter dict; ``run_command(argv) -> (rc, stdout, stderr)`` runs
istioctl (the module passes ``AnsibleModule.run_command`` with LANG=C).
"""

import json
import math
import socket

from ansible_collections.meshops.istio.plugins.module_utils.k8s.args import request_timeout_problem
from ansible_collections.meshops.istio.plugins.module_utils.k8s.client import NotFoundError, get_client
from ansible_collections.meshops.istio.plugins.module_utils.verify import cluster, mtls, traffic

CLUSTER_CHECKS = {"control_plane", "sidecars", "mtls"}


def istioctl_client_version(istioctl, run_command):
    """istioctl's own version (``istioctl version --remote=false -o json``)."""
    rc, out, err = run_command([istioctl, "version", "--remote=false", "-o", "json"])
    if rc != 0:
        raise traffic.VerifyError(f"{istioctl} version failed (rc={rc}): {err.strip() or out.strip()}")
    try:
        data = json.loads(out)
        return data["clientVersion"]["version"]
    except (ValueError, KeyError, TypeError):
        return out.strip().splitlines()[-1] if out.strip() else None


# (check, option, smallest accepted value, whether the smallest is excluded, what to give)
_LIMITS = (
    ("http", "retries", 0, False, "0 for one attempt, or the number of attempts after the first"),
    ("http", "timeout", 0, True, "the seconds one request may take, e.g. 5"),
    ("http", "delay", 0, False, "the seconds between attempts, e.g. 2"),
    ("traffic_split", "requests", 1, False, "the number of requests to send, e.g. 400"),
    ("traffic_split", "timeout", 0, True, "the seconds one request may take, e.g. 5"),
    ("versions_seen", "max_requests", 1, False, "the most requests to send, e.g. 100"),
    ("versions_seen", "timeout_seconds", 0, True, "the seconds to keep trying, e.g. 60"),
    ("versions_seen", "timeout", 0, True, "the seconds one request may take, e.g. 5"),
    ("mtls", "timeout", 0, True, "the seconds one probe may wait to connect and again for the answer, e.g. 3"),
)


def count_problems(params):
    """Messages for counts and durations that cannot be meant (negative, zero where it means "never")."""
    problems = []
    checks = params["checks"]
    for check, option, smallest, excluded, hint in _LIMITS:
        if check not in checks:
            continue
        value = (params.get(check) or {}).get(option)
        if value is None:
            continue
        if not math.isfinite(value):
            problems.append(f"{check}.{option} is {value:g}: it must be a finite number; give {hint}")
        elif value < smallest or (excluded and value == smallest):
            bound = f"more than {smallest}" if excluded else f"at least {smallest}"
            problems.append(f"{check}.{option} is {value:g}: it must be {bound}; give {hint}")
    if "http" in checks:
        bad = [code for code in params["http"]["status"] if not 100 <= code <= 599]
        if bad or not params["http"]["status"]:
            problems.append(f"http.status {params['http']['status']} must list HTTP status codes (100-599), e.g. [200]")
    if "versions_seen" in checks and not params["versions_seen"]["versions"]:
        problems.append("versions_seen.versions is empty: give each version a name and a pattern its responses match")
    if "traffic_split" in checks:
        split = params["traffic_split"]
        weights = [d.get("weight") for d in split["destinations"]]
        negative = [d["name"] for d in split["destinations"] if (d.get("weight") or 0) < 0]
        if negative:
            problems.append(f"traffic_split.destinations {negative} have a negative weight: give weights of 0 to 100")
        above = [d["name"] for d in split["destinations"] if (d.get("weight") or 0) > 100]
        if above:
            problems.append(
                f"traffic_split.destinations {above} have a weight above 100: give weights of 0 to 100, "
                "as the VirtualService route does"
            )
        if weights and None not in weights and sum(weights) == 0 and not split.get("virtual_service"):
            problems.append(
                "traffic_split.destinations all have weight 0, so no response could match the weights: give the "
                "weights of the route (for example 90 and 10), or virtual_service to read them"
            )
    port = (params.get("ingress") or {}).get("port")
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"ingress.port {port} is not a port number (1-65535)")
    timeout_problem = request_timeout_problem(params)
    if timeout_problem:
        problems.append(timeout_problem)
    return problems


def require_evidence(result):
    """A check passes only on what it observed: no observation, or a result that failed without
    saying why, is a failure with a reason, never a pass."""
    if not result.get("observed"):
        result["failures"].append(
            "the check made no observation (nothing was requested or read), so it cannot pass; see the check's options"
        )
    elif not result["passed"] and not result["failures"]:
        result["failures"].append("the check did not pass and gave no reason (a bug in meshops.istio)")
    result["passed"] = not result["failures"]
    return result


class VerifyRunner:
    def __init__(self, params, run_command=None, client=None):
        self.params = params
        self.run_command = run_command
        self._client = client
        self._ingress_base = None

    @property
    def client(self):
        if self._client is None:
            self._client = get_client(self.params)
        return self._client

    def needs_cluster(self):
        checks = set(self.params["checks"])
        if checks & CLUSTER_CHECKS:
            return True
        for name in checks:
            options = self.params.get(name) or {}
            if not options.get("url") and not (
                self.params["ingress"].get("host") and self.params["ingress"].get("port")
            ):
                return True
        split = self.params.get("traffic_split") or {}
        return "traffic_split" in checks and bool(split.get("virtual_service"))

    def needs_istioctl(self):
        return "control_plane" in self.params["checks"] and self.params["control_plane"]["compare_istioctl_version"]

    def run(self):
        self._validate()
        results, failures, warnings = {}, [], []
        for name in self.params["checks"]:
            result = require_evidence(getattr(self, "_" + name)(self.params.get(name) or {}))
            results[name] = result
            failures.extend(f"{name}: {failure}" for failure in result["failures"])
            warnings.extend(f"{name}: {warning}" for warning in result["warnings"])
        return {"results": results, "failures": failures, "warnings": warnings, "passed": not failures}

    def _validate(self):
        """Reject unusable arguments before any request is sent."""
        checks = self.params["checks"]
        for problem in count_problems(self.params):
            raise traffic.VerifyError(problem)
        if "sidecars" in checks and not self.params["sidecars"]["namespaces"]:
            raise traffic.VerifyError("sidecars.namespaces is empty: name the namespaces whose pods need sidecars")
        if "mtls" in checks and not self.params["mtls"].get("namespaces"):
            raise traffic.VerifyError(
                "mtls.namespaces is empty: name the namespaces whose mutual TLS mode to check, e.g. [jiuxi]"
            )
        if "traffic_split" in checks:
            split = self.params["traffic_split"]
            if len(split["destinations"]) < 1:
                raise traffic.VerifyError(
                    "traffic_split.destinations is empty: give each destination a name and pattern"
                )
            if not split.get("virtual_service"):
                missing = [d["name"] for d in split["destinations"] if d.get("weight") is None]
                if missing:
                    raise traffic.VerifyError(
                        f"traffic_split.destinations {missing} have no weight: give weight, or virtual_service "
                        "to read the weights from"
                    )
            if not 0 < split["confidence"] < 1:
                raise traffic.VerifyError("traffic_split.confidence must be between 0 and 1 (e.g. 0.999)")
            for destination in split["destinations"]:
                traffic.compile_pattern(destination["pattern"], f"traffic_split.destinations.{destination['name']}")
        if "versions_seen" in checks:
            for name, pattern in self.params["versions_seen"]["versions"].items():
                traffic.compile_pattern(pattern, f"versions_seen.versions.{name}")

    # -- address of the ingress -----------------------------------------------------------

    def _url(self, options):
        if options.get("url"):
            return options["url"]
        if self._ingress_base is None:
            ingress = self.params["ingress"]
            host, port = ingress.get("host"), ingress.get("port")
            if not host or not port:
                namespace = self.params["istio_namespace"]
                service = self.client.get("v1", "Service", ingress["service"], namespace)
                if service is None:
                    raise traffic.VerifyNotFound(
                        f"Service {namespace}/{ingress['service']} not found; install the ingress gateway, "
                        "or give ingress.host/ingress.port or the check's url"
                    )
                pods = self.client.list("v1", "Pod", namespace, label_selector="istio=ingressgateway")
                found_host, found_port = cluster.ingress_address(pods, service, ingress["port_name"])
                host, port = host or found_host, port or found_port
            self._ingress_base = f"{ingress['scheme']}://{host}:{port}"
        return self._ingress_base + options.get("path", "/")

    # -- checks ---------------------------------------------------------------------------

    def _control_plane(self, options):
        namespace = self.params["istio_namespace"]
        if self.client.get("v1", "Namespace", namespace) is None:
            raise traffic.VerifyNotFound(f"namespace {namespace} not found: is the Istio control plane installed?")
        deployments = self.client.list("apps/v1", "Deployment", namespace)
        version = None
        if options["compare_istioctl_version"]:
            version = istioctl_client_version(self.params["istioctl_path"], self.run_command)
        return cluster.check_control_plane(deployments, namespace, options["deployments"], version)

    def _sidecars(self, options):
        pods = {}
        for namespace in options["namespaces"]:
            if self.client.get("v1", "Namespace", namespace) is None:
                pods[namespace] = None
            else:
                pods[namespace] = self.client.list("v1", "Pod", namespace)
        return cluster.check_sidecars(pods)

    def _peer_authentication_api(self):
        """security.istio.io/v1 when the cluster serves it, else v1beta1 (Istio before 1.22)."""
        for api_version in mtls.API_VERSIONS:
            try:
                self.client.resource(api_version, mtls.KIND)
            except NotFoundError:
                continue
            return api_version
        raise traffic.VerifyNotFound(
            f"the cluster serves {mtls.KIND} in none of {', '.join(mtls.API_VERSIONS)}: is Istio (its CRDs) installed?"
        )

    def _mtls(self, options):
        api_version = self._peer_authentication_api()
        root = self.params["istio_namespace"]
        mesh_policies = self.client.list(api_version, mtls.KIND, root)
        policies, pods = {}, {}
        for namespace in options["namespaces"]:
            if self.client.get("v1", "Namespace", namespace) is None:
                policies[namespace] = None
                continue
            policies[namespace] = self.client.list(api_version, mtls.KIND, namespace)
            pods[namespace] = self.client.list("v1", "Pod", namespace)
        probes, skipped = None, []
        if options["probe"]:
            targets, skipped = mtls.probe_targets(pods)
            probes = mtls.run_probes(targets, options["timeout"])
        return mtls.check_mtls(
            root,
            mesh_policies,
            policies,
            pods,
            expected=options["mode"],
            api_version=api_version,
            probes=probes,
            probe_skipped=skipped,
            timeout=options["timeout"],
            host=socket.gethostname(),
        )

    def _http(self, options):
        return traffic.check_http(
            self._url(options),
            host_header=options.get("host_header"),
            expected_status=tuple(options["status"]),
            body_pattern=options.get("body_pattern"),
            timeout=options["timeout"],
            retries=options["retries"],
            delay=options["delay"],
            validate_certs=self.params["validate_certs_http"],
        )

    def _traffic_split(self, options):
        destinations = {d["name"]: d["pattern"] for d in options["destinations"]}
        mesh_only = False
        reference = options.get("virtual_service")
        if reference:
            virtual_service = self.client.get(
                "networking.istio.io/v1", "VirtualService", reference["name"], reference["namespace"]
            )
            if virtual_service is None:
                raise traffic.VerifyNotFound(f"VirtualService {reference['namespace']}/{reference['name']} not found")
            weights = traffic.weights_from_virtual_service(virtual_service, destinations)
            mesh_only = traffic.virtual_service_is_mesh_only(virtual_service)
        else:
            weights = {d["name"]: d["weight"] for d in options["destinations"]}
        result = traffic.check_traffic_split(
            self._url(options),
            destinations,
            weights,
            requests=options["requests"],
            confidence=options["confidence"],
            host_header=options.get("host_header"),
            timeout=options["timeout"],
            validate_certs=self.params["validate_certs_http"],
            caller_in_mesh=options["caller_in_mesh"],
            mesh_only_route=mesh_only,
        )
        result["weights"] = weights
        return result

    def _versions_seen(self, options):
        return traffic.check_versions_seen(
            self._url(options),
            options["versions"],
            max_requests=options["max_requests"],
            timeout_seconds=options["timeout_seconds"],
            host_header=options.get("host_header"),
            timeout=options["timeout"],
            validate_certs=self.params["validate_certs_http"],
        )
