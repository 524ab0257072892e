"""The outside-the-mesh trap with real kube-proxy rules: a caller on the node reaching a Service's
ClusterIP is balanced by iptables (KUBE-SVC ``statistic --mode random`` DNAT rules in the pod lab's
node namespace), not by any VirtualService. The traffic_split check must say so.

Uses the pod lab (lab/pods: network namespaces, real nginx per pod, real Envoy sidecars, real
iptables rules); traffic stays inside the namespaces the lab created.
"""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.verify import traffic

pytestmark = pytest.mark.netns

N = 400
CONFIDENCE = 0.9999


def test_kube_proxy_balances_and_the_check_warns(pod_lab):
    pod_lab.add_pods(
        [
            {"name": "nginx-a", "labels": {"app": "split"}},
            {"name": "tomcat-b", "labels": {"app": "split"}},
        ]
    )
    service = pod_lab.add_service("split-svc", selector={"app": "split"}, port=80)
    url = f"http://{service['cluster_ip']}:80/"
    destinations = {"nginx": r"pod default/nginx-a", "tomcat": r"pod default/tomcat-b"}

    # The VirtualService would say 80/20; kube-proxy's rules split 50/50 per connection.
    claimed = pod_lab.in_node(
        traffic.check_traffic_split, url, destinations, {"nginx": 80, "tomcat": 20}, requests=N, confidence=CONFIDENCE
    )
    assert claimed["failed_requests"] == 0 and claimed["unattributed"] == 0, claimed
    assert claimed["through_envoy"] == 0
    assert any("outside the mesh" in w and "kube-proxy" in w for w in claimed["warnings"]), claimed["warnings"]
    assert not claimed["passed"]

    # Claiming what kube-proxy does "passes" - and the warning is what tells the weights were never tested.
    even = pod_lab.in_node(
        traffic.check_traffic_split, url, destinations, {"nginx": 50, "tomcat": 50}, requests=N, confidence=CONFIDENCE
    )
    assert even["passed"], even
    assert any("kube-proxy" in w for w in even["warnings"])
