"""Why pods are not running: one readable line per pod, from its status as the API reports it.

What a person would read in ``kubectl describe pod``, reduced to the first cause: not scheduled
(and the scheduler's message), a container waiting (ImagePullBackOff, CrashLoopBackOff with the
last exit code, CreateContainerConfigError, ...), a failed init container, or not ready yet.
"""


def _describe(pod):
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"


def _container_problem(kind, status):
    name = status.get("name", "?")
    state = status.get("state") or {}
    waiting = state.get("waiting")
    if waiting:
        text = f"{kind} {name}: {waiting.get('reason') or 'waiting'}"
        last = (status.get("lastState") or {}).get("terminated") or {}
        if last:
            reason = f", {last['reason']}" if last.get("reason") else ""
            text += f" (last exit code {last.get('exitCode', '?')}{reason})"
        if waiting.get("message"):
            text += f": {waiting['message']}"
        return text
    terminated = state.get("terminated")
    if terminated and (kind == "container" or terminated.get("exitCode", 0) != 0):
        code = terminated.get("exitCode", "?")
        return f"{kind} {name}: terminated ({terminated.get('reason') or '?'}, exit code {code})"
    if kind == "container" and not status.get("ready"):
        return f"container {name}: running, not ready"
    return None


def pod_problems(pods, namespace=None):
    """Readable lines, one per pod that is not Running with every container ready (Succeeded
    and terminating pods are left out); ``namespace`` limits the pods looked at."""
    problems = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if namespace is not None and meta.get("namespace") != namespace:
            continue
        status = pod.get("status") or {}
        phase = status.get("phase") or "Unknown"
        if phase == "Succeeded" or meta.get("deletionTimestamp"):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        where = _describe(pod) + (f" on {node}" if node else "")
        scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        if not node and scheduled.get("status") == "False":
            why = f"{scheduled.get('reason') or 'Unschedulable'}: {scheduled.get('message') or 'no message'}"
            problems.append(f"{where}: not scheduled ({why})")
            continue
        found = [_container_problem("init container", s) for s in status.get("initContainerStatuses") or []]
        found += [_container_problem("container", s) for s in status.get("containerStatuses") or []]
        found = [p for p in found if p]
        if found:
            problems.append(f"{where}: {'; '.join(found)}")
        elif phase != "Running":
            problems.append(f"{where}: {phase}" + (f" ({status['reason']})" if status.get("reason") else ""))
    return problems
