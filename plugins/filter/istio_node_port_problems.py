# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_node_port_problems
short_description: (internal) Check requested node ports against the NodePort range and other Services
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_ingress) role,
    not a public interface; it may change or go in any release.
  - Returns one readable problem per requested port name whose node port is not a number, is
    outside the cluster's NodePort range, is used by another Service, is requested twice, or
    names no port of the Service. Empty when the request can be applied.
options:
  _input:
    description: "Requested node ports, port name to port number, for example C({http2: 30080})."
    type: dict
    required: true
  service:
    description: The gateway Service object.
    type: dict
    required: true
  services:
    description: All Services of the cluster.
    type: list
    elements: dict
    required: true
  port_range:
    description: The cluster's NodePort range, C(30000-32767).
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Problems with the requested node ports
  ansible.builtin.set_fact:
    problems: "{{ {'http2': 30080} | meshops.istio.istio_node_port_problems(svc, all_svcs, '30000-32767') }}"
"""

RETURN = r"""
_value:
  description: Readable problems, empty when the request is valid.
  type: list
  elements: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshops.istio.plugins.module_utils.mesh.ingress import IngressError, node_port_problems


def istio_node_port_problems(requested, service, services, port_range):
    try:
        return node_port_problems(requested, service, services, port_range)
    except IngressError as e:
        raise AnsibleFilterError(f"istio_node_port_problems: NodePort range {e}") from e


class FilterModule:
    def filters(self):
        return {"istio_node_port_problems": istio_node_port_problems}
