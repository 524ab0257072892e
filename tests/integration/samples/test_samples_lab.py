"""istio_samples role (playbooks/samples.yml) against the lab cluster, with four-way assertions.

Real kube-apiserver / controller-manager / scheduler, kwok-simulated pods (rollouts complete,
so the role's rollout wait is exercised), the real istioctl for the demo profile and for manual
injection, Bookinfo from the release bundle's samples/ directory. Every deploy and every
removal runs four times: check mode (changed), apply (changed), check mode (unchanged), apply
(unchanged). Removal must delete exactly the sample's objects: a VirtualService the test adds
to the namespace survives it.
"""

import os

import pytest
import yaml

from tests.integration.labmesh import failure_messages, samples_dir_of

pytestmark = pytest.mark.lab

PLAYBOOK = "playbooks/samples.yml"

FOREIGN_VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "someone-elses"},
    "spec": {"hosts": ["other.example"], "http": [{"route": [{"destination": {"host": "other"}}]}]},
}


def four_way(mesh, extra_vars):
    """Runs the playbook check/apply/check/apply; returns the changed counts."""
    counts = []
    for check in (True, False, True, False):
        stats, tasks = mesh.ansible.playbook(PLAYBOOK, extra_vars, check=check, diff=True)
        assert not stats.get("failures"), failure_messages(tasks)
        counts.append(stats.get("changed", 0))
    return counts


def assert_four_way(counts):
    assert counts[0] > 0 and counts[1] > 0 and counts[2:] == [0, 0], counts


def names(mesh, kind, namespace):
    return sorted(item["metadata"]["name"] for item in mesh.kubectl.json("get", kind, "-n", namespace)["items"])


def deployment_containers(mesh, namespace, name):
    spec = mesh.kubectl.json("get", "deployment", name, "-n", namespace)["spec"]["template"]["spec"]
    return [c["name"] for c in spec["containers"]] + [c["name"] for c in spec.get("initContainers", [])]


def test_nginx_without_injection_deploys_and_is_removed(mesh, namespace):
    present = {
        "istio_samples_enabled": ["nginx"],
        "istio_samples_namespace": namespace,
        "istio_samples_injection": "none",
    }
    assert_four_way(four_way(mesh, present))
    assert names(mesh, "deployment", namespace) == ["nginx"]
    assert deployment_containers(mesh, namespace, "nginx") == ["nginx"]
    ready = mesh.kubectl.json("get", "deployment", "nginx", "-n", namespace)["status"]
    assert ready.get("readyReplicas") == 1

    assert_four_way(four_way(mesh, dict(present, istio_samples_state="absent")))
    assert names(mesh, "deployment", namespace) == []
    assert mesh.kubectl.exists("get", "namespace", namespace)  # the namespace stays


def test_gateway_split_manual_injection_weights_and_exact_removal(mesh, namespace):
    present = {
        "istio_samples_enabled": ["gateway_split"],
        "istio_samples_namespace": namespace,
        "istio_samples_injection": "manual",
        "istio_samples_split_tomcat_weight": 80,
        "istio_samples_split_nginx_weight": 20,
        "istio_samples_gateway_host": "split.jiuxi.test",
    }
    assert_four_way(four_way(mesh, present))
    assert names(mesh, "deployment", namespace) == ["nginx-deploy", "tomcat-deploy"]
    assert names(mesh, "service", namespace) == ["nginx-svc", "tomcat-svc"]
    for deployment in ("nginx-deploy", "tomcat-deploy"):
        assert "istio-proxy" in deployment_containers(mesh, namespace, deployment)
        assert "istio-init" in deployment_containers(mesh, namespace, deployment)
    gateway = mesh.kubectl.json("get", "gateways.networking.istio.io", "jiuxi-gateway", "-n", namespace)
    assert gateway["spec"]["servers"][0]["hosts"] == ["split.jiuxi.test"]
    vs = mesh.kubectl.json("get", "virtualservices.networking.istio.io", "jiuxi-virtual-svc", "-n", namespace)
    assert [(r["destination"]["host"], r["weight"]) for r in vs["spec"]["http"][0]["route"]] == [
        ("tomcat-svc", 80),
        ("nginx-svc", 20),
    ]
    # playbooks/verify.yml agrees: control plane healthy, every sample pod READY 2/2.
    stats, tasks = mesh.ansible.playbook(
        "playbooks/verify.yml", dict(present, istio_verify_checks=["control_plane", "sidecars"])
    )
    assert not stats.get("failures"), failure_messages(tasks)
    report = dict(tasks)["Run the checks"]["report"]
    assert report["control_plane"]["passed"] is True
    assert {state["ready"] for state in report["sidecars"]["pods"].values()} == {"2/2"}
    assert len(report["sidecars"]["pods"]) == 2

    mesh.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(FOREIGN_VS))
    assert_four_way(four_way(mesh, dict(present, istio_samples_state="absent")))
    assert names(mesh, "deployment", namespace) == []
    assert names(mesh, "service", namespace) == []
    assert names(mesh, "gateways.networking.istio.io", namespace) == []
    assert names(mesh, "virtualservices.networking.istio.io", namespace) == ["someone-elses"]


