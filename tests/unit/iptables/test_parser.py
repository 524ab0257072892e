"""Parser tests: saved dumps from both backends, restore-format input, and bad input."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.parser import (
    parse_dump,
    parse_dumps,
    split_tokens,
)

from .helpers import FORMS, dump_text, load_yaml

PARSE_CASES = load_yaml("parse_cases.yml")


def _normalise_options(options):
    # iptables-save prints marks in hex; the generated text uses decimal.
    out = {}
    for key, value in options.items():
        if key in ("tproxy-mark", "set-mark") and value and "/" in value:
            mark, mask = value.split("/")
            value = f"{int(mark, 0):#x}/{int(mask, 0):#x}"
        out[key] = value
    return out


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", PARSE_CASES, ids=[c["dump"] for c in PARSE_CASES])
def test_parse_saved_dump(case, form):
    ruleset = parse_dump(dump_text(case["dump"], form), source=case["dump"])
    assert ruleset.family == case["family"]
    counts = {name: table.rule_count() for name, table in ruleset.tables.items() if table.rule_count()}
    assert counts == case["tables"]
    for where, want in case.get("chains", {}).items():
        table, chain = where.split("/")
        got = ruleset.chain(table, chain)
        assert got.policy == want["policy"]
        assert len(got.rules) == want["rules"]
    if "rule" in case:
        table, chain, number = case["rule"]["at"].split("/")
        rule = ruleset.chain(table, chain).rules[int(number) - 1]
        assert rule.number == int(number)
        assert rule.target == case["rule"]["target"]
        if "matches" in case["rule"]:
            got = [[c.module, c.option, c.negated, c.value] for c in rule.matches]
            assert sorted(got) == sorted(case["rule"]["matches"])
        if "target_options" in case["rule"]:
            got = _normalise_options(dict(rule.target_options))
            want = _normalise_options(case["rule"]["target_options"])
            assert {k: got.get(k) for k in want} == want
        if "comment" in case["rule"]:
            assert rule.conditions("comment")[0].value == case["rule"]["comment"]


def test_dialect_and_counters_are_read():
    nft = parse_dump(dump_text("istio-default", "nft.save"))
    legacy = parse_dump(dump_text("istio-default", "legacy.save"))
    assert nft.dialect == "nft"
    assert legacy.dialect == "legacy"
    for ruleset in (nft, legacy):
        rule = ruleset.chain("nat", "PREROUTING").rules[0]
        assert (rule.packets, rule.bytes) == (0, 0)
        assert ruleset.chain("nat", "PREROUTING").packets == 0
    assert nft.normalized_text() == legacy.normalized_text()


def test_counters_and_quoted_comments():
    text = """*nat
:PREROUTING ACCEPT [12:720]
[3:180] -A PREROUTING -p tcp -m comment --comment "say \\"hi\\" to ns/svc:http" -m tcp --dport 80 -j ACCEPT
COMMIT
"""
    ruleset = parse_dump(text)
    chain = ruleset.chain("nat", "PREROUTING")
    assert (chain.packets, chain.bytes) == (12, 720)
    rule = chain.rules[0]
    assert (rule.packets, rule.bytes) == (3, 180)
    assert rule.conditions("comment")[0].value == 'say "hi" to ns/svc:http'
    assert rule.to_dict()["rule"].startswith("-A PREROUTING -p tcp -m comment")


def test_split_tokens_keeps_empty_quoted_strings():
    assert split_tokens('-m comment --comment "" -j ACCEPT') == ["-m", "comment", "--comment", "", "-j", "ACCEPT"]


def test_restore_format_with_insert_and_new_chain():
    text = """*mangle
-N ISTIO_INBOUND
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp -j RETURN
-I ISTIO_INBOUND 1 -p tcp -m mark --mark 1337 -j RETURN
-I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN
COMMIT
"""
    ruleset = parse_dump(text)
    rules = ruleset.chain("mangle", "ISTIO_INBOUND").rules
    assert [r.number for r in rules] == [1, 2, 3]
    assert rules[0].conditions("mark")[0].value == "1337"
    assert rules[2].spec == "-p tcp -j RETURN"


def test_file_with_ipv4_and_ipv6_dumps():
    text = dump_text("istio-default", "nft.save") + dump_text("istio-ipv6-dns", "nft.save")
    rulesets = parse_dumps(text, source="both.txt")
    assert [r.family for r in rulesets] == ["ipv4", "ipv6"]
    with pytest.raises(ParseError, match="holds 2 dumps"):
        parse_dump(text, source="both.txt")


def test_unknown_target_is_a_warning_not_an_error():
    ruleset = parse_dump("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j FANCYTARGET --opt 1\nCOMMIT\n", source="x")
    assert any("unknown target 'FANCYTARGET'" in w for w in ruleset.warnings)


def test_empty_input_is_an_empty_ruleset():
    ruleset = parse_dump("", source="empty")
    assert ruleset.tables == {}
    assert ruleset.is_empty()


BAD = load_yaml("bad_dumps.yml")


@pytest.mark.parametrize("case", BAD, ids=[c["name"] for c in BAD])
def test_bad_input_names_source_and_line(case):
    # Structural errors fail at once; a malformed match fails when its rule is first used
    # (validate() uses every rule); lazy=False checks every rule while parsing.
    with pytest.raises(ParseError) as info:
        parse_dump(case["text"], source="dump.txt").validate()
    error = info.value
    with pytest.raises(ParseError) as eager:
        parse_dump(case["text"], source="dump.txt", lazy=False)
    assert str(eager.value) == str(error)
    assert error.source == "dump.txt"
    assert error.line == case["line"]
    assert case["message"] in str(error)
    assert str(error).startswith(f"dump.txt line {case['line']}: ")


def test_malformed_rule_counters_fail_when_read():
    ruleset = parse_dump("*filter\n:INPUT ACCEPT [0:0]\n[1:x] -A INPUT -j ACCEPT\nCOMMIT\n", source="c.txt")
    rule = ruleset.chain("filter", "INPUT").rules[0]
    assert rule.target == "ACCEPT"
    with pytest.raises(ParseError, match=r"^c.txt line 3: malformed counters \[1:x\]"):
        rule.to_dict()
    with pytest.raises(ParseError, match="malformed counters"):
        parse_dump("*filter\n:INPUT ACCEPT [0:0]\n[1:x] -A INPUT -j ACCEPT\nCOMMIT\n", lazy=False)
