#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iptables_info
short_description: Read and parse the iptables rules of a host, a network namespace or a dump
version_added: 0.1.0
description:
  - Reads the iptables (IPv4) and ip6tables (IPv6) rules of the host, of a network namespace
    (a pod's, for example), of a process's namespace, or of a saved C(iptables-save) file, and
    returns them parsed, chains with their policy and counters, rules numbered as
    C(iptables -L --line-numbers) numbers them, with their matches, target and counters.
  - Reads both the nft and the legacy back end by default and warns when both hold rules.
  - Never changes a rule. Parse errors name the input and the line.
author:
  - meshops.istio developers (@meshops)
extends_documentation_fragment:
  - meshops.istio.iptables_source
  - meshops.istio.attributes
  - meshops.istio.attributes.info_module
options:
  tables:
    description:
      - The tables to return.
    type: list
    elements: str
    choices: [raw, mangle, nat, filter, security]
    default: [raw, mangle, nat, filter]
  detail:
    description:
      - What to return of each chain.
      - V(rules) returns every rule, parsed (or the first O(max_rules) of them).
      - V(summary) returns no rules, only per table and chain the number of rules, the policy and
        its counters, the packets and bytes summed over the chain's rules, and the chains each
        chain jumps or goes to. For kube-proxy's rules, a few to each of tens of thousands of
        chains, that is several times smaller than the rule list; for long chains, far smaller.
    type: str
    choices: [rules, summary]
    default: rules
  max_rules:
    description:
      - With O(detail=rules), return at most this many rules in all, the first ones in the order
        read (IPv4, then IPv6, then RV(other_backend); tables and chains in dump order). When rules
        are left out, RV(truncated) is V(true), RV(size) says how many were read and a warning says
        how many were left out and how to get them.
      - Once the limit is reached, the remaining built-in chains are still listed (policy and
        counters, no rules, RV(iptables.chains.rules_left_out)); user chains whose rules were all
        left out are not listed (RV(size.chains_left_out) counts them).
      - Leave it out to return every rule. Ignored with O(detail=summary).
      - A whole number of 1 or more.
    type: int
attributes:
  platform:
    support: full
seealso:
  - module: meshops.istio.iptables_trace
  - module: meshops.istio.sidecar_iptables_audit
"""

EXAMPLES = r"""
- name: Read the nat table of a pod's network namespace
  meshops.istio.iptables_info:
    pid: "{{ envoy_pid }}"
    tables: [nat]
  become: true
  register: pod_rules

- name: Show the rules of ISTIO_OUTPUT with their counters
  ansible.builtin.debug:
    msg: "{{ item.rule_number }} {{ item.rule }} ({{ item.packets }} packets)"
  loop: "{{ pod_rules.iptables.nat.chains.ISTIO_OUTPUT.rules }}"

- name: Parse a saved dump
  meshops.istio.iptables_info:
    src: /var/tmp/node1-iptables-save.txt

- name: How many rules each chain of a busy node's nat table holds, without the rules
  meshops.istio.iptables_info:
    tables: [nat]
    detail: summary
  become: true
  register: node_nat

- name: Show the chains KUBE-SERVICES jumps to, and the size of the full rule list
  ansible.builtin.debug:
    msg: >-
      {{ node_nat.iptables.nat.chains['KUBE-SERVICES'].jumps | length }} service chains;
      all {{ node_nat.size.rules }} rules would be about
      {{ (node_nat.size.full_json_bytes / 1000000) | round(1) }} MB of JSON

- name: The first 500 rules only
  meshops.istio.iptables_info:
    tables: [nat]
    max_rules: 500
  become: true
  register: first_rules

- name: Say when rules were left out
  ansible.builtin.debug:
    msg: "{{ first_rules.size.rules_returned }} of {{ first_rules.size.rules }} rules returned"
  when: first_rules.truncated
"""

RETURN = r"""
iptables:
  description:
    - The IPv4 rules, by table, then by chain (in dump order); with O(detail=summary), the
      counts, counters and jumps of each table and chain instead of the rules.
  returned: always
  type: dict
  contains:
    chains:
      description: Chains of the table, by name.
      type: dict
      contains:
        policy:
          description: V(ACCEPT) or V(DROP) for a built-in chain, V(null) for a user chain.
          type: str
        packets:
          description: Packets that met the policy of a built-in chain, as dumped.
          type: int
        bytes:
          description: Bytes counted with the packets.
          type: int
        rules:
          description: The rules in evaluation order.
          type: list
          elements: dict
          returned: with O(detail=rules)
          contains:
            rule_number:
              description: Position in the chain, from 1, as in C(iptables -L --line-numbers).
              type: int
            rule:
              description: The rule as C(iptables-save) prints it, without counters.
              type: str
              sample: -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
            matches:
              description:
                - Conditions of the rule, each with C(match) (module name, V(ip) for C(-s -d -i -o -p -f)),
                  C(option), C(negated) and C(value).
              type: list
              elements: dict
            target:
              description: The C(-j) or C(-g) target, V(null) when the rule only counts.
              type: str
            goto:
              description: Whether the target was given with C(-g).
              type: bool
            target_options:
              description: Options of the target (V(null) for a flag).
              type: dict
              sample: {"to-ports": "15006"}
            packets:
              description: Packets that matched the rule (V(null) when the dump has no counters).
              type: int
            bytes:
              description: Bytes that matched the rule.
              type: int
        rules_left_out:
          description: How many rules of the chain O(max_rules) left out.
          type: int
          returned: when O(max_rules) cut the rules of this chain
        rule_count:
          description: With O(detail=summary), the number of rules of the chain.
          type: int
          returned: with O(detail=summary)
        rule_packets:
          description:
            - With O(detail=summary), the packets summed over the chain's rules (V(null) when the
              dump has no counters).
          type: int
          returned: with O(detail=summary)
        rule_bytes:
          description: With O(detail=summary), the bytes summed over the chain's rules.
          type: int
          returned: with O(detail=summary)
        jumps:
          description:
            - With O(detail=summary), the chains of the table this chain's rules jump (C(-j)) or go
              (C(-g)) to, in rule order, each once.
          type: list
          elements: str
          returned: with O(detail=summary)
          sample: [KUBE-SERVICES]
    rule_count:
      description: With O(detail=summary), the number of rules of the table.
      type: int
      returned: with O(detail=summary)
  sample:
    nat:
      chains:
        ISTIO_IN_REDIRECT:
          policy: null
          packets: 0
          bytes: 0
          rules:
            - rule_number: 1
              rule: -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
              matches: [{match: ip, option: protocol, negated: false, value: tcp}]
              target: REDIRECT
              goto: false
              target_options: {to-ports: "15006"}
              packets: 12
              bytes: 720
