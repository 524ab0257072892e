"""kube-proxy's ipvs mode read from three sources (stand-in texts: this kernel has no ip_vs, see
data/ipvs/README.md): all three give the same virtual and real servers and shares."""

import os

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables import ipvs
from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ipvs")
READERS = {"list.txt": ipvs.parse_list, "save.txt": ipvs.parse_save, "proc.txt": ipvs.parse_proc}


def read(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        return READERS[name](handle.read(), source=name)


@pytest.mark.parametrize("name", sorted(READERS))
def test_every_source_reads_the_same_servers(name):
    virtuals = read(name)
    summary = [
        (
            v["protocol"],
            v["address"],
            v["port"],
            [(r["address"], r["port"], r["probability"]) for r in v["real_servers"]],
        )
        for v in virtuals
    ]
    assert summary == [
        ("tcp", "10.96.0.20", 80, [("10.244.1.5", 8080, 0.5), ("10.244.2.7", 8080, 0.5)]),
        ("tcp", "192.168.0.2", 30080, [("10.244.1.5", 8080, 0.5), ("10.244.2.7", 8080, 0.5)]),
        ("udp", "10.96.0.10", 53, [("10.244.1.2", 53, 0.75), ("10.244.2.2", 53, 0.25)]),
        ("tcp", "10.96.0.30", 5432, [("10.244.3.3", 5432, 0.0)]),
    ]
    assert {r["forward"] for v in virtuals for r in v["real_servers"]} == {"masquerade"}


def test_a_nodeport_packet_meets_its_virtual_server():
    virtual = ipvs.paths_to(read("list.txt"), "tcp", "192.168.0.2", 30080)
    assert virtual["scheduler"] == "rr" and len(virtual["real_servers"]) == 2
    assert ipvs.paths_to(read("list.txt"), "tcp", "192.168.0.2", 30081) is None


@pytest.mark.parametrize(
    ("reader", "text", "message"),
    [
        (ipvs.parse_list, "TCP  10.96.0.300:80 rr\n", "'10.96.0.300:80' is not an address:port"),
        (ipvs.parse_list, "  -> 10.244.1.5:8080 Masq 1 0 0\n", "a real server line outside a virtual server"),
        (ipvs.parse_list, "TCP  10.96.0.20:80 rr\n  -> 10.244.1.5:8080 Masq heavy 0 0\n", "weight 'heavy'"),
        (ipvs.parse_save, "-A -t 10.96.0.20:80 -s rr\n-a -t 10.96.0.21:80 -r 10.244.1.5:80 -m -w 1\n", "not added"),
        (ipvs.parse_save, "hello\n", "unrecognised line"),
        (ipvs.parse_proc, "TCP  0A6000:0050 rr\n", "not a hex address:port"),
    ],
)
def test_text_the_reader_does_not_understand_names_source_and_line(reader, text, message):
    with pytest.raises(ParseError, match=message) as info:
        reader(text, source="node")
    assert str(info.value).startswith("node line ")
