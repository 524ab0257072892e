# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``mtls`` check: the mutual TLS mode Istio applies to the pods of some namespaces, computed
from the PeerAuthentication objects the way istiod composes them, and (optionally) confirmed by
plain-text requests from where the check runs, a caller without a sidecar.

How istiod decides (``pilot/pkg/model/authentication.go``, ``ComposePeerAuthentication``):

* a policy without selector (or with an empty ``matchLabels``) in the root namespace is mesh-wide,
  one in another namespace is namespace-wide; a policy with a selector outside the root namespace
  is a workload policy for the pods whose labels include the selector's; a policy with a selector
  in the root namespace applies to nothing;
* in each scope the oldest policy wins (creation time, then name);
* mesh-wide, then namespace-wide, then the workload policy: each one whose mode is not ``UNSET``
  (or missing) replaces the mode so far; with none the mode is ``PERMISSIVE``;
* ``portLevelMtls`` of the workload policy gives a mode per port, ``UNSET`` inheriting the
  workload's; ``portLevelMtls`` of a namespace-wide policy is ignored (and refused by Istio's
  validation).

Pure functions over API objects (dicts) and, for the probes, plain sockets; no Ansible imports.
Node-side code: Python 3.9 and later.
"""

import concurrent.futures
import re
import socket
import time

from ansible_collections.meshops.istio.plugins.module_utils.verify.cluster import pod_sidecar_state

MODES = ("STRICT", "PERMISSIVE", "DISABLE")
UNSET = "UNSET"
DEFAULT_MODE = "PERMISSIVE"
KIND = "PeerAuthentication"
# Served API versions, preferred first (v1 since Istio 1.22).
API_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
PROXY_CONTAINER = "istio-proxy"
# Istio's own ports (Envoy admin, status, stats, inbound/outbound capture): never probed.
PROXY_PORT_RANGE = (15000, 15099)

ANSWERED = "answered"
REFUSED = "refused"
UNREACHABLE = "unreachable"
INTERCEPTED = "intercepted"
# Ports that applications almost never serve; the first one a pod does not declare is its control
# port. A pod answers there in no mode (STRICT resets, PERMISSIVE passes the connection to a port
# nothing listens on), so an answer there comes from something between the caller and the pod (a
# transparent proxy), and that pod's probes are no evidence either way.
CONTROL_PORTS = (9, 7, 19, 1)
# What a caller without a sidecar gets from a pod of each mode.
EXPECTED_OUTCOME = {"STRICT": REFUSED, "PERMISSIVE": ANSWERED}

_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)? \d{3}(?: [^\r\n]*)?\r?\n")
_MAX_PROBE_THREADS = 16


def _result(**fields):
    result = {"name": "mtls", "passed": False, "failures": [], "warnings": []}
    result.update(fields)
    return result


# -- policies ---------------------------------------------------------------------------------


def _mode_of(setting):
    """The mode of an ``mtls`` (or ``portLevelMtls`` entry) mapping; ``UNSET`` when missing."""
    mode = (setting or {}).get("mode") if isinstance(setting, dict) else None
    mode = str(mode).upper() if mode else UNSET
    return mode if mode in MODES else UNSET


def policy_mode(policy):
    """The mode a PeerAuthentication writes (``STRICT``, ``PERMISSIVE``, ``DISABLE`` or ``UNSET``)."""
    return _mode_of((policy.get("spec") or {}).get("mtls"))


def selector_labels(policy):
    """The policy's ``selector.matchLabels``; empty for a namespace-wide (or mesh-wide) policy."""
    selector = (policy.get("spec") or {}).get("selector") or {}
    return dict(selector.get("matchLabels") or {})


def port_level_modes(policy):
    """``portLevelMtls`` as {port (text): mode or UNSET}."""
    ports = (policy.get("spec") or {}).get("portLevelMtls") or {}
    return {str(port): _mode_of(setting) for port, setting in sorted(ports.items(), key=lambda i: _port_key(i[0]))}


def _port_key(port):
    text = str(port)
    return (0, int(text), text) if text.isdigit() else (1, 0, text)


