"""The ``http``, ``traffic_split`` and ``versions_seen`` checks against a real Envoy gateway.

Sample size and confidence: every split check sends N = 400 requests and tests at confidence
0.9999 (alpha = 1e-4). For two destinations the exact binomial test's false-failure rate on a
correct split is computed exactly below (it is <= alpha, so at most 1e-4 per check, about 6e-4
for this whole file); the chance of passing a wrong claim (50/50 vs 80/20 either way) is
below 1e-12, and a 100/0 claim against a 50/50 gateway fails unless all 400 responses come from
one side (probability 2**-399).
"""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.verify import stats, traffic

N = 400
CONFIDENCE = 0.9999
NGINX = r"<title>Welcome to nginx!</title>"
TOMCAT = r"<title>Apache Tomcat/[^<]*</title>"
SPLIT_DESTINATIONS = {"nginx": NGINX, "tomcat": TOMCAT}


def test_chosen_sample_size_keeps_false_results_negligible():
    alpha = 1 - CONFIDENCE
    size = stats.binomial_rejection_probability(N, 0.5, 0.5, alpha)
    print(f"false failure on a correct 50/50 split: {size:.3g}")
    assert size <= alpha
    assert stats.binomial_rejection_probability(N, 0.8, 0.8, alpha) <= alpha
    miss_5050_vs_8020 = 1 - stats.binomial_rejection_probability(N, 0.5, 0.8, alpha)
    miss_8020_vs_5050 = 1 - stats.binomial_rejection_probability(N, 0.8, 0.5, alpha)
    print(f"false pass 50/50 claimed, 80/20 real: {miss_5050_vs_8020:.3g}")
    print(f"false pass 80/20 claimed, 50/50 real: {miss_8020_vs_5050:.3g}")
    assert miss_5050_vs_8020 < 1e-12
    assert miss_8020_vs_5050 < 1e-12


def test_http_check_sees_the_page_through_the_host_route(envoy_gateway):
    result = traffic.check_http(
        envoy_gateway.url, host_header="pinned.jiuxi.com", body_pattern=r"<title>.*</title>", timeout=2
    )
    assert result["passed"], result["failures"]
    assert result["matched"] == "<title>Welcome to nginx!</title>"
    assert result["through_envoy"] is True


def test_http_check_fails_for_a_host_without_route(envoy_gateway):
    result = traffic.check_http(envoy_gateway.url, host_header="unknown.example", body_pattern="nginx", timeout=2)
    assert not result["passed"]
    assert any("answered 404, expected 200" in f for f in result["failures"]), result["failures"]


def test_http_check_fails_on_body_mismatch(envoy_gateway):
    result = traffic.check_http(
        envoy_gateway.url, host_header="bookinfo.local", body_pattern=r"<title>Simple Bookstore App</title>"
    )
    assert result["passed"], result["failures"]
    result = traffic.check_http(envoy_gateway.url, host_header="pinned.jiuxi.com", body_pattern="Simple Bookstore")
    assert not result["passed"]
    assert "does not match" in result["failures"][0]


def test_http_check_reports_a_closed_port():
    port = __import__("socket").socket()
    port.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{port.getsockname()[1]}/productpage"
    port.close()
    result = traffic.check_http(url, host_header="x", timeout=1)
    assert not result["passed"]
    assert "ConnectionRefusedError" in result["failures"][0]


@pytest.mark.parametrize(
    ("host", "claimed", "passes"),
    [
        ("jiuxi.com", {"nginx": 50, "tomcat": 50}, True),
        ("jiuxi.com", {"nginx": 80, "tomcat": 20}, False),
        ("canary.jiuxi.com", {"nginx": 80, "tomcat": 20}, True),
        ("canary.jiuxi.com", {"nginx": 50, "tomcat": 50}, False),
        ("pinned.jiuxi.com", {"nginx": 100, "tomcat": 0}, True),
        ("pinned.jiuxi.com", {"nginx": 50, "tomcat": 50}, False),
        ("jiuxi.com", {"nginx": 100, "tomcat": 0}, False),
    ],
)
def test_traffic_split_against_weighted_clusters(envoy_gateway, host, claimed, passes):
    before = envoy_gateway.upstream_requests()
    result = traffic.check_traffic_split(
        envoy_gateway.url,
        SPLIT_DESTINATIONS,
        claimed,
        requests=N,
        confidence=CONFIDENCE,
        host_header=host,
        timeout=2,
    )
    after = envoy_gateway.upstream_requests()
    # Attribution by body agrees with Envoy's own per-cluster request counters.
    assert {name: after.get(name, 0) - before.get(name, 0) for name in ("nginx", "tomcat")} == result["counts"]
    assert result["failed_requests"] == 0 and result["unattributed"] == 0
    assert result["through_envoy"] == N
    assert result["warnings"] == []
    assert result["passed"] is passes, result
    if passes:
        assert result["p_value"] >= 1 - CONFIDENCE
    else:
        assert result["p_value"] < 1 - CONFIDENCE
        assert "differ from the weights" in result["failures"][0]


