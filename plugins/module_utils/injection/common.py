# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about injected and injectable objects shared by the namespace and manifest modes."""

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError

PROXY_CONTAINER = "istio-proxy"
INIT_CONTAINERS = ("istio-init", "istio-validation")
STATUS_ANNOTATION = "sidecar.istio.io/status"
INJECT_OPT_OUT = "sidecar.istio.io/inject"
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# Kinds whose pod template istioctl kube-inject rewrites.
INJECTABLE_KINDS = {
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "DeploymentConfig",
}
RESTARTABLE_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


class InjectionError(MeshopsError, ValueError):
    """Input that cannot be injected, or an injection step that failed; the message names it."""


def object_name(obj):
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{obj.get('kind')} {namespace + '/' if namespace else ''}{metadata.get('name')}"


def pod_template_of(obj):
    """(metadata, spec) of the pods an object creates, or (None, None) for other kinds."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return obj.get("metadata") or {}, spec
    if kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    elif kind in INJECTABLE_KINDS:
        template = spec.get("template") or {}
    else:
        return None, None
    return template.get("metadata") or {}, template.get("spec") or {}


def has_proxy(pod_spec):
    containers = [c.get("name") for c in pod_spec.get("containers") or []]
    native = [c.get("name") for c in pod_spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return PROXY_CONTAINER in containers or PROXY_CONTAINER in native


def container_names(pod_spec):
    return {
        "containers": [c.get("name") for c in pod_spec.get("containers") or []],
        "init_containers": [c.get("name") for c in pod_spec.get("initContainers") or []],
    }


def opted_out(metadata):
    for source in (metadata.get("labels") or {}, metadata.get("annotations") or {}):
        if str(source.get(INJECT_OPT_OUT, "")).lower() == "false":
            return True
    return False
