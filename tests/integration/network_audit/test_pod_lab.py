"""The pod lab itself: real Envoy really receives the traffic its capture rules redirect."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lab.pods import CaptureOptions
from lab.pods.netns import proc_start_time

pytestmark = pytest.mark.netns

INBOUND = "listener.0.0.0.0_15006.downstream_cx_total"
OUTBOUND = "listener.0.0.0.0_15001.downstream_cx_total"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _rule_packets(save: str, needle: str) -> int:
    for line in save.splitlines():
        if line.startswith("[") and needle in line:
            return int(line[1:].split(":", 1)[0])
    raise AssertionError(f"rule {needle!r} not in dump")


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_inbound_is_captured_by_real_envoy(pod_lab, backend):
    pod = pod_lab.add_pod("web", capture=CaptureOptions(backend=backend))
    before = pod.envoy_stats()[INBOUND]
    redirect_before = _rule_packets(pod.iptables_save(), "-A ISTIO_IN_REDIRECT")
    status, body = pod_lab.curl(pod.ip, 80)
    assert (status, body) == (200, b"pod default/web\n")
    assert pod.envoy_stats()[INBOUND] == before + 1
    assert _rule_packets(pod.iptables_save(), "-A ISTIO_IN_REDIRECT") == redirect_before + 1


def test_outbound_from_app_goes_through_15001_and_proxy_uid_bypasses(pod_lab):
    client, server = pod_lab.add_pods([{"name": "frontend"}, {"name": "server"}])
    out_before = client.envoy_stats()[OUTBOUND]
    assert pod_lab.curl(server.ip, 80, source="frontend")[0] == 200
    assert client.envoy_stats()[OUTBOUND] == out_before + 1
    # The same request from the proxy's uid is exempt (ISTIO_OUTPUT --uid-owner 1337 RETURN).
    cmd = [
        "nsenter",
        f"--net={client.netns_path}",
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
        sys.executable,
        "-c",
        f"import urllib.request;print(urllib.request.urlopen('http://{server.ip}/', timeout=3).status)",
    ]
    assert subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip() == "200"
    assert client.envoy_stats()[OUTBOUND] == out_before + 1


def test_excluded_inbound_port_does_not_reach_envoy(pod_lab):
    pod = pod_lab.add_pod("status", app_port=15021, app="python")
    before = pod.envoy_stats()[INBOUND]
    assert pod_lab.curl(pod.ip, 15021)[0] in (200, 404)
    assert pod.envoy_stats()[INBOUND] == before


def test_no_rules_variant_bypasses_envoy(pod_lab):
    pod = pod_lab.add_pod("bypass", capture=CaptureOptions(broken="no_rules"))
    before = pod.envoy_stats()[INBOUND]
    assert pod_lab.curl(pod.ip, 80)[0] == 200
    assert pod.envoy_stats()[INBOUND] == before
    assert "ISTIO" not in pod.iptables_save()


def test_nodeport_reaches_app_through_gateway_and_sidecar(pod_lab):
    web = pod_lab.add_pod("web", labels={"app": "web"})
    svc = pod_lab.add_service("web", selector={"app": "web"})
    gw = pod_lab.add_pod(
        "istio-ingressgateway-0",
        namespace="istio-system",
        app_port=8080,
        gateway=True,
        app="none",
        labels={"istio": "ingressgateway"},
        gateway_target=(svc["cluster_ip"], 80),
    )
    pod_lab.add_service("istio-ingressgateway", "istio-system", target_port=8080, pods=[gw.name], node_port=30080)
    before = web.envoy_stats()[INBOUND]
    assert pod_lab.curl(pod_lab.node_ip, 30080, source="client") == (200, b"pod default/web\n")
    assert web.envoy_stats()[INBOUND] == before + 1
    node = pod_lab.node_iptables_save()
    assert _rule_packets(node, "--dport 30080 -j KUBE-EXT") >= 1


def test_close_kills_exactly_what_it_started(pod_lab):
    pods = pod_lab.add_pods([{"name": f"p{i}"} for i in range(3)])
    pids = [(pid, proc_start_time(pid)) for p in pods for pid in p.pids.values()]
    names = list(pod_lab.created_netns)
    pod_lab.close()
    for pid, start in pids:
        assert proc_start_time(pid) != start
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not [n for n in names if n in listed.split()]


def test_cli_up_and_down(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    state = tmp_path / "state.json"
    env = dict(os.environ, PYTHONPATH=REPO)
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab.pods",
            "up",
            "--pods",
            "2",
            "--broken",
            "missing_uid_exemption",
            "--state",
            str(state),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    summary = json.loads(up.stdout)
    pids = [(pid, proc_start_time(pid)) for p in summary["pods"].values() for pid in p["pids"].values()]
    assert len(summary["pods"]) == 3 and all(start for _pid, start in pids)
    subprocess.run(
        [sys.executable, "-m", "lab.pods", "down", "--state", str(state)], env=env, check=True, capture_output=True
    )
    assert not state.exists()
    for pid, start in pids:
        assert proc_start_time(pid) != start