def policy_ref(policy):
    metadata = policy.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def _age(policy):
    metadata = policy.get("metadata") or {}
    return (str(metadata.get("creationTimestamp") or ""), str(metadata.get("name") or ""))


def oldest(policies):
    """The policy istiod uses among several of one scope: the oldest, then the first by name."""
    return min(policies, key=_age) if policies else None


def _selects(policy, labels):
    selector = selector_labels(policy)
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def namespace_mode(root_namespace, mesh_policies, namespace_policies, namespace):
    """The namespace-wide mode of ``namespace``: what a pod there gets without a workload policy.

    Returns {mode, decided_by, policy (the namespace-wide policy in force, or None),
    mesh_policy (the mesh-wide one in force, or None)}.
    """
    mesh = oldest([p for p in mesh_policies if not selector_labels(p)])
    wide = []
    if namespace != root_namespace:
        wide = [p for p in namespace_policies if not selector_labels(p)]
    local = oldest(wide)
    mode, decided_by = DEFAULT_MODE, "Istio's default (no PeerAuthentication sets a mode)"
    if mesh is not None and policy_mode(mesh) != UNSET:
        mode, decided_by = policy_mode(mesh), f"mesh-wide policy {policy_ref(mesh)}"
    if local is not None and policy_mode(local) != UNSET:
        mode, decided_by = policy_mode(local), f"namespace policy {policy_ref(local)}"
    return {
        "mode": mode,
        "decided_by": decided_by,
        "policy": policy_ref(local) if local is not None else None,
        "mesh_policy": policy_ref(mesh) if mesh is not None else None,
    }


def workload_mode(namespace_state, namespace_policies, labels, root_namespace=None, namespace=None):
    """The mode of one pod (by its labels) and of its ports: {mode, decided_by, policy, ports,
    selected_by}.

    ``namespace_state`` is ``namespace_mode``'s result for the pod's namespace; ``policy`` is the
    workload policy in force (or None); ``ports`` maps each port of its ``portLevelMtls`` to the
    port's mode (``UNSET`` resolved to the workload's); ``selected_by`` names every policy whose
    selector matches.
    """
    matching = []
    if namespace is None or namespace != root_namespace:
        matching = [p for p in namespace_policies if _selects(p, labels)]
    policy = oldest(matching)
    mode, decided_by = namespace_state["mode"], namespace_state["decided_by"]
    ports = {}
    if policy is not None:
        if policy_mode(policy) != UNSET:
            mode, decided_by = policy_mode(policy), f"workload policy {policy_ref(policy)}"
        ports = {port: (mode if value == UNSET else value) for port, value in port_level_modes(policy).items()}
    return {
        "mode": mode,
        "decided_by": decided_by,
        "policy": policy_ref(policy) if policy is not None else None,
        "ports": ports,
        "selected_by": sorted(policy_ref(p) for p in matching),
    }


def _policy_summary(policy, root_namespace, namespace, pods):
    selector = selector_labels(policy)
    if namespace == root_namespace:
        scope = "mesh" if not selector else "ignored"
    else:
        scope = "workload" if selector else "namespace"
    return {
        "name": (policy.get("metadata") or {}).get("name"),
        "scope": scope,
        "mode": policy_mode(policy),
        "selector": selector,
        "port_level_mtls": port_level_modes(policy),
        "created": (policy.get("metadata") or {}).get("creationTimestamp"),
        "selects": sorted(name for name, labels in pods if scope == "workload" and _selects(policy, labels)),
    }


def _explicit_ports(policies, ref):
    """The ports whose mode the policy named ``ref`` sets itself (not UNSET)."""
    for policy in policies:
        if policy_ref(policy) == ref:
            return {port for port, mode in port_level_modes(policy).items() if mode != UNSET}
    return set()


def _live(pod):
    return ((pod.get("status") or {}).get("phase")) not in ("Succeeded", "Failed")


def _pod_labels(pod):
    return dict((pod.get("metadata") or {}).get("labels") or {})


def _describe_selector(selector):
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


def _refs(policies):
    return ", ".join(sorted(policy_ref(p) for p in policies))


