"""The lab control plane is real: API server health, controllers, scheduler, simulated nodes.

Everything here talks to the real kube-apiserver / kube-controller-manager / kube-scheduler
built from k8s.io/kubernetes; only the kubelet is simulated (kwok, from sigs.k8s.io/kwok).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO_ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def wait_for(predicate, what, timeout=120.0, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def test_readyz_and_version(lab_cluster):
    assert lab_cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    version = json.loads(lab_cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == lab_cluster.status["versions"]["kube"]
    assert version["major"] == "1"


def test_simulated_nodes_are_ready_and_named_after_the_inventory(lab_cluster):
    nodes = lab_cluster.kubectl_json("get", "nodes")["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    expected = {n["name"]: n["role"] for n in lab_cluster.status["nodes"]}
    assert set(by_name) == set(expected)
    for name, role in expected.items():
        node = by_name[name]
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", name
        labels = node["metadata"]["labels"]
        assert ("node-role.kubernetes.io/control-plane" in labels) == (role == "control-plane")


def test_deployment_gets_replicaset_and_running_pods_on_worker_nodes(lab_cluster, k8s_namespace):
    from kubernetes import client

    api = lab_cluster.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "labels": {"app": "hello"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": {
                "metadata": {"labels": {"app": "hello"}},
                "spec": {"containers": [{"name": "hello", "image": "nginx:1.14-alpine"}]},
            },
        },
    }
    dep = apps.create_namespaced_deployment(k8s_namespace, body)

    # the deployment controller (real kube-controller-manager) makes a ReplicaSet it owns
    def owned_replicaset():
        for rs in apps.list_namespaced_replica_set(k8s_namespace).items:
            if any(o.uid == dep.metadata.uid for o in rs.metadata.owner_references or []):
                return rs
        return None

    rs = wait_for(owned_replicaset, "a ReplicaSet owned by the Deployment")

    # ... whose pods the real scheduler binds to the simulated workers, and kwok runs
    workers = {n["name"] for n in lab_cluster.status["nodes"] if n["role"] == "worker"}

    def running_pods():
        pods = core.list_namespaced_pod(k8s_namespace, label_selector="app=hello").items
        ok = [
            p
            for p in pods
            if p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        return pods if len(ok) == 3 and len(pods) == 3 else None

    pods = wait_for(running_pods, "3 Running/Ready pods")
    for p in pods:
        assert p.metadata.owner_references[0].uid == rs.metadata.uid
        assert p.spec.node_name in workers, f"{p.metadata.name} on {p.spec.node_name}, not a worker"
        assert p.status.pod_ip, "kwok gives pods an IP"
    # the scheduler's Scheduled condition, not just a nodeName we set
    events = core.list_namespaced_event(k8s_namespace).items
    assert any(e.reason == "Scheduled" and e.source.component == "default-scheduler" for e in events) or any(
        e.reason == "Scheduled" and (e.reporting_component or "") == "default-scheduler" for e in events
    )
    wait_for(
        lambda: (apps.read_namespaced_deployment(dep.metadata.name, k8s_namespace).status.available_replicas or 0) == 3,
        "Deployment available",
    )

    # scaling down: the controllers delete pods again (garbage collection of the real thing)
    apps.patch_namespaced_deployment_scale(dep.metadata.name, k8s_namespace, {"spec": {"replicas": 1}})
    wait_for(
        lambda: len(core.list_namespaced_pod(k8s_namespace, label_selector="app=hello").items) == 1,
        "pods removed after scale-down",
    )


def test_kubernetes_core_applies_a_deployment_through_ansible_playbook(lab_cluster, k8s_namespace):
    env = lab_cluster.env()
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    env.setdefault("ANSIBLE_STDOUT_CALLBACK", "ansible.builtin.json")
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    playbook = HERE / "playbooks" / "deployment.yml"
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            str(playbook),
            "-e",
            f"lab_test_namespace={k8s_namespace}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    pods = lab_cluster.kubectl_json("-n", k8s_namespace, "get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Running" for p in pods)
    dep = lab_cluster.kubectl_json("-n", k8s_namespace, "get", "deployment", "web")
    assert dep["status"]["availableReplicas"] == 2

    # second run: nothing changes
    proc2 = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            str(playbook),
            "-e",
            f"lab_test_namespace={k8s_namespace}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc2.returncode == 0, proc2.stdout[-3000:]
    stats = json.loads(proc2.stdout)["stats"]["localhost"]
    assert stats["changed"] == 0, stats
