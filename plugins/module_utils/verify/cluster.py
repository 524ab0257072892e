# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``control_plane`` and ``sidecars`` checks: pure functions over API objects (dicts).

The module reads the objects with the shared client and passes them in, so the rules here are
unit-tested on recorded objects and exercised against the lab cluster by the integration tests.
"""

import re

from ansible_collections.meshops.istio.plugins.module_utils.k8s.rollout import (
    condition,
    is_available,
    progress_deadline_exceeded,
    rollout_pending,
)
from ansible_collections.meshops.istio.plugins.module_utils.verify.traffic import VerifyNotFound

PROXY_CONTAINER = "istio-proxy"
INIT_CONTAINERS = ("istio-init", "istio-validation")
INJECT_OPT_OUT = "sidecar.istio.io/inject"

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _result(name, **fields):
    result = {"name": name, "passed": False, "failures": [], "warnings": []}
    result.update(fields)
    return result


def major_minor(version):
    """(major, minor) from a version string ('1.31.0', '1.31-dev', 'docker.io/istio/pilot:1.31.0')."""
    match = _VERSION.search(version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def deployment_version(deployment):
    """The Istio version a control-plane Deployment runs: its image tag when that is a version,
    else its version label. The tag comes first because builds from Istio's main branch label
    their Helm charts 1.0.0 whatever they run; releases agree on both."""
    template = (deployment.get("spec") or {}).get("template") or {}
    for container in (template.get("spec") or {}).get("containers") or []:
        image = container.get("image") or ""
        if ":" in image.rsplit("/", 1)[-1]:
            tag = image.rsplit(":", 1)[1]
            if major_minor(tag):
                return tag
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    for key in ("app.kubernetes.io/version", "operator.istio.io/version"):
        if labels.get(key):
            return labels[key]
    return None


def check_control_plane(deployments, namespace, required, istioctl_version=None, revision_deployment="istiod"):
    """Every Deployment in the Istio namespace Available with all replicas ready and its rollout
    not stuck (one still under way is a warning); the required ones present; istiod's version
    (major.minor) equal to istioctl's.

    ``deployments``: Deployment dicts from ``namespace``; ``required``: names that must exist.
    """
    by_name = {d["metadata"]["name"]: d for d in deployments}
    states = {}
    failures = []
    warnings = []
    for name in required:
        if name not in by_name:
            failures.append(f"Deployment {namespace}/{name} not found")
    for name, deployment in sorted(by_name.items()):
        spec_replicas = (deployment.get("spec") or {}).get("replicas", 1)
        status = deployment.get("status") or {}
        ready = status.get("readyReplicas") or 0
        available = is_available(deployment)
        pending = rollout_pending(deployment) if spec_replicas else None
        states[name] = {
            "replicas": spec_replicas,
            "ready_replicas": ready,
            "available": available,
            "rollout_pending": pending,
            "version": deployment_version(deployment),
        }
        if spec_replicas == 0:
            failures.append(f"Deployment {namespace}/{name} is scaled to 0 replicas")
        elif not available:
            reason = (condition(deployment, "Available") or {}).get("message") or "no Available condition yet"
            failures.append(f"Deployment {namespace}/{name} is not Available ({reason})")
        elif ready < spec_replicas:
            failures.append(f"Deployment {namespace}/{name} has {ready}/{spec_replicas} replicas ready")
        elif pending:
            # The old pods still serve, so a rollout under way is only a warning; one the
            # Deployment controller has given up on means the current spec will not run.
            stuck = progress_deadline_exceeded(deployment)
            if stuck:
                failures.append(
                    f"Deployment {namespace}/{name}: rollout stuck ({pending}; {stuck}); the old pods "
                    f"still serve (kubectl -n {namespace} rollout status deployment/{name})"
                )
            else:
                warnings.append(
                    f"Deployment {namespace}/{name}: rollout in progress ({pending}); the old pods serve until it ends"
                )
    if not by_name:
        failures.append(f"no Deployment in namespace {namespace}: is the Istio control plane installed there?")
    control_plane_version = states.get(revision_deployment, {}).get("version")
    if istioctl_version is not None:
        ours, theirs = major_minor(istioctl_version), major_minor(control_plane_version)
        if ours is None or theirs is None:
            warnings.append(
                f"cannot compare versions: istioctl {istioctl_version!r}, "
                f"{revision_deployment} {control_plane_version!r}"
            )
        elif ours != theirs:
            failures.append(
                f"istioctl {istioctl_version} does not match the control plane ({revision_deployment} "
                f"{control_plane_version}); use the istioctl of the installed release (istioctl_path)"
            )
    return _result(
        "control_plane",
        namespace=namespace,
        deployments=states,
        istiod_version=control_plane_version,
        istioctl_version=istioctl_version,
        observed=len(states),
        failures=failures,
        warnings=warnings,
        passed=not failures,
    )


def _opted_out(pod):
    metadata = pod.get("metadata") or {}
    for source in (metadata.get("labels") or {}, metadata.get("annotations") or {}):
        if str(source.get(INJECT_OPT_OUT, "")).lower() == "false":
            return True
    return False


def pod_sidecar_state(pod):
    """Containers, init containers and READY count of one pod, the way kubectl counts READY
    (regular containers plus native sidecars: init containers with restartPolicy Always)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    containers = [c["name"] for c in spec.get("containers") or []]
    init_containers = [c["name"] for c in spec.get("initContainers") or []]
    native_sidecars = [c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    ready_names = {c["name"] for c in status.get("containerStatuses") or [] if c.get("ready")}
    ready_names |= {c["name"] for c in status.get("initContainerStatuses") or [] if c.get("ready")}
    counted = containers + native_sidecars
    return {
        "containers": containers,
        "init_containers": init_containers,
        "has_proxy": PROXY_CONTAINER in containers or PROXY_CONTAINER in native_sidecars,
        "has_init": any(name in init_containers for name in INIT_CONTAINERS),
        "ready": f"{sum(1 for name in counted if name in ready_names)}/{len(counted)}",
        "all_ready": bool(counted) and all(name in ready_names for name in counted),
        "phase": status.get("phase"),
        "host_network": bool(spec.get("hostNetwork")),
    }


def check_sidecars(pods_by_namespace):
    """Every running pod in the given namespaces has istio-proxy, an istio-init (or
    istio-validation) init container, and all its containers ready (READY n/n)."""
    failures = []
    report = {}
    skipped = []
    for namespace, pods in sorted(pods_by_namespace.items()):
        if pods is None:
            failures.append(f"namespace {namespace} not found")
            continue
        if not pods:
            failures.append(f"namespace {namespace} has no pods to check")
        for pod in pods:
            name = f"{namespace}/{pod['metadata']['name']}"
            state = pod_sidecar_state(pod)
            if state["phase"] in ("Succeeded", "Failed"):
                skipped.append(f"{name}: {state['phase']}")
                continue
            if pod["metadata"].get("deletionTimestamp"):
                # replaced by a restart (e.g. after the namespace was labelled): it is going away
                skipped.append(f"{name}: terminating")
                continue
            if _opted_out(pod):
                skipped.append(f"{name}: {INJECT_OPT_OUT}=false")
                continue
            report[name] = state
            if state["host_network"]:
                failures.append(f"pod {name} uses hostNetwork and cannot have a sidecar")
                continue
            if not state["has_proxy"]:
                failures.append(f"pod {name} has no {PROXY_CONTAINER} container (containers: {state['containers']})")
            if not state["has_init"]:
                failures.append(f"pod {name} has no {' or '.join(INIT_CONTAINERS)} init container")
            if not state["all_ready"]:
                failures.append(f"pod {name} is READY {state['ready']}, not all containers ready")
    if not report and not failures:
        failures.append(
            "no running pod was checked in "
            + ", ".join(sorted(pods_by_namespace))
            + (f" (skipped: {'; '.join(skipped)})" if skipped else "")
        )
    return _result(
        "sidecars", pods=report, skipped=skipped, observed=len(report), failures=failures, passed=not failures
    )


def ingress_address(pods, service, port_name="http2"):
    """(host, node port) of the ingress gateway, the tutorial's INGRESS_HOST / INGRESS_PORT:
    the hostIP of a running gateway pod and the node port of the Service port ``port_name``."""
    name = f"{service['metadata'].get('namespace')}/{service['metadata']['name']}" if service else "ingress gateway"
    if service is None:
        raise VerifyNotFound(
            "Service istio-system/istio-ingressgateway not found; install the ingress gateway or give url"
        )
    node_port = None
    for port in (service.get("spec") or {}).get("ports") or []:
        if port.get("name") == port_name:
            node_port = port.get("nodePort")
    if not node_port:
        raise VerifyNotFound(
            f"Service {name} has no node port on its {port_name!r} port (type "
            f"{(service.get('spec') or {}).get('type')}); expose it as NodePort or give url"
        )
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") == "Running" and status.get("hostIP"):
            return status["hostIP"], node_port
    raise VerifyNotFound(f"no running ingress gateway pod with a hostIP for {name}")