def test_traffic_split_three_versions_chi_square(envoy_gateway):
    versions = {f"reviews-{v}": rf"Reviews served by:\s*reviews-{v}-" for v in ("v1", "v2", "v3")}
    good = traffic.check_traffic_split(
        envoy_gateway.url,
        versions,
        {"reviews-v1": 34, "reviews-v2": 33, "reviews-v3": 33},
        requests=600,
        confidence=CONFIDENCE,
        host_header="bookinfo.local",
    )
    assert good["passed"], good
    assert good["method"] == "Pearson chi-square goodness of fit" and good["df"] == 2
    # The 80/10/10 canary some people expect after virtual-service-reviews-80-20 is not what runs.
    bad = traffic.check_traffic_split(
        envoy_gateway.url,
        versions,
        {"reviews-v1": 80, "reviews-v2": 10, "reviews-v3": 10},
        requests=600,
        confidence=CONFIDENCE,
        host_header="bookinfo.local",
    )
    assert not bad["passed"] and bad["p_value"] < 1e-10


def test_traffic_split_warns_when_no_envoy_routed_the_requests(envoy_gateway):
    # Straight to a backend, as a controller outside the mesh reaching a Service through
    # kube-proxy would: nothing carries Envoy's router header, so the weights were not tested.
    result = traffic.check_traffic_split(
        envoy_gateway.backend_urls["nginx"],
        SPLIT_DESTINATIONS,
        {"nginx": 50, "tomcat": 50},
        requests=50,
        confidence=CONFIDENCE,
    )
    assert result["through_envoy"] == 0
    assert any("outside the mesh" in w and "kube-proxy" in w for w in result["warnings"]), result["warnings"]
    assert not result["passed"]
    # The same caller through the gateway is not warned about.
    via_gateway = traffic.check_traffic_split(
        envoy_gateway.url,
        SPLIT_DESTINATIONS,
        {"nginx": 50, "tomcat": 50},
        requests=50,
        confidence=CONFIDENCE,
        host_header="jiuxi.com",
    )
    assert via_gateway["warnings"] == []


def test_traffic_split_warns_for_a_mesh_only_virtual_service(envoy_gateway):
    result = traffic.check_traffic_split(
        envoy_gateway.url,
        SPLIT_DESTINATIONS,
        {"nginx": 50, "tomcat": 50},
        requests=20,
        confidence=CONFIDENCE,
        host_header="jiuxi.com",
        mesh_only_route=True,
    )
    assert any("bound to the mesh only" in w for w in result["warnings"])


def test_versions_seen_until_all_three_reviews_versions_answer(envoy_gateway):
    versions = {v: rf"Reviews served by:\s*reviews-{v}-" for v in ("v1", "v2", "v3")}
    result = traffic.check_versions_seen(
        envoy_gateway.url, versions, max_requests=200, timeout_seconds=30, host_header="bookinfo.local"
    )
    assert result["passed"], result
    assert result["missing"] == []
    # It stops as soon as all three were seen: P(not all seen in 60) < 3 * (2/3)**60 ~ 1e-10.
    assert result["requests"] <= 60
    assert set(result["first_seen_at"]) == {"v1", "v2", "v3"}


def test_versions_seen_fails_when_a_version_never_answers(envoy_gateway):
    versions = {v: rf"Reviews served by:\s*reviews-{v}-" for v in ("v1", "v2", "v3", "v4")}
    result = traffic.check_versions_seen(
        envoy_gateway.url, versions, max_requests=40, timeout_seconds=30, host_header="bookinfo.local"
    )
    assert not result["passed"]
    assert result["missing"] == ["v4"]
    assert result["requests"] == 40
    assert "['v4'] not seen in 40 requests" in result["failures"][0]
