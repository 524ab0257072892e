"""No false alarms on narrowed captures, in a real kernel.

For combinations of annotations (tests/unit/iptables/narrowed_captures.py), the rules Istio's init
writes for them are loaded into a pod network namespace; the audit, given the annotations, must
find no error, and every standard probe it traces is made as a real connection: the kernel's
counters must move exactly along the trace, and the connection must end where the annotations say
(the sidecar's port when they include it, the application or the peer when they leave it alone).
"""

import ipaddress

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from tests.unit.iptables import narrowed_captures

from .netlab import run
from .test_differential import SidecarPod

pytestmark = pytest.mark.netns

NAMES = [
    "inbound *, outbound *, no excluded outbound ports",
    "inbound * excluding the app port, include 10.0.0.0/8 excluding 10.0.0.0/24, no excluded outbound ports",
    "inbound ports 80,9080, outbound * excluding 198.51.100.0/24, excluded outbound ports 80,8080,53, DNS capture",
    "inbound ports 80,8080, include 10.96.0.0/12 wholly excluded, no excluded outbound ports, DNS capture",
    "no inbound capture, no outbound capture, no excluded outbound ports",
    "inbound * excluding the app port, outbound * excluding 198.51.100.0/24, no excluded outbound ports, TPROXY",
    "inbound ports 80,9080, include 10.0.0.0/8 excluding 10.0.0.0/24, excluded outbound ports 80,8080,53, TPROXY",
]
CASES = {name: (options, expected) for name, options, expected in narrowed_captures.cases()}
CAPTURE_PORT = {"prerouting": 15006, "tcp": 15001, "udp": 15053}


def _landing(options, packet):
    if narrowed_captures.oracle(options, packet):
        port = CAPTURE_PORT["prerouting"] if packet["hook"] == "prerouting" else CAPTURE_PORT[packet["protocol"]]
        return f"proxy:{port}"
    if packet["hook"] == "prerouting" or packet["dst"] == "127.0.0.1":
        return f"app:{packet['dport']}"
    return f"peer:{packet['dport']}"


@pytest.mark.parametrize("backend", ["nft", "legacy"])
@pytest.mark.parametrize("name", NAMES)
def test_every_probe_of_a_narrowed_capture_in_the_kernel(netlab, backend, name):
    if backend == "legacy" and "TPROXY" not in name and "DNS" not in name:
        pytest.skip("legacy: the TPROXY and DNS combinations are enough")
    options, expected = CASES[name]
    tproxy = options.get("mode") == "TPROXY"
    pod = SidecarPod(netlab, backend, tproxy=tproxy, **options)
    result = audit(pod.read.rulesets["ipv4"], expected=expected, local_addresses=pod.read.local_addresses)
    assert [f for f in result["findings"] if f["severity"] in ("error", "warning")] == []
    traces = result["traces"]
    app_ports = sorted({t["packet"]["dport"] for t in traces} - {80, 8080, 15021, 53})
    if app_ports:
        netlab.listen(pod.pod, "app", [f"tcp:{p}" for p in app_ports])
    peer_ports = sorted({t["packet"]["dport"] for t in traces if t["packet"]["hook"] == "output"} - {8080, 9090, 53})
    if peer_ports:
        netlab.listen(pod.peer, "peer", [f"tcp:{p}" for p in peer_ports])
    for trace in traces:
        packet = trace["packet"]
        dst = ipaddress.ip_address(packet["dst"])
        if packet["hook"] == "output" and not dst.is_loopback:
            # Outbound probes go to documentation or cluster addresses: give them to the peer namespace.
            run(["ip", "-n", pod.peer, "addr", "replace", f"{dst}/32", "dev", "eth0"])
        expect = _landing(options, packet)
        tables = None if packet["protocol"] == "udp" else ("nat",)
        pod.probe(dict(packet), expect, tables=tables, at_least=("mangle",) if tproxy else ())
