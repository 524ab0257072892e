"""Run by test_python_versions.py under each node Python: the node-side engine and audit code
imports and works (no 3.10+ syntax or stdlib). argv[1]: the directory holding ansible_collections."""

import sys

sys.path.insert(0, sys.argv[1])

import os

from ansible_collections.meshops.istio.plugins.module_utils.iptables.info import info_result
from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import audit as node_audit

DUMPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "dumps")


def dump_text(name, form):
    with open(os.path.join(DUMPS, f"{name}.{form}"), encoding="utf-8") as handle:
        return handle.read()


result = audit(parse_dump(dump_text("istio-dns", "rules")), local_addresses=["10.0.0.2"])
assert not [f for f in result["findings"] if f["severity"] == "error"], result["findings"]
node = parse_dump(dump_text("kube-node", "rules"))
packet = {"name": "web", "hook": "prerouting", "protocol": "tcp", "src": "192.0.2.1", "dst": "10.96.0.20", "dport": 80}
trace = Tracer(node).trace(packet)
assert len(trace["branches"]) == 3, trace
read = type("Read", (), {"backend": "file", "warnings": [], "rulesets": {"ipv4": node}, "by_backend": {}})()
read.backends_with_rules = lambda family: []
for detail in ("rules", "summary"):
    info, _warnings = info_result(read, ["nat"], detail, 2)
    assert info["size"]["rules"] == node.table("nat").rule_count(), info["size"]
assert node_audit._now().endswith("Z")
print("ok", sys.version_info[0], sys.version_info[1])
