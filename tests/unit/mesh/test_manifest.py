"""mesh/manifest.py: splitting and ordering istioctl manifests, profile lists, readiness."""

import os

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.mesh import manifest

DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "mesh")
with open(os.path.join(DATA_DIR, "manifest_cases.yml"), encoding="utf-8") as _handle:
    CASES = yaml.safe_load(_handle)
with open(os.path.join(DATA_DIR, "manifest_small.txt"), encoding="utf-8") as _handle:
    SMALL = _handle.read()


def _names(objs):
    return [f"{o['kind']} {manifest.describe(o)}" for o in objs]


def test_plan_groups_and_orders_the_small_manifest():
    plan = manifest.plan_manifest(SMALL)
    expected = CASES["small"]
    assert [o["metadata"]["name"] for o in plan["crds"]] == expected["crds"]
    assert [o["metadata"]["name"] for o in plan["namespaces"]] == expected["namespaces"]
    assert _names(plan["objects"]) == expected["objects"]
    assert _names(plan["custom"]) == expected["custom"]
    assert plan["deployments"] == expected["deployments"]
    assert plan["counts"] == expected["counts"]
    assert plan["removal"] == list(reversed(plan["objects"]))


def test_namespace_is_filled_in_and_cluster_scoped_objects_have_none():
    plan = manifest.plan_manifest(SMALL, namespace="mesh")
    by_name = {o["metadata"]["name"]: o for o in plan["objects"]}
    assert by_name["istio-ingressgateway"]["metadata"]["namespace"] == "mesh"
    assert by_name["istiod"]["metadata"]["namespace"] == "istio-system"  # explicit wins
    assert "namespace" not in by_name["istio-validator-istio-system"]["metadata"]
    assert [o["metadata"]["name"] for o in plan["namespaces"]] == ["istio-system", "mesh"]


def test_every_object_is_planned_once():
    objs = manifest.split_manifest(SMALL)
    plan = manifest.plan_manifest(SMALL)
    assert len(objs) == len(plan["crds"]) + len(plan["objects"]) == 8


@pytest.mark.parametrize("case", CASES["bad"], ids=lambda c: c["id"])
def test_bad_manifests_raise(case):
    with pytest.raises(manifest.ManifestError, match=case["error"]):
        manifest.plan_manifest(case["text"])


@pytest.mark.parametrize("case", CASES["profile_lists"], ids=lambda c: c["id"])
def test_parse_profile_list(case):
    assert manifest.parse_profile_list(case["text"]) == case["names"]


@pytest.mark.parametrize("case", CASES["deployments"], ids=lambda c: c["id"])
def test_deployments_not_available(case):
    assert manifest.deployments_not_available(case["deployments"], case["wanted"]) == case["problems"]


@pytest.mark.parametrize("case", CASES["set_args"], ids=lambda c: c["id"])
def test_istioctl_set_args(case):
    assert manifest.istioctl_set_args(case["values"]) == case["args"]


def test_istioctl_set_args_refuses_structured_values():
    with pytest.raises(manifest.ManifestError, match="overlay"):
        manifest.istioctl_set_args({"values.global.meshNetworks": {"a": 1}})


@pytest.mark.parametrize("case", CASES["drift"], ids=lambda c: c["id"])
def test_apply_drift(case):
    assert manifest.apply_drift(case["registered"]) == case["drift"]


def _crd(name, established=None):
    conditions = [] if established is None else [{"type": "Established", "status": established}]
    return {"metadata": {"name": name}, "status": {"conditions": conditions}}


def test_crds_not_established_names_missing_and_pending():
    crds = [_crd("a.istio.io", "True"), _crd("b.istio.io", "False"), _crd("c.istio.io"), _crd("x.other.io", "True")]
    wanted = ["d.istio.io", "c.istio.io", "b.istio.io", "a.istio.io"]
    assert manifest.crds_not_established(crds, wanted) == ["b.istio.io", "c.istio.io", "d.istio.io"]
    assert manifest.crds_not_established(crds, ["a.istio.io"]) == []


def _validator(policies, name="istio-validator-istio-system"):
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app": "istiod"}},
        "webhooks": [{"name": hook, "failurePolicy": policy} for hook, policy in policies.items()],
    }


@pytest.mark.parametrize(
    "manifest_policies, live, expected",
    [
        # istiod switched its webhook to Fail: a re-apply keeps Fail (no fail-open window, no change)
        ({"rev.validation.istio.io": "Ignore"}, [_validator({"rev.validation.istio.io": "Fail"})], "Fail"),
        # not switched yet (istiod not serving): the manifest's Ignore stays
        ({"rev.validation.istio.io": "Ignore"}, [_validator({"rev.validation.istio.io": "Ignore"})], "Ignore"),
        # first install: nothing live
        ({"rev.validation.istio.io": "Ignore"}, [], "Ignore"),
        # another configuration's webhook of the same name does not count
        ({"rev.validation.istio.io": "Ignore"}, [_validator({"rev.validation.istio.io": "Fail"}, "other")], "Ignore"),
        # the manifest asks for Fail itself: kept whatever is live
        ({"rev.validation.istio.io": "Fail"}, [_validator({"rev.validation.istio.io": "Ignore"})], "Fail"),
    ],
)
def test_keep_fail_closed(manifest_policies, live, expected):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod"}}
    objects = [deployment, _validator(manifest_policies)]
    kept = manifest.keep_fail_closed(objects, live)
    assert kept[0] is deployment
    assert kept[1]["webhooks"][0]["failurePolicy"] == expected
    assert objects[1]["webhooks"][0]["failurePolicy"] == manifest_policies["rev.validation.istio.io"]  # input kept


def test_keep_fail_closed_only_touches_the_switched_webhook():
    live = [_validator({"a.validation": "Fail", "b.validation": "Ignore"})]
    kept = manifest.keep_fail_closed([_validator({"a.validation": "Ignore", "b.validation": "Ignore"})], live)
    assert [h["failurePolicy"] for h in kept[0]["webhooks"]] == ["Fail", "Ignore"]