def test_bookinfo_from_the_release_samples(mesh, namespace, lab_cluster):
    present = {
        "istio_samples_enabled": ["bookinfo"],
        "istio_samples_namespace": namespace,
        "istio_samples_injection": "manual",
        "istio_samples_dir": samples_dir_of(lab_cluster),
        "istio_samples_bookinfo_image_registry": "registry.example.internal/bookinfo",
    }
    assert_four_way(four_way(mesh, present))
    deployments = names(mesh, "deployment", namespace)
    assert deployments == ["details-v1", "productpage-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"]
    for name in deployments:
        deployment = mesh.kubectl.json("get", "deployment", name, "-n", namespace)
        assert deployment["status"].get("readyReplicas") == 1
        images = [
            c["image"] for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] != "istio-proxy"
        ]
        assert all(i.startswith("registry.example.internal/bookinfo/examples-bookinfo-") for i in images), images
    assert names(mesh, "gateways.networking.istio.io", namespace) == ["bookinfo-gateway"]
    assert names(mesh, "virtualservices.networking.istio.io", namespace) == ["bookinfo"]

    # as playbooks/uninstall.yml runs it, without the istioctl role's fact: the manifests come
    # from the release the given istioctl belongs to (<release>/bin/istioctl, <release>/samples)
    absent = dict(present, istio_samples_state="absent", istio_samples_dir="")
    release = os.path.dirname(samples_dir_of(lab_cluster))
    absent["istio_samples_istioctl_path"] = os.path.join(release, "bin", "istioctl")
    assert_four_way(four_way(mesh, absent))
    assert names(mesh, "deployment", namespace) == []
    assert names(mesh, "serviceaccount", namespace) == ["default"]

    # an istioctl outside a release: the error names istio_samples_dir
    stats, tasks = mesh.ansible.playbook(PLAYBOOK, dict(absent, istio_samples_istioctl_path="/bin/true"))
    assert stats.get("failures"), tasks
    assert "bookinfo needs istio_samples_dir" in "".join(failure_messages(tasks))


def test_auto_injection_labels_the_namespace(mesh, namespace):
    # In the lab the webhook cannot be reached (istiod is simulated), so rollouts are not waited for.
    present = {
        "istio_samples_enabled": ["nginx"],
        "istio_samples_namespace": namespace,
        "istio_samples_injection": "auto",
        "istio_samples_wait": False,
    }
    assert_four_way(four_way(mesh, present))
    labels = mesh.kubectl.json("get", "namespace", namespace)["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled" and "istio.io/rev" not in labels


def test_bad_weights_fail_before_anything_changes(mesh):
    stats, tasks = mesh.ansible.playbook(
        PLAYBOOK,
        {
            "istio_samples_enabled": ["gateway_split"],
            "istio_samples_namespace": "never-created",
            "istio_samples_split_tomcat_weight": 60,
            "istio_samples_split_nginx_weight": 50,
        },
    )
    assert stats.get("failures") == 1 and stats.get("changed", 0) == 0
    assert any("must add up to 100 (got 60 + 50)" in message for message in failure_messages(tasks))
    assert not mesh.kubectl.exists("get", "namespace", "never-created")


def test_unknown_sample_is_refused_by_the_argument_spec(mesh):
    stats, tasks = mesh.ansible.playbook(PLAYBOOK, {"istio_samples_enabled": ["tomcat"]})
    assert stats.get("failures") == 1
    assert any("istio_samples_enabled" in message and "tomcat" in message for message in failure_messages(tasks))
