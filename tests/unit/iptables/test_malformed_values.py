"""Malformed values inside well-formed dumps (data/malformed_values.yml): an error naming the file
and the line through every way in, never a ValueError, TypeError or RecursionError."""

import re

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.kube_proxy import kube_proxy_summary
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer

from .helpers import FORMS, dump_text, load_yaml

CASES = load_yaml("malformed_values.yml")
NODE_PACKETS = [
    {"name": "web", "hook": "prerouting", "protocol": "tcp", "src": "192.0.2.1", "dst": "10.96.0.20", "dport": 80},
    {"name": "np", "hook": "prerouting", "protocol": "tcp", "src": "192.0.2.1", "dst": "10.0.0.2", "dport": 30080},
]
POD_PACKETS = [
    {"name": "in", "hook": "prerouting", "protocol": "tcp", "src": "192.0.2.1", "dst": "10.0.0.2", "dport": 8080},
]
WAYS = {
    "audit": lambda rs: audit(rs, local_addresses=["10.0.0.2"]),
    "kube": kube_proxy_summary,
    "trace": lambda rs: [
        Tracer(rs, ["10.0.0.2"]).trace(p) for p in (NODE_PACKETS if rs.chain("nat", "KUBE-SERVICES") else POD_PACKETS)
    ],
}


@pytest.mark.parametrize("form", [f for f in FORMS if f != "rules"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_malformed_value_is_an_error_naming_file_and_line(case, form):
    original = dump_text(case["dump"], form)
    text, count = re.subn(case["pattern"], case["with"], original, count=1)
    assert count == 1, "the pattern must occur in the dump"
    before, after = original.splitlines(), text.splitlines()
    assert len(before) == len(after)  # no zip(strict=): this also runs under the nodes' Python 3.9
    line = next(n for n, (a, b) in enumerate(zip(before, after), 1) if a != b)  # noqa: B905
    for way in case["via"]:
        ruleset = parse_dump(text, source="dump.save")
        with pytest.raises(ParseError) as info:
            WAYS[way](ruleset)
        assert str(info.value).startswith(f"dump.save line {line}: "), way
        assert case["message"] in str(info.value), way
        assert "take a fresh dump" in str(info.value)
