#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iptables_trace
short_description: Simulate the path of packets through the iptables rules
version_added: 0.1.0
description:
  - Reads the rules like M(meshops.istio.iptables_info) and simulates, without sending anything,
    the first packet of a new connection through them, in netfilter's order of tables for each
    hook (raw, mangle, nat, filter).
  - Returns for each packet the rules that matched (the ones whose counters the kernel would
    increase), the policies met and the verdict, for example a V(REDIRECT) to the sidecar's port
    15006 or a V(DNAT) to a service endpoint.
  - Rules with C(-m statistic --mode random) split the trace into RV(traces[].branches), one per
    outcome, with its probability. Conditions the engine cannot evaluate (C(-m socket), an owner
    match on a packet without O(packets[].uid)) are reported as unevaluated and both outcomes are
    explored; the engine never guesses silently.
  - A packet of hook V(output) that stays on the host (loopback, or after a C(REDIRECT)) goes
    through PREROUTING and INPUT again, without the nat chains (NAT is decided once per connection).
author:
  - meshops.istio developers (@meshops)
extends_documentation_fragment:
  - meshops.istio.iptables_source
  - meshops.istio.attributes
  - meshops.istio.attributes.info_module
options:
  packets:
    description:
      - The packets to trace, each the first packet of a connection.
      - A field given as an empty string (O(packets[].protocol), O(packets[].in_interface),
        O(packets[].out_interface), O(packets[].mark)) is refused before anything is read; leave it
        out for its default.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A name for the packet, repeated in the result.
        type: str
        required: true
      hook:
        description:
          - Where the packet enters, V(prerouting) for a packet that arrives from the network,
            V(output) for one a local process sends.
        type: str
        required: true
        choices: [prerouting, output]
      protocol:
        description: C(tcp), C(udp), C(icmp), C(sctp) ... or a protocol number.
        type: str
        default: tcp
      src:
        description: Source IPv4 or IPv6 address.
        type: str
        required: true
      dst:
        description: Destination address, of the same IP version as O(packets[].src).
        type: str
        required: true
      sport:
        description: Source port; 40000 when not given for a protocol with ports.
        type: int
      dport:
        description: Destination port; required for C(tcp), C(udp) and C(sctp).
        type: int
      in_interface:
        description: Interface the packet arrives on (hook V(prerouting)).
        type: str
      out_interface:
        description:
          - Interface the packet leaves by. When not given, V(lo) for a local destination and
            "not V(lo)" for any other.
        type: str
      uid:
        description: User id of the sending process (hook V(output)); owner matches need it.
        type: int
      gid:
        description: Group id of the sending process (hook V(output)).
        type: int
      mark:
        description: Firewall mark the packet carries when it enters, decimal or C(0x) hex.
        type: str
  local_addresses:
    description:
      - Addresses of the host or namespace, which decide C(-m addrtype --dst-type LOCAL), C(-o lo)
        and whether a packet is delivered locally or forwarded.
      - When not given, the addresses are read with C(ip -j address) from the host or namespace
        (not with O(src)); when they are still unknown, a V(prerouting) packet is assumed to be
        addressed to the host and an V(output) packet to a non-loopback address to leave it, and
        the trace says so in RV(traces[].assumptions).
    type: list
    elements: str
attributes:
  platform:
    support: full
seealso:
  - module: meshops.istio.iptables_info
  - module: meshops.istio.sidecar_iptables_audit
"""

EXAMPLES = r"""
- name: Where do inbound and outbound connections of a pod end?
  meshops.istio.iptables_trace:
    pid: "{{ envoy_pid }}"
    packets:
      - name: inbound to the app
        hook: prerouting
        src: 10.244.2.9
        dst: "{{ pod_ip }}"
        dport: 9080
        in_interface: eth0
      - name: app calls reviews
        hook: output
        src: "{{ pod_ip }}"
        dst: 10.96.12.7
        dport: 9080
        uid: 1000
        gid: 1000
  become: true
  register: pod_trace

- name: The application port reaches Envoy's inbound listener
  ansible.builtin.assert:
    that:
      - pod_trace.traces[0].verdict.action == 'REDIRECT'
      - pod_trace.traces[0].verdict.to_ports == 15006

- name: Which endpoints can a NodePort connection reach, and how likely?
  meshops.istio.iptables_trace:
    packets:
      - name: nodeport
        hook: prerouting
        src: 192.168.1.50
        dst: "{{ ansible_default_ipv4.address }}"
        dport: 31380
  become: true
  register: node_trace
