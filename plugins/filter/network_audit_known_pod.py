# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: network_audit_known_pod
short_description: (internal) Reduce a Pod from the Kubernetes API to what the network audit needs
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.network_audit) role,
    not a public interface; it may change or go in any release.
  - Takes one Pod as M(kubernetes.core.k8s_info) returns it and keeps its addresses, name,
    namespace and labels, the shape of the O(meshops.istio.network_audit_info#module:known_pods)
    option.
options:
  _input:
    description: A Pod resource (dict).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Pods the audit can name by IP
  ansible.builtin.set_fact:
    known: "{{ pods.resources | selectattr('status.podIP', 'defined') | map('meshops.istio.network_audit_known_pod') }}"
"""

RETURN = r"""
_value:
  description: C(ip), C(ips), C(name), C(namespace), C(labels), C(node) (the Pod's spec.nodeName).
  type: dict
"""

from ansible_collections.meshops.istio.plugins.module_utils.network_audit.known_pods import known_pod


class FilterModule:
    def filters(self):
        return {"network_audit_known_pod": known_pod}