def _several_wide(scope, namespace, wide):
    """The warning for more than one policy without a selector in one scope (Istio takes the oldest)."""
    if len(wide) < 2:
        return []
    return [
        f"several {scope} PeerAuthentications in {namespace} ({_refs(wide)}): "
        f"Istio uses the oldest, {policy_ref(oldest(wide))}; delete the others"
    ]


def _scope_warnings(root_namespace, namespace, namespace_policies):
    wide = [p for p in namespace_policies if not selector_labels(p)] if namespace != root_namespace else []
    warnings = _several_wide("namespace-wide", namespace, wide)
    for policy in wide:
        if port_level_modes(policy):
            warnings.append(
                f"PeerAuthentication {policy_ref(policy)} has portLevelMtls without a selector: Istio ignores it "
                "(and its validation refuses it); port-level modes need a workload selector"
            )
    return warnings


def mesh_warnings(root_namespace, mesh_policies):
    """Warnings about the root namespace's policies: several mesh-wide ones, ignored selectors."""
    warnings = _several_wide("mesh-wide", root_namespace, [p for p in mesh_policies if not selector_labels(p)])
    for policy in mesh_policies:
        if selector_labels(policy):
            warnings.append(
                f"PeerAuthentication {policy_ref(policy)} has a selector in the root namespace {root_namespace}: Istio "
                "applies it to no workload; put workload policies into the workload's namespace"
            )
    return warnings


def evaluate_namespace(root_namespace, mesh_policies, namespace, namespace_policies, pods, expected):
    """One namespace's report and the failures and warnings it gives against ``expected``."""
    failures, warnings = [], []
    state = namespace_mode(root_namespace, mesh_policies, namespace_policies, namespace)
    live = [p for p in pods if _live(p)]
    meshed = [p for p in live if pod_sidecar_state(p)["has_proxy"]]
    unmeshed = sorted(p["metadata"]["name"] for p in live if not pod_sidecar_state(p)["has_proxy"])
    named_labels = [(p["metadata"]["name"], _pod_labels(p)) for p in meshed]
    workloads = {}
    if state["mode"] != expected:
        failures.append(f"namespace {namespace} is {state['mode']} ({state['decided_by']}), expected {expected}")
    for name, labels in sorted(named_labels):
        workload = workload_mode(state, namespace_policies, labels, root_namespace, namespace)
        workloads[name] = workload
        if len(workload["selected_by"]) > 1:
            warnings.append(
                f"pod {namespace}/{name} is selected by several PeerAuthentications "
                f"({', '.join(workload['selected_by'])}): Istio uses the oldest, {workload['policy']}"
            )
        if workload["decided_by"].startswith("workload policy") and workload["mode"] != expected:
            failures.append(
                f"pod {namespace}/{name} is {workload['mode']} by {workload['decided_by']}, expected {expected}"
            )
        explicit = _explicit_ports(namespace_policies, workload["policy"])
        for port, mode in workload["ports"].items():
            if port in explicit and mode != expected:
                failures.append(
                    f"pod {namespace}/{name} port {port} is {mode} by the portLevelMtls of {workload['policy']}, "
                    f"expected {expected}"
                )
    policies = [
        _policy_summary(p, root_namespace, namespace, named_labels) for p in sorted(namespace_policies, key=_age)
    ]
    for summary in policies:
        if summary["scope"] != "workload" or summary["selects"]:
            continue
        modes = {summary["mode"]} | set(summary["port_level_mtls"].values())
        if modes - {expected, UNSET}:
            warnings.append(
                f"PeerAuthentication {namespace}/{summary['name']} "
                f"(selector {_describe_selector(summary['selector'])}) selects no pod with a sidecar now; "
                f"pods it selects later will not be {expected}"
            )
    warnings.extend(_scope_warnings(root_namespace, namespace, namespace_policies))
    if not meshed:
        warnings.append(
            f"namespace {namespace} has no pod with an {PROXY_CONTAINER} sidecar: its mode applies to none yet"
        )
    if unmeshed and expected == "STRICT":
        warnings.append(
            f"pods without an {PROXY_CONTAINER} sidecar in {namespace} answer any caller whatever the mode: "
            f"{', '.join(unmeshed)}"
        )
    report = {
        "mode": state["mode"],
        "decided_by": state["decided_by"],
        "policy": state["policy"],
        "policies": policies,
        "workloads": workloads,
    }
    return report, failures, warnings


