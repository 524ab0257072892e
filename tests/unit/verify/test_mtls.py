"""The mtls check: effective modes from PeerAuthentication objects (table-driven, data/verify/mtls_modes.yml),
probe targets and classification, the probes' verdicts, and the refusals before anything is read."""

import copy
import os

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.verify import mtls, runner, traffic

with open(os.path.join(os.path.dirname(__file__), "..", "data", "verify", "mtls_modes.yml"), encoding="utf-8") as f:
    CASES = yaml.safe_load(f)["cases"]

ROOT = "istio-system"


def policy(namespace, name, minute, mode, selector, ports):
    spec = {}
    if mode != "absent":
        spec["mtls"] = {} if mode is None else {"mode": mode}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if ports is not None:
        spec["portLevelMtls"] = {port: ({} if value is None else {"mode": value}) for port, value in ports.items()}
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": f"2026-12-06T10:{minute:02d}:00Z"},
        "spec": spec,
    }


def pod(name, labels, sidecar=True, phase="Running", ip="10.244.1.5", ports=(80,), extra=None):
    containers = [{"name": "app", "ports": [{"containerPort": p} for p in ports]}]
    init = []
    if sidecar:
        containers.append(
            {"name": "istio-proxy", "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]},
        )
        init.append({"name": "istio-init"})
    result = {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": containers, "initContainers": init},
        "status": {"phase": phase, "podIP": ip},
    }
    if extra:
        result["spec"].update(extra)
    return result


def run_case(case):
    plain = set(case.get("plain_pods") or [])
    pods = [pod(name, labels, sidecar=name not in plain) for name, labels in case["pods"].items()]
    return mtls.check_mtls(
        ROOT,
        [policy(*p) for p in case["mesh"]],
        {"jiuxi": [policy(*p) for p in case["policies"]]},
        {"jiuxi": pods},
        expected=case["expected"],
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_effective_modes(case):
    result = run_case(case)
    namespace = result["namespaces"]["jiuxi"]
    assert (namespace["mode"], namespace["decided_by"]) == (case["mode"], case["decided_by"])
    assert {name: w["mode"] for name, w in namespace["workloads"].items()} == case["workloads"]
    for name, ports in (case.get("ports") or {}).items():
        assert namespace["workloads"][name]["ports"] == ports
    assert result["failures"] == case["failures"]
    for expected in case.get("warnings") or []:
        assert any(expected in warning for warning in result["warnings"]), (expected, result["warnings"])
    assert result["passed"] is (not case["failures"])
    assert result["observed"] == 1 and result["probed"] is False and result["probes"] == []


def test_the_table_covers_every_rule():
    # Each rule of the composition has cases that pass and that fail.
    assert {c["expected"] for c in CASES} == {"STRICT", "PERMISSIVE"}
    assert any(c["failures"] for c in CASES) and any(not c["failures"] for c in CASES)


def test_report_names_the_policies_and_what_they_select():
    case = next(c for c in CASES if c["name"] == "a workload policy weakens one pod of a STRICT namespace")
    namespace = run_case(case)["namespaces"]["jiuxi"]
    assert namespace["policy"] == "jiuxi/default"
    assert namespace["policies"] == [
        {
            "name": "default",
            "scope": "namespace",
            "mode": "STRICT",
            "selector": {},
            "port_level_mtls": {},
            "created": "2026-12-06T10:01:00Z",
            "selects": [],
        },
        {
            "name": "web-plain",
            "scope": "workload",
            "mode": "PERMISSIVE",
            "selector": {"app": "web"},
            "port_level_mtls": {},
            "created": "2026-12-06T10:02:00Z",
            "selects": ["web-1"],
        },
    ]
    assert namespace["workloads"]["web-1"] == {
        "mode": "PERMISSIVE",
        "decided_by": "workload policy jiuxi/web-plain",
        "policy": "jiuxi/web-plain",
        "ports": {},
        "selected_by": ["jiuxi/web-plain"],
    }
    assert namespace["workloads"]["db-1"]["decided_by"] == "namespace policy jiuxi/default"


def test_the_root_namespace_itself_has_only_the_mesh_wide_mode():
    mesh = [policy(ROOT, "default", 0, "STRICT", None, None), policy(ROOT, "gw", 1, "DISABLE", {"app": "gw"}, None)]
    result = mtls.check_mtls(ROOT, mesh, {ROOT: mesh}, {ROOT: [pod("gw-1", {"app": "gw"})]})
    assert result["namespaces"][ROOT]["mode"] == "STRICT"
    assert result["namespaces"][ROOT]["workloads"]["gw-1"]["mode"] == "STRICT"
    assert result["mesh_policy"] == {"name": "istio-system/default", "mode": "STRICT"}
    assert result["passed"], result["failures"]


def test_a_missing_namespace_fails_and_is_no_observation():
    result = mtls.check_mtls(ROOT, [], {"gone": None}, {})
    assert result["failures"] == ["namespace gone not found"]
    assert result["observed"] == 0 and result["namespaces"] == {}
    assert runner.require_evidence(result)["passed"] is False


def test_finished_pods_are_no_workloads():
    pods = [pod("job-1", {"app": "job"}, phase="Succeeded"), pod("web-1", {"app": "web"})]
    result = mtls.check_mtls(
        ROOT, [], {"jiuxi": [policy("jiuxi", "default", 0, "STRICT", None, None)]}, {"jiuxi": pods}
    )
    assert sorted(result["namespaces"]["jiuxi"]["workloads"]) == ["web-1"]


def test_an_unknown_expected_mode_is_a_bug_of_the_caller():
    with pytest.raises(ValueError, match="DISABLE"):
        mtls.check_mtls(ROOT, [], {"jiuxi": []}, {"jiuxi": []}, expected="DISABLE")


# -- probe targets ------------------------------------------------------------------------------


def test_probe_targets_are_the_app_ports_of_running_meshed_pods():
    app = pod("web-1", {"app": "web"}, ports=(80, 8080, 15020))
    app["spec"]["containers"][0]["ports"].append({"containerPort": 5353, "protocol": "UDP"})
    app["spec"]["containers"].insert(
        1, {"name": "metrics", "ports": [{"containerPort": 8080}, {"containerPort": 9000}]}
    )
    app["spec"]["containers"][2]["ports"].append({"containerPort": 9000})  # istio-proxy declares 9000 too
    pods = {
        "jiuxi": [
            app,
            pod("plain-1", {"app": "plain"}, sidecar=False),
            pod("pending-1", {"app": "web"}, phase="Pending"),
            pod("noip-1", {"app": "web"}, ip=None),
            pod("host-1", {"app": "web"}, extra={"hostNetwork": True}),
            pod("portless-1", {"app": "web"}, ports=()),
        ]
    }
    targets, skipped = mtls.probe_targets(pods)
    assert targets == [
        {"pod": "jiuxi/web-1", "container": "app", "address": "10.244.1.5", "port": 80, "control_port": 9},
        {"pod": "jiuxi/web-1", "container": "app", "address": "10.244.1.5", "port": 8080, "control_port": 9},
    ]
    assert skipped == [
        "jiuxi/host-1: hostNetwork",
        "jiuxi/noip-1: no pod IP",
        "jiuxi/pending-1: Pending, not Running",
        "jiuxi/portless-1: no TCP containerPort outside the sidecar's ports",
    ]


def test_the_control_port_is_one_no_container_declares():
    serves_discard = pod("web-1", {"app": "web"}, ports=(80, 9))
    serves_discard["spec"]["containers"][1]["ports"].append({"containerPort": 7})  # the sidecar's
    targets, _skipped = mtls.probe_targets({"jiuxi": [serves_discard]})
    assert [(t["port"], t["control_port"]) for t in targets] == [(80, 19), (9, 19)]


def test_probe_targets_with_a_native_sidecar():
    native = pod("web-1", {"app": "web"}, sidecar=False, ports=(80,))
    native["spec"]["initContainers"] = [
        {"name": "istio-init"},
        {"name": "istio-proxy", "restartPolicy": "Always", "ports": [{"containerPort": 80}]},
    ]
    targets, skipped = mtls.probe_targets({"jiuxi": [native]})
    assert targets == [] and skipped == ["jiuxi/web-1: no TCP containerPort outside the sidecar's ports"]


# -- classification -----------------------------------------------------------------------------

CLASSIFY = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", False, None, "answered", "HTTP/1.1 200 OK"),
    (b"HTTP/1.1 503 Service Unavailable\r\n", True, None, "answered", "HTTP/1.1 503 Service Unavailable"),
    (b"HTTP/1.0 404\n", True, None, "answered", "HTTP/1.0 404"),
    (b"", True, None, "refused", None),
    (b"", False, "connection reset", "refused", None),
    (b"\x15\x03\x01\x00\x02\x02\x46", True, None, "refused", None),  # a TLS alert, then close
    (b"\x15\x03\x01\x00\x02\x02\x46", False, None, "refused", None),  # a TLS alert, left open
    (b"HTTP/1.1 200", True, None, "refused", None),  # cut off before the end of the status line
    (b"SSH-2.0-OpenSSH_9.2\r\n", True, None, "refused", None),
    (b"", False, None, "unreachable", None),  # connected, then silence
]


@pytest.mark.parametrize(("received", "closed", "reset", "outcome", "status_line"), CLASSIFY)
def test_classify(received, closed, reset, outcome, status_line):
    got, line, detail = mtls.classify(received, closed, reset)
    assert (got, line) == (outcome, status_line)
    assert detail


def test_classify_details_say_what_happened():
    assert mtls.classify(b"", True)[2] == "closed without an HTTP response"
    assert mtls.classify(b"", False, "connection reset")[2] == "connection reset without an HTTP response"
    assert "7 bytes that are not HTTP" in mtls.classify(b"\x15\x03\x01\x00\x02\x02\x46", True)[2]


def _sender(outcomes, seen=None):
    """A probe stand-in: (address, port) -> outcome name, recording what was sent."""

    def send(address, port, timeout):
        if seen is not None:
            seen.append((address, port, timeout))
        outcome = outcomes[(address, port)]
        return {
            "outcome": outcome,
            "status_line": "HTTP/1.1 404 Not Found" if outcome == "answered" else None,
            "detail": f"{outcome} on {port}",
            "connected": outcome != "unreachable",
            "seconds": 0.0,
        }

    return send


def test_run_probes_keeps_the_order_and_probes_each_pods_control_port_once():
    targets = [
        {"pod": "jiuxi/a", "container": "c", "address": "10.0.0.1", "port": p, "control_port": 9} for p in (80, 81, 82)
    ]
    outcomes = {("10.0.0.1", p): "refused" for p in (80, 81, 82, 9)}
    seen = []
    probes = mtls.run_probes(targets, 1.5, send=_sender(outcomes, seen))
    assert [p["detail"] for p in probes] == ["refused on 80", "refused on 81", "refused on 82"]
    assert sorted(seen) == [("10.0.0.1", p, 1.5) for p in (9, 80, 81, 82)]
    assert probes[0]["control"] == {"port": 9, "outcome": "refused", "status_line": None, "detail": "refused on 9"}
    assert "control_port" not in probes[0]
    assert mtls.run_probes([], 1.0, send=_sender({})) == []


@pytest.mark.parametrize(
    ("target", "control", "outcome"),
    [
        ("answered", "refused", "answered"),
        ("refused", "refused", "refused"),
        ("answered", "answered", "intercepted"),  # a proxy on the way answers every port
        ("refused", "answered", "intercepted"),
        ("unreachable", "answered", "unreachable"),
        ("answered", "unreachable", "answered"),
    ],
)
def test_an_answer_on_the_control_port_makes_the_pods_probes_no_evidence(target, control, outcome):
    targets = [{"pod": "jiuxi/a", "container": "c", "address": "10.0.0.1", "port": 80, "control_port": 9}]
    (probe,) = mtls.run_probes(targets, 1, send=_sender({("10.0.0.1", 80): target, ("10.0.0.1", 9): control}))
    assert probe["outcome"] == outcome and probe["control"]["outcome"] == control
    if outcome == "intercepted":
        assert probe["detail"].startswith(f"{target} (")
        assert (
            "but port 9, which no container of the pod declares, answered too (HTTP/1.1 404 Not Found)"
            in (probe["detail"])
        )


# -- the probes' verdicts -----------------------------------------------------------------------


def entry(outcome, port=80, connected=None, status_line=None, detail="d"):
    return {
        "pod": "jiuxi/web-1",
        "container": "app",
        "address": "10.244.1.5",
        "port": port,
        "outcome": outcome,
        "status_line": status_line,
        "detail": detail,
        "connected": outcome != "unreachable" if connected is None else connected,
        "seconds": 0.01,
    }


def with_probes(probes, expected="STRICT", mode="STRICT"):
    return mtls.check_mtls(
        ROOT,
        [],
        {"jiuxi": [policy("jiuxi", "default", 0, mode, None, None)]},
        {"jiuxi": [pod("web-1", {"app": "web"})]},
        expected=expected,
        probes=probes,
        timeout=2,
        host="ctl-1",
    )


def test_strict_passes_when_every_probe_is_refused():
    result = with_probes([entry("refused"), entry("refused", port=8080)])
    assert result["passed"] and result["observed"] == 3
    assert [p["expected"] for p in result["probes"]] == ["refused", "refused"]


def test_strict_fails_on_a_plain_text_answer():
    result = with_probes([entry("refused"), entry("answered", port=8080, status_line="HTTP/1.1 200 OK")])
    assert result["failures"] == [
        "pod jiuxi/web-1 (10.244.1.5:8080, container app) answered a caller without sidecar in plain text "
        "(HTTP/1.1 200 OK), expected it to be refused (STRICT)"
    ]


def test_permissive_fails_on_a_refusal():
    result = with_probes(
        [entry("refused", detail="connection reset without an HTTP response")], "PERMISSIVE", "PERMISSIVE"
    )
    assert result["failures"] == [
        "pod jiuxi/web-1 (10.244.1.5:80, container app) refused a caller without sidecar (connection reset without "
        "an HTTP response), expected a plain-text answer (PERMISSIVE)"
    ]
    assert with_probes([entry("answered", status_line="HTTP/1.1 200 OK")], "PERMISSIVE", "PERMISSIVE")["passed"]


def test_no_probe_reaching_a_pod_fails_naming_the_host_and_the_way_out():
    result = with_probes([entry("unreachable", detail="no TCP connection within 2 s")] * 2)
    assert result["passed"] is False and result["observed"] == 1
    (failure,) = result["failures"]
    assert failure.startswith("no probe reached a pod: the pod addresses (10.244.1.5) are not reachable from ctl-1")
    assert "(first: no TCP connection within 2 s)" in failure
    assert "where pod IPs are routable" in failure and "mtls.probe to false" in failure


def test_silent_connections_ask_for_a_longer_timeout():
    result = with_probes([entry("unreachable", connected=True, detail="connected, but neither an answer nor a close")])
    assert result["failures"] == [
        "no probe got an answer or a refusal: the connections to 10.244.1.5 were accepted but stayed silent for "
        "mtls.timeout (2 s); raise mtls.timeout"
    ]


def test_some_unreachable_probes_are_a_warning_not_evidence():
    result = with_probes([entry("refused"), entry("unreachable", port=8080, detail="cannot connect: No route to host")])
    assert result["passed"] and result["observed"] == 2
    assert any(
        "1 of 2 probes are no evidence either way" in w
        and "port 8080 unreachable (cannot connect: No route to host)" in w
        for w in result["warnings"]
    ), result["warnings"]


def test_intercepted_probes_alone_fail_naming_what_answers():
    result = with_probes([entry("intercepted", connected=True, detail="answered (HTTP/1.1 404 Not Found), but ...")])
    assert result["passed"] is False and result["observed"] == 1
    (failure,) = result["failures"]
    assert failure.startswith(
        "no probe reached a pod: something between ctl-1, where the check ran, and the pod addresses (10.244.1.5) "
        "answers for them (first: jiuxi/web-1 port 80 answered (HTTP/1.1 404 Not Found), but ...)"
    )
    assert "where pod IPs are routable" in failure and "mtls.probe to false" in failure


def test_probe_with_nothing_to_probe_fails():
    result = mtls.check_mtls(
        ROOT,
        [],
        {"jiuxi": [policy("jiuxi", "default", 0, "STRICT", None, None)]},
        {"jiuxi": []},
        probes=[],
        probe_skipped=["jiuxi/web-1: Pending, not Running"],
    )
    assert result["failures"] == [
        "probe is true but there is nothing to probe: no running pod with an istio-proxy sidecar and a TCP "
        "containerPort in jiuxi (skipped: jiuxi/web-1: Pending, not Running)"
    ]


def test_policy_failures_and_probe_failures_add_up():
    result = with_probes([entry("answered", status_line="HTTP/1.1 200 OK")], mode="PERMISSIVE")
    assert len(result["failures"]) == 2
    assert result["failures"][0].startswith("namespace jiuxi is PERMISSIVE")


# -- refusals before anything is read -----------------------------------------------------------

BASE = {
    "checks": ["mtls"],
    "request_timeout": 30,
    "istio_namespace": ROOT,
    "ingress": {},
    "mtls": {"namespaces": ["jiuxi"], "mode": "STRICT", "probe": True, "timeout": 3},
}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("namespaces", [], "mtls.namespaces is empty: name the namespaces whose mutual TLS mode to check"),
        ("namespaces", None, "mtls.namespaces is empty"),
        ("timeout", 0, "mtls.timeout is 0: it must be more than 0"),
        ("timeout", -1, "mtls.timeout is -1: it must be more than 0"),
        ("timeout", float("nan"), "mtls.timeout is nan: it must be a finite number"),
        ("timeout", float("inf"), "mtls.timeout is inf: it must be a finite number"),
    ],
)
def test_bad_options_are_refused_before_anything_is_read(option, value, message):
    params = copy.deepcopy(BASE)
    params["mtls"][option] = value

    class NoClient:
        def __getattr__(self, name):
            raise AssertionError(f"the cluster was asked ({name}) before the options were checked")

    with pytest.raises(traffic.VerifyError, match=message):
        runner.VerifyRunner(params, client=NoClient()).run()
