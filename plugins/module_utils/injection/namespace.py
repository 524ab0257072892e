# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Namespace mode: the injection labels, and which pods a label change leaves behind."""

from ansible_collections.meshops.istio.plugins.module_utils.injection.common import (
    INJECTION_LABEL,
    RESTARTABLE_KINDS,
    RESTARTED_AT,
    REVISION_LABEL,
    has_proxy,
    opted_out,
)


def label_patch(labels, state, revision=None):
    """Labels to set (value) or remove (None) so that the namespace has exactly one injection
    label when enabled - ``istio-injection=enabled``, or ``istio.io/rev=<revision>`` - and none
    when disabled. Only differences are returned; an empty dict means nothing to do."""
    labels = labels or {}
    if state == "enabled":
        wanted = (
            {REVISION_LABEL: revision, INJECTION_LABEL: None}
            if revision
            else {
                INJECTION_LABEL: "enabled",
                REVISION_LABEL: None,
            }
        )
    else:
        wanted = {INJECTION_LABEL: None, REVISION_LABEL: None}
    return {key: value for key, value in wanted.items() if labels.get(key) != value}


def apply_label_patch(labels, patch):
    after = dict(labels or {})
    for key, value in patch.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    return after


def owner_of(pod, replicasets):
    """(kind, name) of the workload that owns a pod: a Deployment through its ReplicaSet, or the
    StatefulSet/DaemonSet/Job directly; None for a bare pod. ``replicasets``: name -> ReplicaSet."""
    for reference in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if not reference.get("controller"):
            continue
        if reference["kind"] == "ReplicaSet":
            replicaset = replicasets.get(reference["name"])
            for parent in ((replicaset or {}).get("metadata") or {}).get("ownerReferences") or []:
                if parent.get("controller") and parent["kind"] == "Deployment":
                    return "Deployment", parent["name"]
        return reference["kind"], reference["name"]
    return None


def _restart_pending(pod, workload):
    """A restart was requested after this pod was created (so a rollout is replacing it)."""
    if workload is None:
        return False
    annotations = ((((workload.get("spec") or {}).get("template") or {}).get("metadata")) or {}).get(
        "annotations"
    ) or {}
    requested = annotations.get(RESTARTED_AT)
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return bool(requested and created and str(requested) > str(created))


def pods_needing_restart(pods, state, replicasets, workloads):
    """Pods created before the label change and so still without (enabled) or still with
    (disabled, webhook-injected) a sidecar.

    ``workloads``: (kind, name) -> workload object, used to tell webhook injection (template
    without istio-proxy) from manual injection (template with it) and to skip pods a requested
    restart is already replacing. Returns (needing_restart, cannot_inject): lists of dicts.
    """
    needing = []
    cannot = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or metadata.get("deletionTimestamp"):
            continue
        owner = owner_of(pod, replicasets)
        workload = workloads.get(owner) if owner else None
        entry = {
            "pod": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "owner_kind": owner[0] if owner else None,
            "owner": owner[1] if owner else None,
        }
        if state == "enabled":
            if has_proxy(spec) or opted_out(metadata):
                continue
            if spec.get("hostNetwork"):
                cannot.append(dict(entry, reason="hostNetwork pods cannot have a sidecar"))
                continue
            reason = "created before injection was enabled; has no istio-proxy"
        else:
            if not has_proxy(spec):
                continue
            template_spec = (((workload or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
            if workload is not None and has_proxy(template_spec):
                continue  # manually injected: the sidecar is in the workload itself
            reason = "created while injection was enabled; still has istio-proxy"
        if _restart_pending(pod, workload):
            continue
        entry["reason"] = reason
        entry["restartable"] = bool(owner and owner[0] in RESTARTABLE_KINDS)
        needing.append(entry)
    return needing, cannot


def restart_patch(timestamp):
    """The merge patch ``kubectl rollout restart`` sends."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: timestamp}}}}}