# -- probes -----------------------------------------------------------------------------------


def probe_targets(pods_by_namespace):
    """(targets, skipped): one target per running pod with a sidecar and TCP containerPort of its
    other containers (outside 15000-15099 and the sidecar's own ports), each with the pod's
    ``control_port`` (the first of CONTROL_PORTS no container declares); ``skipped`` says which
    pods with a sidecar have nothing to probe, and why."""
    targets, skipped = [], []
    for namespace, pods in sorted(pods_by_namespace.items()):
        for pod in sorted(pods or [], key=lambda p: p["metadata"]["name"]):
            name = f"{namespace}/{pod['metadata']['name']}"
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            state = pod_sidecar_state(pod)
            if not state["has_proxy"]:
                continue
            if status.get("phase") != "Running":
                skipped.append(f"{name}: {status.get('phase') or 'no phase'}, not Running")
                continue
            if state["host_network"]:
                skipped.append(f"{name}: hostNetwork")
                continue
            address = status.get("podIP")
            if not address:
                skipped.append(f"{name}: no pod IP")
                continue
            every_container = (spec.get("containers") or []) + (spec.get("initContainers") or [])
            proxy_ports = {
                port.get("containerPort")
                for container in every_container
                if container.get("name") == PROXY_CONTAINER
                for port in container.get("ports") or []
            }
            declared = {
                port.get("containerPort") for container in every_container for port in container.get("ports") or []
            }
            control_port = next((p for p in CONTROL_PORTS if p not in declared), None)
            seen = set()
            for container in spec.get("containers") or []:
                if container.get("name") == PROXY_CONTAINER:
                    continue
                for port in container.get("ports") or []:
                    number = port.get("containerPort")
                    if (port.get("protocol") or "TCP") != "TCP" or not isinstance(number, int):
                        continue
                    if PROXY_PORT_RANGE[0] <= number <= PROXY_PORT_RANGE[1] or number in proxy_ports or number in seen:
                        continue
                    seen.add(number)
                    targets.append(
                        {
                            "pod": name,
                            "container": container.get("name"),
                            "address": address,
                            "port": number,
                            "control_port": control_port,
                        }
                    )
            if not seen:
                skipped.append(f"{name}: no TCP containerPort outside the sidecar's ports")
    return targets, skipped


def _host_header(address, port):
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def classify(received, closed, reset=None):
    """(outcome, status_line, detail) for what a plain-text GET got back after connecting.

    ``received``: the bytes read; ``closed``: the peer closed (EOF) or reset; ``reset``: the
    reset's description when it was one. An HTTP status line is an answer whatever follows; a
    close or reset without one is a refusal; nothing at all within the timeout is no evidence.
    """
    match = _STATUS_LINE.match(received)
    if match:
        return ANSWERED, match.group(0).decode("latin-1").strip(), "answered in plain text"
    if reset:
        if received:
            return REFUSED, None, f"{reset} after {len(received)} bytes that are not an HTTP response"
        return REFUSED, None, f"{reset} without an HTTP response"
    if closed:
        if received:
            return REFUSED, None, f"closed after {len(received)} bytes that are not HTTP ({received[:16]!r})"
        return REFUSED, None, "closed without an HTTP response"
    if received:
        return REFUSED, None, f"sent {len(received)} bytes that are not HTTP ({received[:16]!r})"
    return UNREACHABLE, None, "connected, but neither an answer nor a close"


