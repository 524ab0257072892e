"""plugins/filter/hosts_entries_plan.py (internal to the hosts_entries role): the planned
content of a hosts file, the refusal of malformed or ambiguous managed regions, and the proof
that every line outside the block survives. Cases: tests/unit/data/hosts_entries/plan_cases.yml."""

import base64
import os

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.filter.hosts_entries_plan import FilterModule, plan

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "hosts_entries", "plan_cases.yml")
with open(DATA, encoding="utf-8") as _handle:
    _TABLE = yaml.safe_load(_handle)
CASES = [{**_TABLE["defaults"], **case} for case in _TABLE["cases"]]


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _run(case, content_b64=None):
    return plan(
        content_b64 or case.get("content_b64") or _b64(case["content"]),
        case["names"],
        case["address"],
        case["marker"],
        case["state"],
        case["replace"],
    )


def _unrelated_lines(text, case):
    """The lines a run must keep as they are, computed without the filter: every line that is
    not a marker, not inside a BEGIN/END pair, and names none of the managed names."""
    wanted = {n.lower().rstrip(".") for n in case["names"]}
    begin, end = (case["marker"].strip().replace("{mark}", m) for m in ("BEGIN", "END"))
    kept, inside = [], False
    for line in text.split("\n"):
        stripped = line.rstrip("\r").strip()
        if stripped == begin:
            inside = True
        elif stripped == end:
            inside = False
        elif not inside and not wanted & {w.lower().rstrip(".") for w in line.split("#")[0].split()[1:]}:
            kept.append(line)
    return [line for line in kept if line]


def _in_order(needles, haystack):
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


def test_the_filter_is_registered():
    assert FilterModule().filters()["hosts_entries_plan"] is plan


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_plan(case):
    result = _run(case)
    if "problems" in case:
        assert result["problems"], result
        text = " ".join(result["problems"])
        for needle in case["problems"]:
            assert needle in text, (needle, result["problems"])
        # refused: nothing to write, the planned content is the file as it is
        assert result["differs"] is False
        if "content" in case:
            assert result["content"] == case["content"]
        return
    assert result["problems"] == []
    if "conflicts" in case:
        assert result["conflicts"] == case["conflicts"]
    if "expected" in case:
        assert result["content"] == case["expected"]
        assert result["differs"] is case.get("changed", True)
    # Every line outside the block survives: re-planning the result changes nothing, finds
    # the lines the first plan promised, and every unrelated line is still there in order.
    again = _run(case, _b64(result["content"]))
    assert again["problems"] == [] and again["differs"] is False
    assert again["foreign_before"] == result["foreign_after"]
    assert _in_order(_unrelated_lines(case["content"], case), result["content"].split("\n"))
    if not case["replace"] or case["state"] == "absent":
        assert result["foreign_after"] == result["foreign_before"]


def test_refused_files_carry_a_fix_in_the_message():
    refused = [c for c in CASES if "problems" in c and "content" in c and "BEGIN" in c["content"] + c["content"]]
    assert len(refused) >= 8
    for case in refused:
        for problem in _run(case)["problems"]:
            assert any(word in problem for word in ("delete", "add ", "write it", "move it", "put the")), problem
