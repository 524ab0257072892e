#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: network_audit_info
short_description: Audit a node's Istio sidecars and iptables rules (read-only)
version_added: 0.1.0
description:
  - Finds every Istio sidecar on the node from C(/proc), without Docker or any container runtime
    - processes named C(envoy) or C(pilot-agent), with the processes running as one of
    O(proxy_uids) beside them - and groups them by network-namespace inode.
  - Names each pod from the container runtime (C(crictl), C(docker) labels
    C(io.kubernetes.pod.name)/C(namespace)) when the node has one, else from the Kubernetes API's
    pod list by IP (O(known_pods)), else from the proxy's environment (C(POD_NAME),
    C(POD_NAMESPACE)) or its Envoy bootstrap node id, else as "pod with IP x in netns inode y".
  - Records, per namespace, its addresses and its listening TCP sockets with the owning process
    (asked from inside the namespace with netlink sock_diag, as C(ss -ltn) does, or read from
    C(/proc/PID/net/tcp) and C(tcp6); no C(netstat) needed).
  - Dumps, with counters, the iptables rules of every sidecar namespace and of the node for each
    of O(backends) (C(iptables-nft-save -c), C(iptables-legacy-save -c)), and returns the raw text
    in RV(dumps).
  - Judges the rules with the collection's iptables engine, the logic of
    M(meshops.istio.sidecar_iptables_audit) and M(meshops.istio.iptables_trace) - capture summary,
    findings and the standard packet traces per pod, the kube-proxy services of the node and the
    path of every NodePort (the ingress gateway's in particular); plus the node-level findings -
    mixed backends, pods whose rules differ from the node's majority, pods that run Envoy but have
    no capture rules ("in the mesh but bypassing it").
  - With O(probe=true), snapshots each pod's counters, opens one TCP connection from the node to
    the pod's application port, snapshots again and reports which rules the connection hit next to
    the tracer's prediction. Only addresses of pods found on this node are contacted.
  - Never changes a rule, a sysctl or a process. A pod that exits during the audit or a namespace
    that cannot be read is reported, and the audit of the rest goes on.
author:
  - meshops.istio developers (@meshops)
extends_documentation_fragment:
  - meshops.istio.capture_expected
  - meshops.istio.attributes
  - meshops.istio.attributes.info_module
options:
  proxy_uids:
    description:
      - UIDs the sidecar proxy runs as. In a namespace where a process named C(envoy) or
        C(pilot-agent) runs, processes running as one of them are counted as the proxy's. A
        namespace whose processes only run as one of them (istiod's C(pilot-discovery) runs as
        1337) is not a sidecar's; it gets an info finding C(PROXY_UID_WITHOUT_PROXY) instead.
    type: list
    elements: int
    default: [1337]
  proxy_names:
    description:
      - Process names (C(/proc/PID/comm)) of the sidecar proxy.
    type: list
    elements: str
    default: [envoy, pilot-agent]
  backends:
    description:
      - iptables backends to dump. The legacy dump is skipped in a namespace without legacy tables
        (C(/proc/PID/net/ip_tables_names) is empty).
      - A pod whose capture rules are not in the backends read is reported as C(CAPTURE_NOT_JUDGED)
        (a warning naming the backend left out), not as a mesh bypass, since the rules may be in the
        backend that was not read.
    type: list
    elements: str
    choices: [nft, legacy]
    default: [nft, legacy]
  families:
    description:
      - Address families to dump (C(ipv6) adds C(ip6tables-*-save)). Judgement uses the IPv4 rules.
    type: list
    elements: str
    choices: [ipv4, ipv6]
    default: [ipv4]
  runtime_lookup:
    description:
      - Whether to ask C(crictl) and C(docker) (when present) for pod names and labels.
    type: bool
    default: true
  known_pods:
    description:
      - Pods as the Kubernetes API lists them (C(ip) or C(ips), C(name), C(namespace), C(labels)),
        for example built by the C(meshops.istio.network_audit) role from M(kubernetes.core.k8s_info)
        on the controller. A sidecar whose address is listed is named from it, unless the node's
        container runtime named it already.
    type: list
    elements: dict
    default: []
  probe:
    description:
      - Open one TCP connection from the node to each sidecar pod's application port and report
        the rules whose counters moved next to the tracer's prediction.
    type: bool
    default: false
  probe_timeout:
    description: Seconds to wait for each probe connection.
    type: float
    default: 2.0
  node_netns:
    description:
      - Network namespace that plays the node (a path such as C(/run/netns/NAME)); its rules are
        the node's and probes start there. Default is the namespace the module runs in, which is
        the node itself. Meant for labs that simulate a node in a namespace.
    type: path
  netns_include:
    description:
      - Only audit sidecars whose network namespace is one of these paths (for example
        C(/run/netns/NAME) or C(/proc/PID/ns/net)). Empty audits every sidecar on the node.
    type: list
    elements: path
    default: []
  dump_timeout:
    description:
      - Seconds after which one C(iptables-*-save) run is abandoned; above 0 and at most 3600.
    type: int
    default: 30
attributes:
  check_mode:
    details: The module only reads (and, with O(probe), opens TCP connections); it runs the same way in check mode.
  platform:
    support: full
    platforms: linux
notes:
  - Needs root (reading other processes' namespaces and running C(iptables-save) inside them).
  - The JSON layout of RV(network_audit) is documented in C(docs/network-audit-schema.md).
seealso:
  - module: meshops.istio.sidecar_iptables_audit
  - module: meshops.istio.iptables_trace
  - name: Istio traffic capture
    description: The rules istio-init writes and the ports the sidecar listens on.
    link: https://istio.io/latest/docs/ops/deployment/application-requirements/
requirements:
  - iptables (C(iptables-nft-save) and/or C(iptables-legacy-save)) on the node
"""

EXAMPLES = r"""
- name: Audit the node
  meshops.istio.network_audit_info:
  become: true
  register: audit

- name: Show the pods and what is wrong with them
  ansible.builtin.debug:
    msg: "{{ item.display }}: {{ item.worst_severity }}"
  loop: "{{ audit.network_audit.pods }}"
  loop_control:
    label: "{{ item.display }}"

- name: Audit with a custom proxy uid and confirm the traces with one real connection per pod
  meshops.istio.network_audit_info:
    proxy_uids: [1337, 2000]
    probe: true
    expected:
      proxy_uid: 1337
      inbound_port: 15006
  become: true
  register: audit
"""

RETURN = r"""
network_audit:
  description:
    - The node's report (schema_version 1, see C(docs/network-audit-schema.md)).
  returned: success
  type: dict
  contains:
    schema_version:
      description: Version of the report layout.
      type: int
      sample: 1
    node:
      description: Host name, network-namespace inode, IPv4 addresses and time of the audit.
      type: dict
    host:
      description: The node's own dumps, backends in use, kube-proxy services and NodePort paths.
      type: dict
    pods:
      description: One entry per sidecar network namespace (name, IPs, proxy, listening sockets,
        dumps, capture, findings, paths, probe).
      type: list
      elements: dict
    findings:
      description: Node-level findings (code, severity, message, source).
      type: list
      elements: dict
    summary:
      description: Counts of pods and findings by severity, and the worst severity.
      type: dict
    errors:
      description: What could not be read and why.
      type: list
      elements: dict
    timings:
      description: Seconds spent in discovery, dumps, judgement, probe and in total.
      type: dict
dumps:
  description:
    - Raw C(iptables-save -c) output per namespace and backend, keyed by the file name the
      report refers to (C(host.nft.rules), C(netns-4026532801.legacy.rules), ...).
  returned: success
  type: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
    from ansible_collections.meshops.istio.plugins.module_utils.iptables.options import EXPECTED_SPEC
    from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import module_runner, module_which
    from ansible_collections.meshops.istio.plugins.module_utils.network_audit.audit import (
        DEFAULTS,
        run_audit,
    )
except ImportError:  # pragma: no cover - reported by main()
    IMPORT_ERROR = traceback.format_exc()
else:
    IMPORT_ERROR = None


def _argument_spec():
    # The defaults come from the audit's one source (module_utils/network_audit/options.py);
    # DOCUMENTATION repeats them and ansible-test sanity checks that the two agree.
    d = DEFAULTS
    return dict(
        proxy_uids=dict(type="list", elements="int", default=list(d["proxy_uids"])),
        proxy_names=dict(type="list", elements="str", default=list(d["proxy_names"])),
        backends=dict(type="list", elements="str", choices=["nft", "legacy"], default=list(d["backends"])),
        families=dict(type="list", elements="str", choices=["ipv4", "ipv6"], default=list(d["families"])),
        runtime_lookup=dict(type="bool", default=d["runtime_lookup"]),
        expected=dict(type="dict", options=EXPECTED_SPEC),
        known_pods=dict(type="list", elements="dict", default=list(d["known_pods"])),
        probe=dict(type="bool", default=d["probe"]),
        probe_timeout=dict(type="float", default=d["probe_timeout"]),
        node_netns=dict(type="path"),
        netns_include=dict(type="list", elements="path", default=list(d["netns_include"])),
        dump_timeout=dict(type="int", default=d["dump_timeout"]),
    )


def run(module):
    options = dict(module.params)
    report, dumps = run_audit(options, runner=module_runner(module), which=module_which(module))
    return dict(changed=False, network_audit=report, dumps=dumps)


def main():
    if IMPORT_ERROR:  # the defaults live in module_utils: without them, only the error can be told
        AnsibleModule(argument_spec={}, bypass_checks=True).fail_json(
            msg="cannot import the network audit module_utils", exception=IMPORT_ERROR
        )
    module = AnsibleModule(argument_spec=_argument_spec(), supports_check_mode=True)
    # The audit's own errors (NodeAuditError, IptablesError: MeshopsError) name the option or the
    # input; anything else is reported as a bug with the traceback apart.
    module.exit_json(**run_module(module, lambda: run(module), "network_audit_info"))


if __name__ == "__main__":
    main()
