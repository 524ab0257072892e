# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a Deployment's rollout stands, judged from its status as ``kubectl rollout status``
judges it.

A Deployment stays Available with its ready count full while a new pod cannot start, because
the old pod keeps serving; only the updated, old and available counts (and the Progressing
condition once its deadline has passed) show that the current spec is not what runs.
"""


def condition(obj, kind):
    """The status condition of type ``kind``, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def rollout_pending(deployment):
    """None when the current spec is rolled out (observed, every replica updated, ready and
    available, none of an older version left), else what is pending, e.g. ``1/1 updated, 1 old
    replica(s) still there``."""
    status = deployment.get("status") or {}
    desired = (deployment.get("spec") or {}).get("replicas", 1)
    ready = status.get("readyReplicas", 0) or 0
    updated = status.get("updatedReplicas", 0) or 0
    replicas = status.get("replicas", 0) or 0
    observed = status.get("observedGeneration", 0) or 0
    generation = (deployment.get("metadata") or {}).get("generation", 0) or 0
    if observed < generation or updated < desired or ready < desired:
        return f"{updated}/{desired} updated, {ready}/{desired} ready"
    if replicas > updated:
        return f"{updated}/{desired} updated, {replicas - updated} old replica(s) still there"
    available = status.get("availableReplicas", updated) or 0
    if available < updated:
        return f"{available}/{updated} updated replicas available"
    return None


def progress_deadline_exceeded(deployment):
    """The Progressing condition's message when the Deployment controller has given up waiting
    for the rollout (reason ProgressDeadlineExceeded, after spec.progressDeadlineSeconds), else
    None."""
    progressing = condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return progressing.get("message") or "progress deadline exceeded"
    return None


def is_available(deployment):
    """Whether the Available condition is True."""
    return (condition(deployment, "Available") or {}).get("status") == "True"
