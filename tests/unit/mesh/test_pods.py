"""Why pods do not run, as the control-plane and samples roles report it."""

from __future__ import annotations

from ansible_collections.meshops.istio.plugins.module_utils.mesh.pods import pod_problems


def pod(name, phase="Running", node="w1", containers=(), inits=(), conditions=(), namespace="istio-system", **extra):
    return {
        "metadata": {"name": name, "namespace": namespace, **extra},
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": phase,
            "containerStatuses": list(containers),
            "initContainerStatuses": list(inits),
            "conditions": list(conditions),
        },
    }


def running(name="app", ready=True):
    return {"name": name, "ready": ready, "state": {"running": {}}}


def test_running_ready_and_succeeded_pods_are_fine():
    assert pod_problems([pod("istiod-1", containers=[running("discovery")])]) == []
    assert pod_problems([pod("job-1", phase="Succeeded", containers=[])]) == []


def test_unscheduled_pod_names_the_schedulers_message():
    unscheduled = pod(
        "istiod-1",
        phase="Pending",
        node=None,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory.",
            }
        ],
    )
    assert pod_problems([unscheduled]) == [
        "istio-system/istiod-1: not scheduled (Unschedulable: 0/3 nodes are available: 3 Insufficient memory.)"
    ]


def test_waiting_container_gives_reason_message_and_last_exit_code():
    pulling = {
        "name": "discovery",
        "ready": False,
        "state": {"waiting": {"reason": "ErrImageNeverPull", "message": 'image "docker.io/istio/pilot:1" not present'}},
    }
    crashing = {
        "name": "istio-proxy",
        "ready": False,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 255, "reason": "Error"}},
    }
    out = pod_problems([pod("istiod-1", phase="Pending", containers=[pulling]), pod("gw-1", containers=[crashing])])
    assert out == [
        "istio-system/istiod-1 on w1: container discovery: ErrImageNeverPull: "
        'image "docker.io/istio/pilot:1" not present',
        "istio-system/gw-1 on w1: container istio-proxy: CrashLoopBackOff (last exit code 255, Error)",
    ]


def test_failed_init_container_and_unready_container_are_both_said():
    init = {"name": "istio-init", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    done_init = {"name": "ok-init", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    out = pod_problems([pod("web-1", phase="Pending", inits=[done_init, init], containers=[running("web", False)])])
    assert out == [
        "istio-system/web-1 on w1: init container istio-init: terminated (Error, exit code 1); "
        "container web: running, not ready"
    ]


def test_namespace_filter_and_terminating_pods():
    other = pod("x", namespace="default", phase="Pending", containers=[running("a", False)])
    going = pod("y", containers=[running("a", False)], deletionTimestamp="2026-01-01T00:00:00Z")
    assert pod_problems([other, going], namespace="istio-system") == []
    assert pod_problems([pod("z", phase="Pending", containers=[])]) == ["istio-system/z on w1: Pending"]
