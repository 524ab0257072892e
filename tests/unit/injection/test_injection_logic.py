"""Namespace-mode and manifest-mode logic of istio_sidecar_injection, table-driven."""

import os

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.injection import manifest, namespace
from ansible_collections.meshops.istio.plugins.module_utils.injection.common import InjectionError

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "injection")


def _load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("case", _load("label_patch.yml"), ids=lambda c: c["name"])
def test_label_patch(case):
    patch = namespace.label_patch(case["labels"], case["state"], case["revision"])
    assert patch == case["patch"]
    after = namespace.apply_label_patch(case["labels"], patch)
    # Never both injection labels, and a second computation is a no-op.
    assert not ("istio-injection" in after and "istio.io/rev" in after)
    assert namespace.label_patch(after, case["state"], case["revision"]) == {}


@pytest.mark.parametrize("state", ["enabled", "disabled"])
def test_pods_needing_restart(state):
    data = _load("pods.yml")
    workloads = {(w["kind"], w["name"]): w["object"] for w in data["workloads"]}
    needing, cannot = namespace.pods_needing_restart(data["pods"], state, data["replicasets"], workloads)
    expected = data["expected"][state]
    assert [p["pod"] for p in needing] == expected["needing"]
    assert [p["pod"] for p in needing if p["restartable"]] == expected["restartable"]
    assert [p["pod"] for p in cannot] == expected["cannot"]
    owners = {p["pod"]: (p["owner_kind"], p["owner"]) for p in needing}
    if state == "enabled":
        assert owners["nginx-7c5b8d65b8-aaaaa"] == ("Deployment", "nginx")
        # db-0 is not listed: a restart was requested after it started.
        assert "db-0" not in owners


def test_restart_patch_is_what_kubectl_rollout_restart_sends():
    assert namespace.restart_patch("2026-11-25T22:00:00Z") == {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-25T22:00:00Z"}}}
        }
    }


SEED_NGINX = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  replicas: 1
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14-alpine
        ports:
        - containerPort: 80
"""


def test_manifest_loading_and_namespace():
    resources = manifest.resources_from_params(
        definition=SEED_NGINX + "---\n" + "kind: List\napiVersion: v1\nitems: []\n"
    )
    assert [r["kind"] for r in resources] == ["Deployment"]
    manifest.set_namespace(resources, "jiuxi")
    assert resources[0]["metadata"]["namespace"] == "jiuxi"
    with pytest.raises(InjectionError, match="names namespace jiuxi, but namespace is other"):
        manifest.set_namespace(resources, "other")


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("a: [", "not valid YAML"),
        ("- 1\n- 2\n", "must be a Kubernetes object"),
        ("kind: Deployment\napiVersion: apps/v1\n", "metadata.name"),
        (None, "needs src"),
    ],
)
def test_manifest_bad_input_is_named(definition, message):
    with pytest.raises(InjectionError, match=message):
        manifest.resources_from_params(definition=definition)


def test_missing_src_file_is_named(tmp_path):
    with pytest.raises(InjectionError, match="does not exist"):
        manifest.resources_from_params(src=str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet", "Pod", "CronJob"])
def test_host_network_workloads_are_refused(kind):
    pod_spec = {"hostNetwork": True, "containers": [{"name": "agent", "image": "x"}]}
    if kind == "Pod":
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": pod_spec}
    elif kind == "CronJob":
        obj = {
            "apiVersion": "batch/v1",
            "kind": kind,
            "metadata": {"name": "a"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}},
        }
    else:
        obj = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": "a"},
            "spec": {"template": {"spec": pod_spec}},
        }
    with pytest.raises(InjectionError, match=f"{kind} a uses hostNetwork: true"):
        manifest.check_injectable([obj])


def test_normalise_ignores_server_owned_fields():
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "nginx",
            "namespace": "jiuxi",
            "resourceVersion": "12",
            "uid": "u",
            "generation": 3,
            "creationTimestamp": "2026-11-25T09:00:00Z",
            "managedFields": [{}],
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 1},
    }
    desired = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "jiuxi"},
        "spec": {"replicas": 1},
    }
    assert manifest.normalise(live) == manifest.normalise(desired)
    desired["spec"]["replicas"] = 2
    assert manifest.normalise(live) != manifest.normalise(desired)


def test_clean_for_apply_drops_status_and_null_timestamps():
    obj = yaml.safe_load(SEED_NGINX)
    obj["status"] = {}
    obj["metadata"]["creationTimestamp"] = None
    obj["spec"]["template"]["metadata"]["creationTimestamp"] = None
    cleaned = manifest.clean_for_apply(obj)
    assert "status" not in cleaned
    assert "creationTimestamp" not in cleaned["metadata"]
    assert "creationTimestamp" not in cleaned["spec"]["template"]["metadata"]
