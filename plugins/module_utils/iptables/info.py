"""The result of ``iptables_info``: every rule, the first ``max_rules`` of them, or a summary.

:func:`validate_info_options` checks ``detail`` and ``max_rules`` before anything is read;
:func:`info_result` builds the module's result from a :class:`~.source.ReadResult` and returns
``(result, warnings)``. With ``detail='rules'`` the result holds every rule (or the first
``max_rules`` in the order read: IPv4, then IPv6, then the other back end; tables and chains in
dump order); with ``detail='summary'`` per table and chain counts, policies, counter totals and
the jumps between chains. Either way ``size`` says how many rules were read and returned and how
large the rule data is as JSON, and what the full rule list would weigh.
"""

import contextlib
import json
import random

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.options import OptionError

DETAILS = ("rules", "summary")
# A rule list above this size gets a warning naming its size and the smaller alternatives: the
# controller holds the whole result in memory and prints it at -v.
LARGE_RESULT_BYTES = 10 * 1000 * 1000
# Rules serialised to estimate the size of a rule list that is not returned in full.
SAMPLE_RULES = 2000


def validate_info_options(detail="rules", max_rules=None):
    """Raise OptionError naming the option and the fix; return (detail, max_rules)."""
    if detail not in DETAILS:
        raise OptionError(f"detail: {detail!r} is not one of {', '.join(DETAILS)}; give rules or summary")
    if max_rules is None:
        return detail, None
    # bool is an int to Python (and to Ansible's int check): max_rules=true would mean 1 rule.
    if isinstance(max_rules, bool) or not isinstance(max_rules, int):
        raise OptionError(
            f"max_rules: {max_rules!r} is not a number of rules; give a positive whole number such as 1000, "
            "or leave max_rules out to return every rule"
        )
    if max_rules < 1:
        raise OptionError(
            f"max_rules: {max_rules} is out of range; give a positive number of rules such as 1000, leave "
            "max_rules out to return every rule, or use detail=summary to return no rules at all"
        )
    return detail, max_rules


def human_size(size):
    """1234567 -> '1.2 MB' (decimal units, as a person compares them with a disk or a limit)."""
    if size < 1000:
        return f"{size} bytes"
    for unit in ("kB", "MB", "GB"):
        size /= 1000.0
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}"
    return f"{size:.1f} GB"  # not reached


def json_size(value):
    """Bytes of ``value`` as JSON the way AnsibleModule.exit_json writes it (default separators)."""
    return len(json.dumps(value))


def _selected(ruleset, tables):
    """The tables asked for, in dump order (the order read)."""
    if ruleset is None:
        return []
    wanted = set(tables)
    return [table for name, table in ruleset.tables.items() if name in wanted]


class _Budget:
    """How many rules may still be returned (``left`` None: no limit) and what was seen."""

    def __init__(self, limit):
        self.left = limit
        self.total = 0
        self.returned = 0
        self.chains_left_out = 0

    def take(self, rules):
        self.total += len(rules)
        if self.left is not None:
            rules = rules[: self.left]
            self.left -= len(rules)
        self.returned += len(rules)
        return rules


def _rules_view(ruleset, tables, budget):
    out = {}
    for table in _selected(ruleset, tables):
        chains = {}
        for chain in table.chains.values():
            if budget.left == 0 and chain.rules and not chain.builtin:
                # Past the limit only the built-in chains are listed (their policy is part of the
                # answer): tens of thousands of kube-proxy chains with no rules would be megabytes.
                budget.take(chain.rules)
                budget.chains_left_out += 1
                continue
            rules = budget.take(chain.rules)
            entry = {
                "policy": chain.policy,
                "packets": chain.packets,
                "bytes": chain.bytes,
                "rules": [rule.to_dict() for rule in rules],
            }
            if len(rules) < len(chain.rules):
                entry["rules_left_out"] = len(chain.rules) - len(rules)
            chains[chain.name] = entry
        out[table.name] = {"chains": chains}
    return out


def _sum_counters(rules):
    """(packets, bytes) summed over the rules, (None, None) when the dump had no counters."""
    packets = bytes_ = 0
    counted = False
    for rule in rules:
        rule_packets = rule.packets
        if rule_packets is not None:
            counted = True
            packets += rule_packets
            bytes_ += rule.bytes or 0
    return (packets, bytes_) if counted else (None, None)


def _chain_summary(table, chain):
    jumps = []
    seen = set()
    for rule in chain.rules:
        target = rule.target
        # A target that names a chain of the table is a jump (-j) or goto (-g); the others are
        # verdicts or extensions (ACCEPT, DNAT, MARK ...).
        if target in table.chains and target not in seen:
            seen.add(target)
            jumps.append(target)
    rule_packets, rule_bytes = _sum_counters(chain.rules)
    return {
        "policy": chain.policy,
        "packets": chain.packets,
        "bytes": chain.bytes,
        "rule_count": len(chain.rules),
        "rule_packets": rule_packets,
        "rule_bytes": rule_bytes,
        "jumps": jumps,
    }


