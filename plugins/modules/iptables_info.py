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
options:
  tables:
    description:
      - The tables to return.
    type: list
    elements: str
    choices: [raw, mangle, nat, filter, security]
    default: [raw, mangle, nat, filter]
attributes:
  check_mode:
    description: Whether the module runs in check mode and predicts changes without making them.
    support: full
    details: The module only reads; it runs the same way in check mode.
  diff_mode:
    description: Whether the module returns a diff of what it changed or would change.
    support: none
  platform:
    description: The systems the module runs on.
    support: full
    platforms: posix
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
"""

RETURN = r"""
iptables:
  description:
    - The IPv4 rules, by table, then by chain (in dump order).
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
"""

from ansible.module_utils.basic import AnsibleModule

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


def run(module):
    tables = module.params["tables"]
    read = read_from_module(module)
    result = {"changed": False, "backend": read.backend, "both_backends": []}
    for family, key in (("ipv4", "iptables"), ("ipv6", "ip6tables")):
        ruleset = read.rulesets.get(family)
        result[key] = ruleset.to_dict(tables) if ruleset else {}
        result.setdefault("rule_count", {})[family] = ruleset.rule_count() if ruleset else 0
        with_rules = read.backends_with_rules(family)
        if len(with_rules) > 1:
            result["both_backends"].append(family)
            other = next(b for b in with_rules if ruleset is None or b != ruleset.backend)
            result.setdefault("other_backend", {})[family] = {
                "backend": other,
                "rules": read.by_backend[(family, other)].to_dict(tables),
            }
    # Ansible's own warnings mechanism returns them as the result's "warnings" and shows them.
    return result, read.warnings


def main():
    run_source_module(AnsibleModule, {"tables": TABLES_SPEC}, run)


if __name__ == "__main__":
    main()
