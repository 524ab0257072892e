"""A check passes only on evidence: bad counts are refused, a check without observation fails."""

import copy

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.verify import cluster, runner, traffic

BASE = {
    "checks": ["http", "traffic_split", "versions_seen"],
    "request_timeout": 30,
    "ingress": {"host": "127.0.0.1", "port": 8080},
    "http": {"retries": 0, "timeout": 5, "delay": 2, "status": [200]},
    "traffic_split": {
        "requests": 400,
        "timeout": 5,
        "confidence": 0.999,
        "destinations": [{"name": "a", "pattern": "a", "weight": 50}],
    },
    "versions_seen": {"max_requests": 100, "timeout_seconds": 60, "timeout": 5, "versions": {"v1": "v1"}},
}

BAD = [
    ("http", "retries", -1, "http.retries is -1: it must be at least 0"),
    ("http", "retries", -100, "http.retries is -100"),
    ("http", "timeout", 0, "http.timeout is 0: it must be more than 0"),
    ("http", "timeout", -5, "http.timeout is -5"),
    ("http", "delay", -1, "http.delay is -1"),
    ("http", "status", [], "http.status [] must list HTTP status codes"),
    ("http", "status", [200, 99], "http.status [200, 99]"),
    ("traffic_split", "requests", 0, "traffic_split.requests is 0: it must be at least 1"),
    ("traffic_split", "requests", -3, "traffic_split.requests is -3"),
    ("traffic_split", "timeout", 0, "traffic_split.timeout is 0"),
    (
        "traffic_split",
        "destinations",
        [{"name": "a", "pattern": "a", "weight": -10}],
        "traffic_split.destinations ['a'] have a negative weight",
    ),
    ("versions_seen", "max_requests", 0, "versions_seen.max_requests is 0"),
    ("versions_seen", "timeout_seconds", 0, "versions_seen.timeout_seconds is 0"),
    ("versions_seen", "timeout_seconds", -1, "versions_seen.timeout_seconds is -1"),
    ("versions_seen", "versions", {}, "versions_seen.versions is empty"),
    ("ingress", "port", 0, "ingress.port 0 is not a port number"),
    ("ingress", "port", 70000, "ingress.port 70000"),
    # Not a finite number (Ansible's float type takes "nan" and "inf").
    ("http", "timeout", float("nan"), "http.timeout is nan: it must be a finite number"),
    ("http", "timeout", float("inf"), "http.timeout is inf: it must be a finite number"),
    ("http", "delay", float("nan"), "http.delay is nan"),
    ("traffic_split", "timeout", float("inf"), "traffic_split.timeout is inf"),
    ("versions_seen", "timeout_seconds", float("nan"), "versions_seen.timeout_seconds is nan"),
    ("versions_seen", "timeout", float("-inf"), "versions_seen.timeout is -inf"),
    # Weights no route can have: refused before the requests, not after them.
    (
        "traffic_split",
        "destinations",
        [{"name": "a", "pattern": "a", "weight": 150}],
        "traffic_split.destinations ['a'] have a weight above 100",
    ),
    (
        "traffic_split",
        "destinations",
        [{"name": "a", "pattern": "a", "weight": 0}, {"name": "b", "pattern": "b", "weight": 0}],
        "traffic_split.destinations all have weight 0",
    ),
    # A pattern that is not text (versions is a free-form dict) is an error naming it, not a TypeError.
    ("versions_seen", "versions", {"v1": 5}, "versions_seen.versions.v1: 5 is not a regular expression"),
    ("versions_seen", "versions", {"v1": "ok", "v2": ["a"]}, "versions_seen.versions.v2: ['a'] is not a regular"),
]