"""

RETURN = r"""
traces:
  description: One trace per packet, in the order of O(packets).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The packet's name.
      type: str
    packet:
      description: The packet as traced (defaults filled in).
      type: dict
    family:
      description: V(ipv4) or V(ipv6).
      type: str
    steps:
      description:
        - The rules that matched, in order, and the policies of the built-in chains the packet
          fell off. With branches, the steps all branches share.
      type: list
      elements: dict
      contains:
        table:
          description: Table of the rule.
          type: str
        chain:
          description: Chain of the rule.
          type: str
        rule_number:
          description: Position of the rule in its chain, V(null) for a policy.
          type: int
        rule:
          description: The rule text (or C(:CHAIN POLICY) for a policy).
          type: str
        action:
          description:
            - What the rule did, such as C(jump ISTIO_OUTPUT), C(goto X), C(RETURN), C(ACCEPT),
              C(REDIRECT), C(DNAT), C(MARK) or C(policy ACCEPT).
          type: str
      sample:
        - {table: nat, chain: PREROUTING, rule_number: 1, rule: "-A PREROUTING -p tcp -j ISTIO_INBOUND",
           action: jump ISTIO_INBOUND}
    verdict:
      description:
        - How the packet ends.
        - C(action) is V(ACCEPT), V(DROP), V(REJECT), V(REDIRECT), V(DNAT), V(TPROXY), V(SNAT),
          V(MASQUERADE), V(NFQUEUE), or V(MULTIPLE) when branches end differently.
        - C(to_ports) is the port after V(REDIRECT) or V(TPROXY), C(to_destination) the address and
          port after V(REDIRECT), V(DNAT) or V(TPROXY); C(delivered) is V(local), V(forwarded),
          V(sent) or V(dropped); C(local_port) the port a local socket receives it on.
      type: dict
      sample: {action: REDIRECT, to_ports: 15006, to_destination: "10.244.1.5:15006", delivered: local,
               local_port: 15006}
    branches:
      description:
        - Empty when the path is certain. Otherwise every possible outcome with its
          C(probability) (from C(statistic --mode random) rules), its own C(steps) and C(verdict),
          and the C(unevaluated) rules and C(assumptions) it rests on.
      type: list
      elements: dict
    unevaluated:
      description: Rules whose conditions the engine could not evaluate; both outcomes were explored.
      type: list
      elements: str
    assumptions:
      description: What the trace assumed (unknown local addresses, a transparent socket for TPROXY).
      type: list
      elements: dict
backend:
  description: The back end whose rules were traced (see M(meshops.istio.iptables_info)).
  returned: always
  type: str
local_addresses:
  description: The local addresses the trace used.
  returned: always
  type: list
  elements: str
warnings:
  description: Things a person should know about the rules read, through Ansible's warnings.
  returned: when there is something to say
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import SourceError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.matcher import Packet, refuse_empty_fields
from ansible_collections.meshops.istio.plugins.module_utils.iptables.model import Ruleset
from ansible_collections.meshops.istio.plugins.module_utils.iptables.module_support import (
    read_from_module,
    run_source_module,
)
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer

PACKET_SPEC = {
    "name": {"type": "str", "required": True},
    "hook": {"type": "str", "required": True, "choices": ["prerouting", "output"]},
    "protocol": {"type": "str", "default": "tcp"},
    "src": {"type": "str", "required": True},
    "dst": {"type": "str", "required": True},
    "sport": {"type": "int"},
    "dport": {"type": "int"},
    "in_interface": {"type": "str"},
    "out_interface": {"type": "str"},
    "uid": {"type": "int"},
    "gid": {"type": "int"},
    "mark": {"type": "str"},
}


def run(module):
    local_addresses = module.params["local_addresses"]
    # Validate every packet before reading anything: a bad spec fails with its name and field.
    refuse_empty_fields(module.params["packets"])
    packets = [Packet(spec, local_addresses) for spec in module.params["packets"]]
    read = read_from_module(module, families=sorted({p.family for p in packets}))
    if not local_addresses and read.local_addresses:
        local_addresses = read.local_addresses
    tracers = {}
    traces = []
    warnings = list(read.warnings)
    for spec in module.params["packets"]:
        packet = Packet(spec, local_addresses)
        ruleset = read.rulesets.get(packet.family)
        if ruleset is None:
            if read.backend != "file":
                raise SourceError(
                    f"packet {packet.name}: the {packet.family} rules of the {read.where} could not be read "
                    f"({'; '.join(read.warnings) or 'no dump'}); tracing it against no rules would be wrong"
                )
            # A saved dump without this family: the file says there are no such rules.
            warnings.append(f"{read.where} holds no {packet.family} dump; packet {packet.name} meets no rule")
            ruleset = Ruleset(packet.family)
        tracer = tracers.get(packet.family)
        if tracer is None:
            tracer = tracers[packet.family] = Tracer(ruleset, local_addresses)
        traces.append(tracer.trace(packet))
    return {
        "changed": False,
        "traces": traces,
        "backend": read.backend,
        "local_addresses": list(local_addresses or []),
    }, warnings


def main():
    extra = {
        "packets": {"type": "list", "elements": "dict", "required": True, "options": PACKET_SPEC},
        "local_addresses": {"type": "list", "elements": "str"},
    }
    run_source_module(AnsibleModule, extra, run, "iptables_trace")


if __name__ == "__main__":
    main()
