"""pod_judgement.judge_pod: no judgement from rules that were not read. A backend left out by
``backends`` may hold the capture rules, so a pod without capture rules in the dumps that were
read is "not judged", never "mesh bypass" (as with ``families: [ipv6]``)."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import parse_dump
from ansible_collections.meshops.istio.plugins.module_utils.network_audit import options, pod_judgement
from tests.unit.iptables.helpers import dump_text

NO_CAPTURE = (
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
)


def pod(legacy_tables):
    return {
        "id": "web-0",
        "role": "sidecar",
        "status": "ok",
        "ips": ["10.244.1.5"],
        "listening": [],
        "findings": [],
        "errors": [],
        "notes": [],
        "legacy_tables": legacy_tables,
    }


def judged(backends, dumps, legacy_tables):
    opts = options.validate_options({"backends": backends})
    parsed = {key: parse_dump(text, source=f"{key}.rules", backend=key) for key, text in dumps.items()}
    subject = pod(legacy_tables)
    pod_judgement.judge_pod(subject, parsed, opts, [])
    return subject, {f["code"]: f for f in subject["findings"]}


@pytest.mark.parametrize(
    ("backends", "dumps", "legacy_tables", "left_out"),
    [
        (["legacy"], {"legacy": NO_CAPTURE}, ["nat"], "iptables-nft"),
        (["legacy"], {"legacy": NO_CAPTURE}, None, "iptables-nft"),
        (["nft"], {"nft": NO_CAPTURE}, ["nat", "filter"], "iptables-legacy"),
        (["nft"], {"nft": NO_CAPTURE}, None, "iptables-legacy"),
    ],
    ids=["legacy-only", "legacy-only-unknown-tables", "nft-only-legacy-tables-exist", "nft-only-unknown-tables"],
)
def test_a_backend_left_out_is_not_taken_for_no_capture(backends, dumps, legacy_tables, left_out):
    subject, found = judged(backends, dumps, legacy_tables)
    assert "MESH_BYPASS_NO_CAPTURE" not in found
    assert f"the {left_out} rules (backends does not include" in found["CAPTURE_NOT_JUDGED"]["message"]
    assert subject["capture"] is None


@pytest.mark.parametrize(
    ("backends", "dumps", "legacy_tables"),
    [
        (["nft", "legacy"], {"nft": NO_CAPTURE, "legacy": NO_CAPTURE}, ["nat"]),
        (["nft"], {"nft": NO_CAPTURE}, []),
    ],
    ids=["both-read", "nft-only-no-legacy-table-in-the-namespace"],
)
def test_no_capture_where_every_backend_was_read_is_a_mesh_bypass(backends, dumps, legacy_tables):
    _subject, found = judged(backends, dumps, legacy_tables)
    assert found["MESH_BYPASS_NO_CAPTURE"]["severity"] == "error"
    assert "CAPTURE_NOT_JUDGED" not in found


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_capture_found_in_the_one_backend_read_is_judged(backend):
    text = dump_text("istio-default", f"{backend}.save")
    subject, found = judged([backend], {backend: text}, ["nat"])
    assert "CAPTURE_NOT_JUDGED" not in found and "MESH_BYPASS_NO_CAPTURE" not in found
    assert subject["capture_backend"] == backend
