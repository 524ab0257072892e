# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain-Python helpers for installing Istio from its manifests: split the output of
``istioctl manifest generate`` into objects, order them for server-side apply (CRDs first) and
for removal (the reverse, CRDs only on purge), read ``istioctl profile list`` and say which
Deployments are not Available yet.

No Ansible imports: ``mesh.install`` (the ``istio_install`` module) and the filter plugins call
these, and the unit tests import them directly.
"""

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.istio.plugins.module_utils.k8s.rollout import (
    condition,
    is_available,
    rollout_pending,
)

try:
    import yaml
except ImportError:  # only the controller-side filters use this module; PyYAML is there
    yaml = None

# Kinds that have no namespace. A namespaced object without metadata.namespace gets the
# install namespace (istioctl normally writes it out).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
    }
)


class ManifestError(MeshopsError, ValueError):
    """The manifest text is not a list of Kubernetes objects."""


def _documents(text):
    if yaml is None:
        raise ManifestError("PyYAML is required to read manifests (pip install PyYAML)")
    try:
        # The C loader (libyaml) reads the demo profile's ~1 MB several times faster.
        docs = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as e:
        raise ManifestError(f"the manifest is not valid YAML: {e}") from e
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"a manifest document is a {type(doc).__name__}, not an object")
        if doc.get("kind") == "List" or (doc.get("kind", "").endswith("List") and "items" in doc):
            yield from (item for item in doc.get("items") or [] if item)
        else:
            yield doc


def _key(obj):
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def split_manifest(text, namespace="istio-system"):
    """The objects of a multi-document manifest, in order, each with a namespace when it
    needs one. Empty documents are dropped; ``kind: List`` is expanded; a duplicate object
    (same apiVersion, kind, namespace and name) is an error, since applying both would make
    the second run differ from the first."""
    objects = []
    seen = {}
    for index, doc in enumerate(_documents(text)):
        missing = [f for f in ("apiVersion", "kind") if not doc.get(f)]
        if not (doc.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            raise ManifestError(f"manifest object #{index + 1} lacks {', '.join(missing)}")
        meta = doc["metadata"]
        if doc["kind"] not in CLUSTER_SCOPED_KINDS and not meta.get("namespace"):
            doc = dict(doc, metadata=dict(meta, namespace=namespace))
        key = _key(doc)
        if key in seen:
            raise ManifestError("manifest object {} {} appears twice".format(doc["kind"], describe(doc)))
        seen[key] = True
        objects.append(doc)
    return objects


def describe(obj):
    meta = obj.get("metadata") or {}
    if meta.get("namespace"):
        return "{}/{}".format(meta["namespace"], meta.get("name"))
    return str(meta.get("name"))


def _crd_kinds(crds):
    kinds = set()
    for crd in crds:
        spec = crd.get("spec") or {}
        group = spec.get("group")
        kind = (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            kinds.add(("{}/{}".format(group, version.get("name")), kind))
    return kinds


def plan_manifest(text, namespace="istio-system"):
    """Split and group a manifest for apply and removal.

    Returns a dict:

    ``crds``
        CustomResourceDefinitions (applied first, then waited for until Established).
    ``namespaces``
        Namespace objects for every namespace the other objects live in (the manifest from
        ``istioctl manifest generate`` does not create istio-system itself).
    ``objects``
        Everything else, in manifest order: cluster-scoped first, then namespaced.
    ``custom``
        The subset of ``objects`` whose kind one of ``crds`` defines.
    ``deployments``
        ``namespace/name`` of every Deployment (what the role waits for).
    ``removal``
        ``objects`` in reverse order (what ``state: absent`` deletes; CRDs and namespaces
        are removed only on purge).
    ``counts``
        Number of objects per kind.
    """
    objs = split_manifest(text, namespace)
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    declared_ns = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Namespace"}
    rest = [o for o in objs if o["kind"] not in ("CustomResourceDefinition", "Namespace")]
    cluster = [o for o in rest if o["kind"] in CLUSTER_SCOPED_KINDS]
    namespaced = [o for o in rest if o["kind"] not in CLUSTER_SCOPED_KINDS]
    ns_names = []
    for o in namespaced:
        ns = o["metadata"]["namespace"]
        if ns not in ns_names:
            ns_names.append(ns)
    for ns in declared_ns:
        if ns not in ns_names:
            ns_names.append(ns)
    namespaces = [
        declared_ns.get(ns) or {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ns_names
    ]
    ordered = cluster + namespaced
    custom_kinds = _crd_kinds(crds)
    counts = {}
    for o in objs:
        counts[o["kind"]] = counts.get(o["kind"], 0) + 1
    return {
        "crds": crds,
        "namespaces": namespaces,
        "objects": ordered,
        "custom": [o for o in ordered if (o["apiVersion"], o["kind"]) in custom_kinds],
        "deployments": [describe(o) for o in namespaced if o["kind"] == "Deployment"],
        "removal": list(reversed(ordered)),
        "counts": dict(sorted(counts.items())),
    }


def istioctl_set_args(values):
    """``--set key=value`` arguments for istioctl from a mapping, in key order; booleans are
    written the way istioctl reads them (``true``/``false``), None as an empty value."""
    args = []
    for key in sorted(values or {}):
        value = values[key]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = ""
        elif isinstance(value, (dict, list)):
            raise ManifestError(
                f"--set {key}: a --set value must be a scalar; put structured values in the IstioOperator overlay"
            )
        else:
            text = str(value)
        args += ["--set", f"{key}={text}"]
    return args


def parse_profile_list(text):
    """Profile names from ``istioctl profile list``: the indented lines under the heading
    ("Istio configuration profiles:"). Older releases print the same shape."""
    names = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.endswith(":"):
            continue
        if line[:1].isspace():
            names.append(stripped.split()[0])
    return names


def deployments_not_available(deployments, wanted=None):
    """Human-readable reasons, one per Deployment that is not Available with all replicas
    updated and ready, and no replica of an older version left (as ``kubectl rollout status``
    decides: while a new pod cannot start, the old one keeps the Deployment Available and its
    ready count full); ``wanted`` (``namespace/name`` strings) also reports missing ones."""
    problems = []
    found = set()
    for dep in deployments:
        name = describe(dep)
        found.add(name)
        if wanted is not None and name not in wanted:
            continue
        if not is_available(dep):
            status = dep.get("status") or {}
            desired = (dep.get("spec") or {}).get("replicas", 1)
            ready = status.get("readyReplicas", 0) or 0
            reason = (condition(dep, "Available") or {}).get("message") or "no Available condition yet"
            problems.append(f"{name}: not Available ({ready}/{desired} ready; {reason})")
            continue
        pending = rollout_pending(dep)
        if pending:
            problems.append(f"{name}: rollout in progress ({pending})")
    for name in wanted or []:
        if name not in found:
            problems.append(f"{name}: not found")
    return problems


def crds_not_established(crds, wanted):
    """Names from ``wanted`` whose CustomResourceDefinition is missing or not Established yet
    (``crds``: the objects read back from the API server)."""
    established = {
        (crd.get("metadata") or {}).get("name")
        for crd in crds
        if (condition(crd, "Established") or {}).get("status") == "True"
    }
    return sorted(name for name in wanted if name not in established)


def apply_drift(registered):
    """The real per-object differences in a kubernetes.core.k8s result (one object or a list):
    ``[{"object": "Kind namespace/name", "before": ..., "after": ...}]``.

    An object counts when kubernetes.core reports it changed and, if it computed a diff (the
    task runs with ``diff: true``), the diff still differs once the API server's bookkeeping is
    left out: managedFields (the server rewrites its timestamps when another field manager
    wrote the object in between), resourceVersion, generation and status (controllers write
    it while we read and apply). A list of definitions also hides each object's diff inside
    ``result.results``, where Ansible's --diff output does not look; this brings it out."""
    if not isinstance(registered, dict):
        return []
    inner = registered.get("result") or {}
    results = inner.get("results") if isinstance(inner, dict) and "results" in inner else [registered]
    drift = []
    for res in results or []:
        if not isinstance(res, dict) or not res.get("changed"):
            continue
        obj = res.get("result") or {}
        name = f"{obj.get('kind', '?')} {describe(obj)}" if obj else "?"
        if "diff" not in res:
            drift.append({"object": name, "before": {}, "after": {}})
            continue
        diff = res.get("diff") or {}
        before, after = readable(diff.get("before")), readable(diff.get("after"))
        if before or after:
            drift.append({"object": name, "before": before, "after": after})
    return drift