def probe(address, port, timeout=3.0):
    """One plain-text HTTP/1.1 GET to ``address:port`` on a fresh connection, as a caller without a
    sidecar sends it. Returns {outcome, status_line, detail, connected, seconds}: ``answered``
    (an HTTP status line came back), ``refused`` (TCP refused, or closed/reset without an HTTP
    response) or ``unreachable`` (no connection within ``timeout``, no route, or a connection
    that stayed silent for ``timeout``: no evidence either way)."""
    started = time.monotonic()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    connected = False
    received = b""
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return _probe_outcome(UNREACHABLE, None, f"no socket: {exc.strerror or exc}", False, started)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except ConnectionRefusedError:
            return _probe_outcome(REFUSED, None, "TCP connection refused", False, started)
        except socket.timeout:
            return _probe_outcome(UNREACHABLE, None, f"no TCP connection within {timeout:g} s", False, started)
        except OSError as exc:
            return _probe_outcome(UNREACHABLE, None, f"cannot connect: {exc.strerror or exc}", False, started)
        connected = True
        request = (
            f"GET / HTTP/1.1\r\nHost: {_host_header(address, port)}\r\nUser-Agent: meshops.istio-verify\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        closed, reset = False, None
        try:
            sock.sendall(request)
            while b"\n" not in received and len(received) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except socket.timeout:
            pass
        except (ConnectionResetError, BrokenPipeError) as exc:
            reset = "connection reset" if isinstance(exc, ConnectionResetError) else "connection closed while sending"
        except OSError as exc:
            reset = f"connection failed ({exc.strerror or exc})"
        outcome, status_line, detail = classify(received, closed, reset)
        if outcome == UNREACHABLE:
            detail += f" within {timeout:g} s"
        return _probe_outcome(outcome, status_line, detail, connected, started)
    finally:
        sock.close()


def _probe_outcome(outcome, status_line, detail, connected, started):
    return {
        "outcome": outcome,
        "status_line": status_line,
        "detail": detail,
        "connected": connected,
        "seconds": round(time.monotonic() - started, 3),
    }


def run_probes(targets, timeout, send=probe):
    """Every target probed, and each pod's control port once (concurrently, at most 16 at a time).

    Returns the targets in their order, each with the probe's fields and ``control`` (port,
    outcome, status_line, detail of its pod's control probe). A probe whose pod answered on the
    control port too is ``intercepted``: something between here and the pod answers for it.
    """
    if not targets:
        return []
    controls = sorted({(t["address"], t["control_port"]) for t in targets if t.get("control_port")})
    jobs = [(t["address"], t["port"]) for t in targets] + controls
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(_MAX_PROBE_THREADS, len(jobs))) as pool:
        outcomes = list(pool.map(lambda job: send(job[0], job[1], timeout), jobs))
    control_outcomes = dict(zip(controls, outcomes[len(targets) :]))
    probes = []
    for target, outcome in zip(targets, outcomes):
        entry = dict(target)
        control_port = entry.pop("control_port", None)
        entry.update(outcome)
        control = control_outcomes.get((entry["address"], control_port))
        entry["control"] = None
        if control is not None:
            entry["control"] = {key: control[key] for key in ("outcome", "status_line", "detail")}
            entry["control"]["port"] = control_port
            if control["outcome"] == ANSWERED and entry["outcome"] in (ANSWERED, REFUSED):
                entry["detail"] = (
                    f"{entry['outcome']} ({entry['status_line'] or entry['detail']}), but port {control_port}, which "
                    f"no container of the pod declares, answered too ({control['status_line']}): something between "
                    "here and the pod answers for it"
                )
                entry["outcome"] = INTERCEPTED
        probes.append(entry)
    return probes


