# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest mode: manual injection with the real ``istioctl kube-inject``.

The injector configuration is either the cluster's (the module reads the ConfigMaps
``istio-sidecar-injector`` and ``istio`` and hands their content to istioctl as files, the way
``istioctl kube-inject --help`` shows for captured configuration; nothing has to reach istiod)
or configuration files given by the caller for offline use.
"""

import copy
import os
import tempfile
import traceback

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - hosts without PyYAML
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.meshops.istio.plugins.module_utils.injection.common import (
    INJECTABLE_KINDS,
    STATUS_ANNOTATION,
    InjectionError,
    container_names,
    has_proxy,
    object_name,
    pod_template_of,
)

# Fields the API server owns; left out when comparing a desired object with the live one.
_SERVER_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")
_SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")


def load_documents(text, what):
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise InjectionError(f"{what} is not valid YAML: {exc}") from exc
    flat = []
    for doc in documents:
        if not isinstance(doc, dict):
            raise InjectionError(
                f"{what}: every document must be a Kubernetes object (a mapping), got {type(doc).__name__}"
            )
        if (doc.get("kind") or "").endswith("List") and "items" in doc:
            flat.extend(doc.get("items") or [])
        else:
            flat.append(doc)
    for doc in flat:
        if not doc.get("apiVersion") or not doc.get("kind") or not (doc.get("metadata") or {}).get("name"):
            raise InjectionError(f"{what}: every object needs apiVersion, kind and metadata.name; got {doc!r:.120}")
    return flat


def resources_from_params(src=None, definition=None):
    """The objects to inject from ``src`` (a file path) or ``definition`` (YAML text, a dict, or a list)."""
    if src:
        if not os.path.isfile(src):
            raise InjectionError(f"src {src} does not exist or is not a file")
        with open(src, "rb") as handle:
            raw = handle.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InjectionError(
                f"src {src} is not a text file (byte {exc.start} is not UTF-8); give a YAML manifest"
            ) from exc
        return load_documents(text, f"src {src}")
    if isinstance(definition, str):
        return load_documents(definition, "definition")
    if isinstance(definition, dict):
        return load_documents(yaml.safe_dump(definition), "definition")
    if isinstance(definition, list):
        return load_documents(yaml.safe_dump_all(definition), "definition")
    raise InjectionError("manifest mode needs src (a file) or definition (YAML text, an object or a list of objects)")


def set_namespace(resources, namespace, cluster_scoped_kinds=("Namespace", "ClusterRole", "ClusterRoleBinding")):
    """Give namespaced objects without a namespace the target one (like ``kubectl apply -n``);
    an object naming a different namespace is an error."""
    for obj in resources:
        if obj["kind"] in cluster_scoped_kinds or obj["kind"].startswith("CustomResourceDefinition"):
            continue
        metadata = obj.setdefault("metadata", {})
        current = metadata.get("namespace")
        if namespace and current and current != namespace:
            raise InjectionError(f"{object_name(obj)} names namespace {current}, but namespace is {namespace}")
        if namespace and not current:
            metadata["namespace"] = namespace
    return resources


def check_injectable(resources):
    """Refuse what istioctl would silently leave without a sidecar: hostNetwork pods."""
    problems = []
    for obj in resources:
        _metadata, spec = pod_template_of(obj)
        if spec is not None and spec.get("hostNetwork"):
            problems.append(
                f"{object_name(obj)} uses hostNetwork: true, and a host-network pod cannot get a sidecar "
                "(its traffic is the node's); remove hostNetwork or leave this object out of the manifest"
            )
    if problems:
        raise InjectionError("; ".join(problems))


def already_injected(obj):
    """The object's pods already get a sidecar from the object itself (manual injection done)."""
    _metadata, spec = pod_template_of(obj)
    return spec is not None and has_proxy(spec)


def injection_summary(obj):
    metadata, spec = pod_template_of(obj)
    if spec is None:
        return None
    summary = {"object": object_name(obj), **container_names(spec)}
    summary["injected"] = has_proxy(spec)
    summary["status_annotation"] = STATUS_ANNOTATION in ((metadata or {}).get("annotations") or {})
    return summary


def _write(directory, name, content):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)
    return path


def kube_inject(istioctl, resources, run_command, config, revision=None):
    """Run ``istioctl kube-inject`` on the resources; returns (injected resources, warnings).

    ``config``: {"inject": text, "mesh": text, "values": text or None} (the cluster's ConfigMap
    data) or {"inject_file": path, "mesh_file": path, "values_file": path or None}.
    """
    with tempfile.TemporaryDirectory(prefix="meshops-kube-inject-") as directory:
        source = _write(directory, "input.yaml", yaml.safe_dump_all(resources, sort_keys=False))
        inject_file = config.get("inject_file") or _write(directory, "inject-config.yaml", config["inject"])
        mesh_file = config.get("mesh_file") or _write(directory, "mesh.yaml", config["mesh"])
        values_file = config.get("values_file")
        if not values_file and config.get("values"):
            values_file = _write(directory, "values.json", config["values"])
        argv = [istioctl, "kube-inject", "-f", source, "--injectConfigFile", inject_file, "--meshConfigFile", mesh_file]
        if values_file:
            argv += ["--valuesFile", values_file]
        # Always name the revision: without --revision, istioctl asks the cluster for the default
        # one (and waits for it when no cluster is reachable), even with configuration files.
        argv += ["--revision", revision or "default"]
        rc, out, err = run_command(argv)
    if rc != 0:
        raise InjectionError(f"istioctl kube-inject failed (rc={rc}): {(err or out).strip()}")
    injected = load_documents(out, "istioctl kube-inject output")
    if len(injected) != len(resources):
        raise InjectionError(f"istioctl kube-inject returned {len(injected)} objects for {len(resources)} given")
    warnings = [line.strip() for line in (err or "").splitlines() if line.strip()]
    return [clean_for_apply(obj) for obj in injected], warnings


def clean_for_apply(obj):
    """Drop what kube-inject's serialiser adds but an apply must not carry (status, null timestamps)."""
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    metadata = obj.get("metadata") or {}
    if metadata.get("creationTimestamp") is None:
        metadata.pop("creationTimestamp", None)
    template = (obj.get("spec") or {}).get("template") or {}
    if (template.get("metadata") or {}).get("creationTimestamp", "x") is None:
        template["metadata"].pop("creationTimestamp")
    job_template = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
    inner = (job_template.get("template") or {}).get("metadata") or {}
    if inner.get("creationTimestamp", "x") is None:
        inner.pop("creationTimestamp")
    return obj


def normalise(obj):
    """The object as compared for idempotence: no server-owned metadata, no status."""
    if obj is None:
        return None
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    metadata = obj.get("metadata") or {}
    for key in _SERVER_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations") or {}
    for key in _SERVER_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        metadata.pop("annotations", None)
    return obj


def injectable(resources):
    return [obj for obj in resources if obj.get("kind") in INJECTABLE_KINDS]
