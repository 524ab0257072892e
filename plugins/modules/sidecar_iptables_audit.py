#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sidecar_iptables_audit
short_description: Check that a pod's iptables rules capture traffic the way Istio means them to
version_added: 0.1.0
description:
  - Reads the rules of a sidecar's network namespace (or a node, or a saved dump) like
    M(meshops.istio.iptables_info) and judges whether they capture traffic the way Istio's
    C(istio-init) (or C(istio-cni)) sets it up, replacing the manual reading of
    C(iptables -nvL -t nat) and its counters.
  - Returns RV(capture), what the ISTIO_* chains do (mode, ports, exempt uids/gids, included and
    excluded ports and CIDRs, DNS capture), RV(findings) in words a person understands, and
    RV(traces) of standard probe packets simulated with M(meshops.istio.iptables_trace) (inbound
    to an application port, inbound to an excluded port, outbound from the application, outbound
    from the proxy's uid, loopback, and DNS).
  - The capture is judged by its own configuration (O(expected) where given, else what the rules
    declare) - each probe carries C(expect) (C(captured) or C(not captured)) and C(why). Probes pick
    destinations the configuration captures (inside the include ranges, outside every exclusion)
    and destinations it leaves alone (excluded CIDRs and ports, the proxy's uids and gids); traffic
    the configuration excludes is never an error. Where no such destination exists the finding
    C(NO_PROBE_DESTINATION) (info) says so.
  - On a node, RV(kube_proxy) lists kube-proxy's services with their ClusterIP, NodePort and
    endpoints with the probability that a new connection picks each.
  - The module does not fail on findings; assert on RV(findings) (for example on C(severity)).
author:
  - meshops.istio developers (@meshops)
extends_documentation_fragment:
  - meshops.istio.iptables_source
  - meshops.istio.capture_expected
  - meshops.istio.attributes
  - meshops.istio.attributes.info_module
options:
  family:
    description: Which rules to audit, V(ipv4) (C(iptables)) or V(ipv6) (C(ip6tables)).
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  local_addresses:
    description:
      - Addresses of the namespace; read with C(ip -j address) when not given (not with O(src)).
    type: list
    elements: str
attributes:
  platform:
    support: full
seealso:
  - module: meshops.istio.iptables_info
  - module: meshops.istio.iptables_trace
  - name: Istio traffic capture
    description: Application requirements and the ports Istio reserves.
    link: https://istio.io/latest/docs/ops/deployment/application-requirements/
"""

EXAMPLES = r"""
- name: Audit the sidecar capture of a pod
  meshops.istio.sidecar_iptables_audit:
    pid: "{{ envoy_pid }}"
    expected:
      proxy_uid: 1337
      inbound_port: 15006
      outbound_port: 15001
      excluded_inbound_ports: [15090, 15021, 15020]
  become: true
  register: capture_audit

- name: No error findings
  ansible.builtin.assert:
    that: capture_audit.findings | selectattr('severity', 'equalto', 'error') | list | length == 0
    fail_msg: "{{ capture_audit.findings | map(attribute='message') | list }}"

- name: Services kube-proxy programs on the node
  meshops.istio.sidecar_iptables_audit:
  become: true
  register: node_audit

- name: Show each service and its endpoints
  ansible.builtin.debug:
    msg: >-
      {{ item.name }} {{ item.cluster_ip }}:{{ item.port }}
      -> {{ item.endpoints | map(attribute='address') | list }}
  loop: "{{ node_audit.kube_proxy | default([], true) }}"
"""

RETURN = r"""
capture:
  description: What the capture rules do.
  returned: always
  type: dict
  contains:
    enabled:
      description: Whether PREROUTING or OUTPUT reach the ISTIO_* chains.
      type: bool
    mode:
      description: V(REDIRECT) or V(TPROXY); V(null) without Istio chains.
      type: str
    inbound_port:
      description: Port inbound traffic is redirected to.
      type: int
      sample: 15006
    outbound_port:
      description: Port outbound traffic is redirected to.
      type: int
      sample: 15001
    proxy_uids:
      description: Uids whose traffic ISTIO_OUTPUT returns (exempts).
      type: list
      elements: int
      sample: [1337]
    proxy_gids:
      description: Gids whose traffic ISTIO_OUTPUT returns.
      type: list
      elements: int
    inbound_ports:
      description: C("*") when every inbound port is captured, else the list of captured ports.
      type: raw
      sample: "*"
    excluded_inbound_ports:
      description: Ports returned before a C("*") capture (without the tunnel port 15008).
      type: list
      elements: int
      sample: [15090, 15021, 15020]
    outbound_include_cidrs:
      description: C("*") or the captured destination CIDRs.
      type: raw
    outbound_exclude_cidrs:
      description: Destination CIDRs never captured (without the loopback exemption).
      type: list
      elements: str
    excluded_outbound_ports:
      description: Destination ports never captured.
      type: list
      elements: int
    dns_capture:
      description: Whether the application's DNS queries are redirected.
      type: bool
    dns_port:
      description: Port DNS queries are redirected to.
      type: int
    inbound_enabled:
      description: Whether PREROUTING reaches ISTIO_INBOUND.
      type: bool
    outbound_enabled:
      description: Whether OUTPUT reaches ISTIO_OUTPUT.
      type: bool
    istio_chains:
      description: The ISTIO_* chains present, as C(table/chain).
      type: list
      elements: str
findings:
  description:
    - What is wrong or worth knowing, errors first in the order found. Codes include
      C(INBOUND_JUMP_MISSING), C(OUTPUT_JUMP_MISSING), C(PROXY_NOT_EXEMPT), C(PROXY_TRAFFIC_CAPTURED),
      C(INBOUND_NOT_CAPTURED), C(OUTBOUND_NOT_CAPTURED), C(EXCLUDED_PORT_CAPTURED), C(LOOPBACK_CAPTURED),
      C(DNS_NOT_CAPTURED), C(EXPECTED_MISMATCH), C(BOTH_BACKENDS), C(NO_CAPTURE_RULES),
      C(UNEVALUATED_RULES) and C(CAPTURE_OK).
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description: Stable identifier of the finding.
      type: str
    severity:
      description: V(error), V(warning) or V(info).
      type: str
    message:
      description: What it means.
      type: str
  sample:
    - code: INBOUND_JUMP_MISSING
      severity: error
      message: "PREROUTING (nat table) never jumps to ISTIO_INBOUND: inbound traffic bypasses the sidecar"
traces:
  description:
    - The standard probes, traced as M(meshops.istio.iptables_trace) returns them, each with C(expect)
      (C(captured) or C(not captured), what the capture's configuration says must happen to it) and
      C(why) (the probe in words).
    - Names are C(inbound_app_port), C(inbound_captured_port) (when the application's port is not
      captured), C(inbound_excluded_port), C(outbound_app), C(outbound_proxy),
      C(outbound_excluded_destination), C(outbound_excluded_port), C(loopback) and C(dns_from_app).
  returned: always
  type: list
  elements: dict
kube_proxy:
  description:
    - The services kube-proxy programs, when the rules hold KUBE-SERVICES; V(null) otherwise.
    - Each has C(name) (C(namespace/service:port)), C(protocol), C(cluster_ip), C(port), C(node_port),
      C(chain) and C(endpoints) (C(address), C(chain), C(probability)).
  returned: always
  type: list
  elements: dict
probe_pod_ip:
  description: The pod address used by the probes.
  returned: always
  type: str
backend:
  description: The back end whose rules were audited.
  returned: always
  type: str
warnings:
  description: Things a person should know about the rules read, through Ansible's warnings.
  returned: when there is something to say
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import SourceError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.istio_audit import audit
from ansible_collections.meshops.istio.plugins.module_utils.iptables.module_support import (
    read_from_module,
    run_source_module,
)
from ansible_collections.meshops.istio.plugins.module_utils.iptables.options import (
    EXPECTED_SPEC,
    validate_expected,
    validate_local_addresses,
)


def run(module):
    # Checked before anything is read: a bad value names the option and the fix.
    expected = validate_expected(module.params["expected"])
    local_addresses = validate_local_addresses(module.params["local_addresses"])
    family = module.params["family"]
    read = read_from_module(module, families=(family,))
    ruleset = read.rulesets.get(family)
    if ruleset is None:
        raise SourceError(f"no {family} rules could be read from the {read.where}")
    local_addresses = local_addresses or read.local_addresses
    result = audit(
        ruleset,
        expected=expected,
        local_addresses=local_addresses,
        both_backends=family in read.both_backends,
        where=read.where,
    )
    result["changed"] = False
    result["backend"] = read.backend
    return result, read.warnings


def main():
    extra = {
        "family": {"type": "str", "default": "ipv4", "choices": ["ipv4", "ipv6"]},
        "expected": {"type": "dict", "options": EXPECTED_SPEC},
        "local_addresses": {"type": "list", "elements": "str"},
    }
    run_source_module(AnsibleModule, extra, run, "sidecar_iptables_audit")


if __name__ == "__main__":
    main()