def judge_probes(probes, expected, timeout, host, skipped, namespaces):
    """Failures and warnings of the probes against the expected mode; ``expected`` added to each."""
    failures, warnings = [], []
    want = EXPECTED_OUTCOME[expected]
    for entry in probes:
        entry["expected"] = want
        where = f"pod {entry['pod']} ({_host_header(entry['address'], entry['port'])}, container {entry['container']})"
        if entry["outcome"] == ANSWERED and want == REFUSED:
            failures.append(
                f"{where} answered a caller without sidecar in plain text ({entry['status_line']}), expected it "
                f"to be refused ({expected})"
            )
        elif entry["outcome"] == REFUSED and want == ANSWERED:
            failures.append(
                f"{where} refused a caller without sidecar ({entry['detail']}), expected a plain-text answer "
                f"({expected})"
            )
    reached = [p for p in probes if p["outcome"] in (ANSWERED, REFUSED)]
    no_evidence = [p for p in probes if p["outcome"] not in (ANSWERED, REFUSED)]
    if not probes:
        failures.append(
            "probe is true but there is nothing to probe: no running pod with an istio-proxy sidecar and a TCP "
            f"containerPort in {', '.join(namespaces)}" + (f" (skipped: {'; '.join(skipped)})" if skipped else "")
        )
    elif not reached:
        addresses = ", ".join(sorted({p["address"] for p in probes}))
        intercepted = [p for p in probes if p["outcome"] == INTERCEPTED]
        way_out = (
            "run the check on a host where pod IPs are routable (a node of the cluster), or set mtls.probe to false "
            "to judge the policies alone"
        )
        if intercepted:
            failures.append(
                f"no probe reached a pod: something between {host}, where the check ran, and the pod addresses "
                f"({addresses}) answers for them (first: {intercepted[0]['pod']} port {intercepted[0]['port']} "
                f"{intercepted[0]['detail']}); {way_out}"
            )
        elif any(p["connected"] for p in probes):
            failures.append(
                f"no probe got an answer or a refusal: the connections to {addresses} were accepted but stayed "
                f"silent for mtls.timeout ({timeout:g} s); raise mtls.timeout"
            )
        else:
            failures.append(
                f"no probe reached a pod: the pod addresses ({addresses}) are not reachable from {host}, where the "
                f"check ran (first: {no_evidence[0]['detail']}); {way_out}"
            )
    elif no_evidence:
        warnings.append(
            f"{len(no_evidence)} of {len(probes)} probes are no evidence either way: "
            + "; ".join(f"{p['pod']} port {p['port']} {p['outcome']} ({p['detail']})" for p in no_evidence[:5])
        )
    return failures, warnings, len(reached)


# -- the check --------------------------------------------------------------------------------


def check_mtls(
    root_namespace,
    mesh_policies,
    policies_by_namespace,
    pods_by_namespace,
    expected="STRICT",
    api_version=API_VERSIONS[0],
    probes=None,
    probe_skipped=None,
    timeout=3.0,
    host="this host",
):
    """The ``mtls`` check's result.

    ``mesh_policies``: the PeerAuthentications of the root namespace; ``policies_by_namespace``:
    {namespace: its PeerAuthentications, or None when the namespace does not exist};
    ``pods_by_namespace``: {namespace: its pods}; ``probes``: ``run_probes``' entries, or None when
    no probe was asked for. Passes only on what was read: a namespace that does not exist fails,
    and with probes at least one must have reached a pod.
    """
    if expected not in EXPECTED_OUTCOME:
        raise ValueError(f"expected mode {expected!r} is not one of {sorted(EXPECTED_OUTCOME)}")
    failures, warnings = [], list(mesh_warnings(root_namespace, mesh_policies))
    mesh = oldest([p for p in mesh_policies if not selector_labels(p)])
    namespaces = {}
    for namespace in sorted(policies_by_namespace):
        policies = policies_by_namespace[namespace]
        if policies is None:
            failures.append(f"namespace {namespace} not found")
            continue
        report, namespace_failures, namespace_warnings = evaluate_namespace(
            root_namespace, mesh_policies, namespace, policies, pods_by_namespace.get(namespace) or [], expected
        )
        namespaces[namespace] = report
        failures.extend(namespace_failures)
        warnings.extend(namespace_warnings)
    observed = len(namespaces)
    result = _result(
        expected_mode=expected,
        api_version=api_version,
        root_namespace=root_namespace,
        mesh_policy=({"name": policy_ref(mesh), "mode": policy_mode(mesh)} if mesh is not None else None),
        namespaces=namespaces,
        probed=probes is not None,
        probes=probes or [],
        probe_skipped=list(probe_skipped or []),
    )
    if probes is not None:
        probe_failures, probe_warnings, reached = judge_probes(
            result["probes"], expected, timeout, host, result["probe_skipped"], sorted(policies_by_namespace)
        )
        failures.extend(probe_failures)
        warnings.extend(probe_warnings)
        observed += reached
    result.update(failures=failures, warnings=warnings, observed=observed, passed=not failures)
    return result
