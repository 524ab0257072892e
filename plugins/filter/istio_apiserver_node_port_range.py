# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_apiserver_node_port_range
short_description: (internal) The --service-node-port-range flag of kube-apiserver static pods
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_ingress) role,
    not a public interface; it may change or go in any release.
  - Reads the flag from the command and arguments of kube-apiserver pods (kubeadm clusters run
    it as a static pod in kube-system). Returns null when no pod carries it.
options:
  _input:
    description: kube-apiserver Pod objects.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: NodePort range of the cluster
  ansible.builtin.set_fact:
    node_port_range: "{{ apiserver_pods.resources | meshops.istio.istio_apiserver_node_port_range or '30000-32767' }}"
"""

RETURN = r"""
_value:
  description: The flag's value, or null.
  type: string
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.ingress import apiserver_node_port_range


class FilterModule:
    def filters(self):
        return {"istio_apiserver_node_port_range": apiserver_node_port_range}
