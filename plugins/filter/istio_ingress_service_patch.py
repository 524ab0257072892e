# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_ingress_service_patch
short_description: (internal) The server-side apply body that makes the gateway Service a NodePort
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_ingress) role,
    not a public interface; it may change or go in any release.
  - Returns a Service with only the fields this change owns, the type and, for each requested
    port name, the port entry (C(port), C(protocol), C(name)) with its C(nodePort).
options:
  _input:
    description: The current gateway Service.
    type: dict
    required: true
  service_type:
    description: C(NodePort) or C(LoadBalancer).
    type: string
    required: true
  requested:
    description: Port name to node port.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Apply the NodePort change
  kubernetes.core.k8s:
    definition: "{{ svc | meshops.istio.istio_ingress_service_patch('NodePort', {'http2': 30080}) }}"
    apply: true
    server_side_apply:
      field_manager: meshops-istio-ingress
"""

RETURN = r"""
_value:
  description: The Service body to apply.
  type: dict
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.ingress import service_apply_patch


class FilterModule:
    def filters(self):
        return {"istio_ingress_service_patch": service_apply_patch}
