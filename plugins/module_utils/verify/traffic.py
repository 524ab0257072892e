# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks that send real HTTP requests: ``http``, ``traffic_split`` and ``versions_seen``.

Plain Python (http.client from the standard library); each check returns a result dict with
``name``, ``passed``, ``failures`` (list of human-readable reasons) and ``warnings``.
Every request opens a new connection, like a browser refresh: a kept-alive connection would be
pinned to one backend by kube-proxy and hide the trap the ``traffic_split`` warning is about.
"""

import http.client
import re
import ssl
import time
import urllib.parse

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.istio.plugins.module_utils.verify import stats

# Envoy's router adds this response header to every proxied response; Istio gateways and
# sidecars keep it. Its absence means no Envoy router decided where the request went.
ENVOY_ROUTER_HEADER = "x-envoy-upstream-service-time"


class VerifyError(MeshopsError, ValueError):
    """Raised for check arguments that cannot be used (bad URL, bad pattern, unknown weight)."""


class VerifyNotFound(VerifyError, LookupError):
    """Something a check needs is not in the cluster; the message says what to install or give."""


class Response:
    __slots__ = ("body", "error", "headers", "status")

    def __init__(self, status=None, headers=None, body="", error=None):
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.error = error

    @property
    def through_envoy(self):
        return ENVOY_ROUTER_HEADER in self.headers


def parse_url(url):
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise VerifyError(f"url {url!r} must be an absolute http:// or https:// URL")
    path = parsed.path or "/"
    if parsed.query:
        path += "?" + parsed.query
    return parsed.scheme, parsed.hostname, parsed.port, path


def http_get(url, host_header=None, timeout=5.0, validate_certs=True, headers=None, max_body=1024 * 1024):
    """One GET on a fresh connection. Transport errors are returned in ``Response.error``."""
    scheme, hostname, port, path = parse_url(url)
    if scheme == "https":
        context = ssl.create_default_context()
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(hostname, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(hostname, port, timeout=timeout)
    request_headers = {"Connection": "close", "User-Agent": "meshops.istio-verify"}
    if headers:
        request_headers.update(headers)
    if host_header:
        request_headers["Host"] = host_header
    try:
        connection.request("GET", path, headers=request_headers)
        reply = connection.getresponse()
        body = reply.read(max_body).decode("utf-8", errors="replace")
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, body)
    except (OSError, http.client.HTTPException) as exc:
        return Response(error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def compile_pattern(pattern, what):
    if not isinstance(pattern, str):
        raise VerifyError(
            f"{what}: {pattern!r} is not a regular expression; give the pattern as text, e.g. 'reviews-v1-'"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise VerifyError(f"{what}: {pattern!r} is not a valid regular expression ({exc})") from exc


def _result(name, **fields):
    result = {"name": name, "passed": False, "failures": [], "warnings": []}
    result.update(fields)
    return result


def check_http(
    url,
    host_header=None,
    expected_status=(200,),
    body_pattern=None,
    timeout=5.0,
    retries=0,
    delay=1.0,
    validate_certs=True,
    fetch=http_get,
):
    """One URL answers with an expected status and a body matching a pattern.

    Retries (``retries`` more attempts, ``delay`` seconds apart) cover a gateway that is still
    receiving its configuration; the result reports the last attempt.
    """
    pattern = compile_pattern(body_pattern, "http.body_pattern") if body_pattern else None
    if retries < 0:
        raise VerifyError(f"http.retries is {retries}: it must be at least 0")
    result = _result("http", url=url, host=host_header, attempts=0, observed=0)
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(delay)
        response = fetch(url, host_header=host_header, timeout=timeout, validate_certs=validate_certs)
        result["attempts"] = result["observed"] = attempt + 1
        failures = []
        match = None
        if response.error:
            failures.append(f"GET {url} (Host: {host_header or '-'}) failed: {response.error}")
        else:
            if response.status not in expected_status:
                failures.append(
                    f"GET {url} (Host: {host_header or '-'}) answered {response.status}, "
                    f"expected {' or '.join(str(s) for s in expected_status)}"
                )
            if pattern is not None:
                match = pattern.search(response.body)
                if match is None:
                    failures.append(f"body of {url} does not match {pattern.pattern!r}")
        result.update(
            status=response.status,
            matched=match.group(0) if match else None,
            through_envoy=response.through_envoy,
            failures=failures,
            passed=not failures,
        )
        if not failures:
            break
    return result


def attribute(body, patterns):
    """Names of the destinations whose pattern matches the body."""
    return [name for name, pattern in patterns.items() if pattern.search(body)]


def weights_from_virtual_service(virtual_service, destinations):
    """Map caller destination names to the weights of a VirtualService's first weighted route.

    A destination name is the route destination's ``host`` (short or full name), optionally with
    ``/subset`` (``reviews/v1``). Destinations with no ``weight`` field get the remainder (Istio:
    a single destination without weight takes 100).
    """
    http_routes = (virtual_service.get("spec") or {}).get("http") or []
    if not http_routes:
        name = virtual_service.get("metadata", {}).get("name")
        raise VerifyError(f"VirtualService {name} has no http routes to take weights from")
    route = next((r for r in http_routes if len(r.get("route") or []) > 1), http_routes[0])
    weights = {}
    for entry in route.get("route") or []:
        destination = entry.get("destination") or {}
        host = destination.get("host", "")
        key = host.split(".")[0]
        if destination.get("subset"):
            key += "/" + destination["subset"]
        weights[key] = entry.get("weight")
    given = [w for w in weights.values() if w is not None]
    missing = [k for k, w in weights.items() if w is None]
    if missing:
        remainder = max(0, 100 - sum(given))
        for key in missing:
            weights[key] = remainder / len(missing)
    unknown = [name for name in destinations if name.split(".")[0] not in weights]
    if unknown:
        raise VerifyError(
            f"destinations {unknown} are not routed by the VirtualService (its route names {sorted(weights)}); "
            "name destinations after the route's destination host (and /subset)"
        )
    return {name: weights[name.split(".")[0]] for name in destinations}


def virtual_service_is_mesh_only(virtual_service):
    gateways = (virtual_service.get("spec") or {}).get("gateways") or ["mesh"]
    return all(g == "mesh" for g in gateways)


def check_traffic_split(
    url,
    destinations,
    weights,
    requests=400,
    confidence=0.999,
    host_header=None,
    timeout=5.0,
    validate_certs=True,
    caller_in_mesh=False,
    mesh_only_route=False,
    fetch=http_get,
):
    """Send ``requests`` requests, attribute each response by pattern, test the shares.

    ``destinations``: {name: regex}; ``weights``: {name: weight} for the same names.
    Fails when a response matches no pattern or several, when requests fail, or when the
    goodness-of-fit p-value is below 1 - confidence.
    """
    if set(destinations) != set(weights):
        raise VerifyError(f"traffic_split: destinations {sorted(destinations)} and weights {sorted(weights)} differ")
    if requests < 1:
        raise VerifyError("traffic_split.requests must be at least 1")
    patterns = {name: compile_pattern(p, f"traffic_split.destinations.{name}") for name, p in destinations.items()}
    counts = dict.fromkeys(destinations, 0)
    unattributed = ambiguous = failed = through_envoy = 0
    samples = []
    started = time.monotonic()
    for _request in range(requests):
        response = fetch(url, host_header=host_header, timeout=timeout, validate_certs=validate_certs)
        if response.error or not 200 <= (response.status or 0) < 400:
            failed += 1
            if len(samples) < 3:
                samples.append(response.error or f"status {response.status}")
            continue
        through_envoy += response.through_envoy
        names = attribute(response.body, patterns)
        if len(names) == 1:
            counts[names[0]] += 1
        elif not names:
            unattributed += 1
        else:
            ambiguous += 1
    elapsed = time.monotonic() - started
    result = _result(
        "traffic_split",
        url=url,
        host=host_header,
        requests=requests,
        counts=counts,
        unattributed=unattributed,
        ambiguous=ambiguous,
        failed_requests=failed,
        through_envoy=through_envoy,
        elapsed_seconds=round(elapsed, 3),
        observed=requests - failed,
    )
    failures = result["failures"]
    warnings = result["warnings"]
    if failed:
        failures.append(f"{failed} of {requests} requests failed (first: {'; '.join(samples)})")
    if unattributed:
        failures.append(f"{unattributed} responses matched no destination pattern")
    if ambiguous:
        failures.append(f"{ambiguous} responses matched more than one destination pattern")
    if not caller_in_mesh and mesh_only_route:
        warnings.append(
            "the VirtualService is bound to the mesh only (no gateway) and this caller is outside the mesh: "
            "its requests bypass the VirtualService, so kube-proxy's round robin, not Envoy, picks the "
            "destination; send the traffic through the ingress gateway or from a pod with a sidecar"
        )
    answered = requests - failed
    if answered and through_envoy == 0 and not caller_in_mesh:
        warnings.append(
            f"none of the responses carries the {ENVOY_ROUTER_HEADER} header: no Envoy routed them, so the "
            "caller is outside the mesh and kube-proxy's round robin, not the VirtualService weights, decided "
            "the split; target the ingress gateway (Host header) instead"
        )
    attributed = sum(counts.values())
    if attributed:
        test = stats.weights_goodness_of_fit(counts, weights, confidence)
        result.update(
            p_value=test["p_value"],
            method=test["method"],
            statistic=test["statistic"],
            df=test["df"],
            alpha=test["alpha"],
            confidence=confidence,
            observed_shares=test["observed_shares"],
            expected_shares=test["expected_shares"],
        )
        if test["approximate"]:
            warnings.append("some expected counts are below 5: the chi-square p-value is approximate; raise requests")
        if not test["passed"]:
            observed = ", ".join(f"{n} {s:.3f}" for n, s in sorted(test["observed_shares"].items()))
            expected = ", ".join(f"{n} {s:.3f}" for n, s in sorted(test["expected_shares"].items()))
            failures.append(
                f"observed shares ({observed}) differ from the weights ({expected}): {test['method']} "
                f"p-value {test['p_value']:.3g} < {test['alpha']:.3g} (confidence {confidence})"
            )
    else:
        failures.append("no response could be attributed to a destination")
    result["passed"] = not failures
    return result


def check_versions_seen(
    url,
    versions,
    max_requests=100,
    timeout_seconds=60.0,
    host_header=None,
    timeout=5.0,
    validate_certs=True,
    fetch=http_get,
):
    """Request until every version's pattern has matched a response, or the budget runs out."""
    if max_requests < 1:
        raise VerifyError("versions_seen.max_requests must be at least 1")
    if not versions:
        raise VerifyError("versions_seen.versions is empty: give each version a name and a pattern")
    patterns = {name: compile_pattern(p, f"versions_seen.versions.{name}") for name, p in versions.items()}
    seen = dict.fromkeys(versions, 0)
    first_seen = {}
    failed = 0
    sent = 0
    deadline = time.monotonic() + timeout_seconds
    while sent < max_requests and time.monotonic() < deadline:
        response = fetch(url, host_header=host_header, timeout=timeout, validate_certs=validate_certs)
        sent += 1
        if response.error or response.status != 200:
            failed += 1
            continue
        for name in attribute(response.body, patterns):
            seen[name] += 1
            first_seen.setdefault(name, sent)
        if all(seen.values()):
            break
    missing = sorted(name for name, count in seen.items() if not count)
    result = _result(
        "versions_seen",
        url=url,
        host=host_header,
        requests=sent,
        seen=seen,
        first_seen_at=first_seen,
        missing=missing,
        failed_requests=failed,
        observed=sent - failed,
    )
    if missing:
        result["failures"].append(
            f"versions {missing} not seen in {sent} requests (budget {max_requests} requests / "
            f"{timeout_seconds:g} s; {failed} failed)"
        )
    result["passed"] = not result["failures"]
    return result