def readable(side):
    """A diff side without the API server's bookkeeping (managedFields, resourceVersion,
    generation, status)."""
    if not isinstance(side, dict):
        return side if side is not None else {}
    out = {k: v for k, v in side.items() if k != "status"}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("managedFields", "resourceVersion", "generation")}
        if meta:
            out["metadata"] = meta
        else:
            out.pop("metadata")
    return out


def keep_fail_closed(objects, live):
    """The manifest's objects with each validating webhook istiod has already switched to
    ``failurePolicy: Fail`` kept at Fail.

    Istio's manifests ship the istiod validating webhooks with ``failurePolicy: Ignore`` and istiod
    switches them to Fail once its webhook serves (the validation controller, by an update, not
    an apply). Applying the manifest again would switch them back to Ignore, leaving the cluster
    failing open until istiod switches them again, and every re-run would report a change.
    ``live`` are the cluster's ValidatingWebhookConfigurations (any of them; matched by name)."""
    live_policies = {}
    for obj in live or []:
        name = (obj.get("metadata") or {}).get("name")
        for hook in obj.get("webhooks") or []:
            live_policies[(name, hook.get("name"))] = hook.get("failurePolicy")
    kept = []
    for obj in objects or []:
        if obj.get("kind") == "ValidatingWebhookConfiguration":
            name = (obj.get("metadata") or {}).get("name")
            hooks = obj.get("webhooks") or []
            if any(
                h.get("failurePolicy") == "Ignore" and live_policies.get((name, h.get("name"))) == "Fail" for h in hooks
            ):
                obj = dict(obj)
                obj["webhooks"] = [
                    dict(h, failurePolicy="Fail")
                    if h.get("failurePolicy") == "Ignore" and live_policies.get((name, h.get("name"))) == "Fail"
                    else h
                    for h in hooks
                ]
        kept.append(obj)
    return kept