def _summary_view(ruleset, tables, budget):
    out = {}
    for table in _selected(ruleset, tables):
        chains = {name: _chain_summary(table, chain) for name, chain in table.chains.items()}
        count = sum(c["rule_count"] for c in chains.values())
        budget.total += count
        out[table.name] = {"rule_count": count, "chains": chains}
    return out


def _all_rules(selections):
    for ruleset, tables in selections:
        for table in _selected(ruleset, tables):
            for chain in table.chains.values():
                yield chain.rules


def _estimate_full_size(selections, total):
    """Bytes of the full rule list (detail=rules, no max_rules) as JSON, estimated: the chains
    without rules, plus ``total`` times the mean size of up to SAMPLE_RULES rules drawn from all
    of them (the first rules of a dump are not typical: kube-proxy's start with short jumps, its
    services' rules are longer)."""
    skeleton = 0
    for ruleset, tables in selections:
        empty = {
            table.name: {
                "chains": {
                    chain.name: {"policy": chain.policy, "packets": chain.packets, "bytes": chain.bytes, "rules": []}
                    for chain in table.chains.values()
                }
            }
            for table in _selected(ruleset, tables)
        }
        skeleton += json_size(empty)
    if total == 0:
        return skeleton
    # Positions drawn at random (seeded: the same rules give the same figure) rather than every
    # n-th rule: kube-proxy's rules repeat in blocks of one service, and a fixed stride aliases
    # with them (5 % off on a real node's 20k rules).
    positions = sorted(random.Random(total).sample(range(total), min(total, SAMPLE_RULES)))
    sizes = []
    index = 0  # position of the chain's first rule among all rules
    pick = 0
    for rules in _all_rules(selections):
        end = index + len(rules)
        while pick < len(positions) and positions[pick] < end:
            # A damaged rule fails detail=rules with its file and line; the estimate (made in
            # summary mode too, which does not parse matches) just does without it.
            with contextlib.suppress(ParseError):
                sizes.append(json_size(rules[positions[pick] - index].to_dict()) + 2)  # ", " between rules
            pick += 1
        index = end
    if not sizes:
        return skeleton
    return skeleton + round(total * sum(sizes) / len(sizes))


def info_result(read, tables, detail="rules", max_rules=None):
    """The result of iptables_info for ``read`` (a ReadResult): ``(result, warnings)``."""
    detail, max_rules = validate_info_options(detail, max_rules)
    budget = _Budget(max_rules)
    view = _rules_view if detail == "rules" else _summary_view
    result = {"changed": False, "backend": read.backend, "both_backends": [], "rule_count": {}}
    selections = []  # (ruleset, tables) returned, in the order the budget was spent
    others = []
    for family, key in (("ipv4", "iptables"), ("ipv6", "ip6tables")):
        ruleset = read.rulesets.get(family)
        result[key] = view(ruleset, tables, budget)
        selections.append((ruleset, tables))
        result["rule_count"][family] = ruleset.rule_count() if ruleset else 0
        with_rules = read.backends_with_rules(family)
        if len(with_rules) > 1:
            result["both_backends"].append(family)
            other = next(b for b in with_rules if ruleset is None or b != ruleset.backend)
            others.append((family, other))
    # The other back end's rules come last: the ones the engine uses are the ones to keep.
    for family, other in others:
        ruleset = read.by_backend[(family, other)]
        result.setdefault("other_backend", {})[family] = {"backend": other, "rules": view(ruleset, tables, budget)}
        selections.append((ruleset, tables))

    data_size = sum(json_size(result[key]) for key in ("iptables", "ip6tables", "other_backend") if key in result)
    truncated = budget.returned < budget.total if detail == "rules" else False
    if detail == "rules" and not truncated:
        full_size, estimated = data_size, False
    else:
        full_size, estimated = _estimate_full_size(selections, budget.total), True
    result["truncated"] = truncated
    result["size"] = {
        "rules": budget.total,
        "rules_returned": budget.returned if detail == "rules" else 0,
        "chains_left_out": budget.chains_left_out,
        "json_bytes": data_size,
        "full_json_bytes": full_size,
        "full_json_bytes_estimated": estimated,
    }

    warnings = list(read.warnings)
    if truncated:
        left_out = budget.total - budget.returned
        warnings.append(
            f"max_rules={max_rules}: returned {budget.returned} of {budget.total} rules, {left_out} left out "
            "(the first ones in the order read: IPv4, then IPv6, then the other back end; tables and chains in "
            f"dump order; {budget.chains_left_out} user chains whose rules were all left out are not listed). "
            f"To get them, raise max_rules (every rule is about {human_size(full_size)} of JSON), "
            "narrow tables, or use detail=summary for per-chain counts, policies, counters and jumps without "
            "the rules."
        )
    elif detail == "rules" and full_size >= LARGE_RESULT_BYTES:
        warnings.append(
            f"the rule list is {human_size(full_size)} of JSON ({budget.total} rules); detail=summary returns "
            "per-chain counts, policies, counters and jumps without the rules, max_rules returns the first ones."
        )
    return result, warnings
