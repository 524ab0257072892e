"""iptables_trace's main() on a saved dump: a packet field given as an empty string (an unset
variable in a template) is refused naming the packet and the field, before anything is read,
instead of silently meaning its default (tcp, mark 0, an unknown interface)."""

import os

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import PacketSpecError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.matcher import refuse_empty_fields
from ansible_collections.meshops.istio.plugins.modules import iptables_trace

from .module_runner import run_module

DUMP = os.path.join(os.path.dirname(__file__), "..", "iptables", "data", "dumps", "kube-node.legacy.save")
PACKET = {"name": "web", "hook": "prerouting", "src": "192.0.2.1", "dst": "10.96.0.20", "dport": 80}


def test_a_packet_traces_through_main():
    result, code = run_module(iptables_trace.main, {"src": DUMP, "packets": [PACKET]})
    assert code == 0, result
    (trace,) = result["traces"]
    assert trace["name"] == "web" and trace["verdict"]["action"] == "DNAT"


@pytest.mark.parametrize("field", ["protocol", "in_interface", "out_interface", "mark"])
@pytest.mark.parametrize("empty", ["", " ", "\t"], ids=["empty", "blank", "tab"])
def test_an_empty_packet_field_is_refused_naming_packet_and_field(field, empty):
    result, code = run_module(
        iptables_trace.main, {"src": DUMP, "packets": [PACKET, dict(PACKET, name="p2", **{field: empty})]}
    )
    assert code == 1
    assert result["msg"].startswith(f"p2: {field} is empty, which would silently mean")
    assert "traces" not in result


def test_a_packet_without_a_name_is_named_by_its_index():
    with pytest.raises(PacketSpecError, match=r"^packets\[1\]: protocol is empty"):
        refuse_empty_fields([PACKET, {"protocol": ""}])


def test_fields_left_out_are_not_empty():
    refuse_empty_fields([PACKET, dict(PACKET, mark=None, protocol="udp", in_interface="eth0")])
