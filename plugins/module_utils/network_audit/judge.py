"""The audit's use of the iptables engine (plugins/module_utils/iptables, issue 3).

Everything that decides what rules *do* comes from the engine: the parser, the tracer, the
sidecar capture audit (with its standard probes) and the kube-proxy summary. This file only
adapts shapes to what the audit discovered on the node.
"""

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit as engine_audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.kube_proxy import kube_proxy_summary
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer

ISTIO_PORTS = {
    15000: "Envoy admin",
    15001: "Envoy outbound capture",
    15004: "debug",
    15006: "Envoy inbound capture",
    15008: "HBONE tunnel",
    15020: "merged Prometheus telemetry (pilot-agent)",
    15021: "health checks",
    15053: "DNS proxy",
    15090: "Envoy Prometheus telemetry",
}
INBOUND_PROBE = "inbound_app_port"


def parse(text, source, backend):
    """Parse one ``iptables-save -c`` text; an empty text is an empty ruleset."""
    return parse_dump(text or "", source=source, backend=backend)


def has_capture_chains(ruleset):
    return any(name.startswith("ISTIO_") for table in ruleset.tables.values() for name in table.chains)


def counters_map(ruleset):
    """{(table, chain, number): packets} for every rule."""
    return {(r.table, r.chain, r.number): r.packets or 0 for r in ruleset.iter_rules()}


def trace_all(ruleset, packets, local_addresses):
    tracer = Tracer(ruleset, local_addresses=local_addresses)
    results = []
    for spec in packets:
        try:
            results.append(tracer.trace(dict(spec)))
        except IptablesError as exc:
            results.append({"name": spec.get("name"), "error": str(exc)})
    return results


def sidecar_audit(ruleset, expected, local_addresses):
    """The engine's judgement of one pod's capture rules: capture, findings, traces."""
    return engine_audit(ruleset, expected=expected, local_addresses=local_addresses)


def kube_proxy_services(ruleset):
    return kube_proxy_summary(ruleset)