@pytest.mark.parametrize(("check", "option", "value", "message"), BAD, ids=[f"{b[0]}.{b[1]}={b[2]}" for b in BAD])
def test_bad_counts_are_refused_before_any_request(check, option, value, message):
    params = copy.deepcopy(BASE)
    params[check][option] = value
    sent = []
    verify = runner.VerifyRunner(params, client=object())
    verify._url = lambda options: sent.append(options) or "http://127.0.0.1:9/"
    with pytest.raises(traffic.VerifyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        verify.run()
    assert sent == []


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_bad_request_timeout_is_refused(timeout):
    params = copy.deepcopy(BASE)
    params["request_timeout"] = timeout
    assert runner.count_problems(params) == [
        f"request_timeout is {timeout:g}: give the seconds an API request may take, e.g. 30"
    ]


def test_good_counts_pass_validation():
    assert runner.count_problems(BASE) == []


def test_http_with_negative_retries_never_passes():
    # The module refuses it; the function refuses it too, should another caller pass it.
    with pytest.raises(traffic.VerifyError, match=r"http\.retries is -1"):
        traffic.check_http("http://127.0.0.1:9/", retries=-1, fetch=pytest.fail)


@pytest.mark.parametrize(
    "result",
    [
        {"name": "http", "passed": True, "failures": [], "warnings": [], "observed": 0},
        {"name": "http", "passed": False, "failures": [], "warnings": [], "observed": 0},
        {"name": "sidecars", "passed": True, "failures": [], "warnings": []},
    ],
    ids=["claims-pass-without-observation", "fails-silently-without-observation", "no-observed-field"],
)
def test_no_observation_is_a_failure_with_a_reason(result):
    checked = runner.require_evidence(result)
    assert checked["passed"] is False
    assert "made no observation" in checked["failures"][0]


def test_failure_without_reason_gets_one():
    checked = runner.require_evidence({"passed": False, "failures": [], "warnings": [], "observed": 3})
    assert checked["passed"] is False and "gave no reason" in checked["failures"][0]


def test_observed_pass_stays_a_pass():
    assert runner.require_evidence({"passed": True, "failures": [], "warnings": [], "observed": 1})["passed"]


def pod(name, phase="Running", opted_out=False):
    annotations = {"sidecar.istio.io/inject": "false"} if opted_out else {}
    metadata = {"name": name, "annotations": annotations}
    return {"metadata": metadata, "spec": {"containers": []}, "status": {"phase": phase}}


@pytest.mark.parametrize(
    "pods",
    [
        [pod("job-1", phase="Succeeded")],
        [pod("tool", opted_out=True), pod("job-2", phase="Failed")],
    ],
    ids=["only-finished-pods", "only-skipped-pods"],
)
def test_sidecars_with_every_pod_skipped_fails(pods):
    result = cluster.check_sidecars({"jiuxi": pods})
    assert result["passed"] is False
    assert result["failures"][0].startswith("no running pod was checked in jiuxi (skipped: ")


def test_sidecars_skip_terminating_pods_and_judge_their_replacements():
    """Right after a restart the old pods (no sidecar) are still terminating: not a failure."""
    old = pod("web-old")
    old["metadata"]["deletionTimestamp"] = "2026-12-05T13:20:00Z"
    new = pod("web-new")
    new["spec"] = {"containers": [{"name": "app"}, {"name": "istio-proxy"}], "initContainers": [{"name": "istio-init"}]}
    new["status"]["containerStatuses"] = [{"name": "app", "ready": True}, {"name": "istio-proxy", "ready": True}]
    result = cluster.check_sidecars({"jiuxi": [old, new]})
    assert result["passed"] is True, result["failures"]
    assert result["skipped"] == ["jiuxi/web-old: terminating"] and list(result["pods"]) == ["jiuxi/web-new"]
    assert cluster.check_sidecars({"jiuxi": [old]})["passed"] is False  # nothing but a leaving pod: no evidence


def test_control_plane_without_deployments_fails():
    result = cluster.check_control_plane([], "istio-system", [], None)
    assert result["passed"] is False
    assert result["failures"] == [
        "no Deployment in namespace istio-system: is the Istio control plane installed there?"
    ]