ip6tables:
  description: The IPv6 rules, in the same shape as RV(iptables); empty when none were read.
  returned: always
  type: dict
backend:
  description:
    - The back end whose rules are returned, V(nft), V(legacy), V(nft+legacy) when IPv4 and IPv6
      came from different back ends, or V(file) for O(src).
  returned: always
  type: str
  sample: nft
both_backends:
  description: Families (V(ipv4), V(ipv6)) for which both the nft and the legacy back end hold rules.
  returned: always
  type: list
  elements: str
  sample: []
other_backend:
  description:
    - When both back ends hold rules, the rules of the back end not returned in RV(iptables) /
      RV(ip6tables), by family.
  returned: when both back ends hold rules
  type: dict
warnings:
  description:
    - Things a person should know about the rules that were read, such as both back ends holding
      rules; returned through Ansible's warnings, so they are also shown.
  returned: when there is something to say
  type: list
  elements: str
rule_count:
  description: Number of rules read per family (all tables).
  returned: always
  type: dict
  sample: {ipv4: 18, ipv6: 0}
truncated:
  description: Whether O(max_rules) left rules out of the result.
  returned: always
  type: bool
  sample: false
size:
  description:
    - How much was read and returned, so that a large result can be told before it is asked for.
  returned: always
  type: dict
  contains:
    rules:
      description:
        - Rules in the tables asked for, both families and RV(other_backend) included (what
          O(detail=rules) without O(max_rules) would return).
      type: int
    rules_returned:
      description: Rules returned in the result (V(0) with O(detail=summary)).
      type: int
    chains_left_out:
      description: User chains not listed because O(max_rules) left out all their rules.
      type: int
    json_bytes:
      description: Size of RV(iptables), RV(ip6tables) and RV(other_backend) of this result as JSON.
      type: int
    full_json_bytes:
      description:
        - Size those would have as JSON with O(detail=rules) and no O(max_rules); estimated from
          a sample of the rules when they were not all returned.
      type: int
    full_json_bytes_estimated:
      description: Whether RV(size.full_json_bytes) is an estimate.
      type: bool
  sample:
    rules: 200008
    rules_returned: 500
    chains_left_out: 72310
    json_bytes: 191022
    full_json_bytes: 84652000
    full_json_bytes_estimated: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.istio.plugins.module_utils.iptables.info import info_result, validate_info_options
from ansible_collections.meshops.istio.plugins.module_utils.iptables.module_support import (
    read_from_module,
    run_source_module,
)

TABLES_SPEC = {
    "type": "list",
    "elements": "str",
    "choices": ["raw", "mangle", "nat", "filter", "security"],
    "default": ["raw", "mangle", "nat", "filter"],
}
EXTRA_SPEC = {
    "tables": TABLES_SPEC,
    "detail": {"type": "str", "choices": ["rules", "summary"], "default": "rules"},
    "max_rules": {"type": "int"},
}


def run(module):
    params = module.params
    # Checked before anything is read.
    detail, max_rules = validate_info_options(params["detail"], params["max_rules"])
    read = read_from_module(module)
    # Ansible's own warnings mechanism returns them as the result's "warnings" and shows them.
    return info_result(read, params["tables"], detail, max_rules)


def main():
    run_source_module(AnsibleModule, EXTRA_SPEC, run, "iptables_info")


if __name__ == "__main__":
    main()
