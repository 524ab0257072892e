# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_crds_not_established
short_description: (internal) Say which CustomResourceDefinitions are missing or not Established
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) role,
    not a public interface; it may change or go in any release.
  - Takes CustomResourceDefinition objects (for example the C(resources) of
    M(kubernetes.core.k8s_info)) and returns the names from O(wanted) that are missing or whose
    C(Established) condition is not C(True), sorted.
options:
  _input:
    description: CustomResourceDefinition objects.
    type: list
    elements: dict
    required: true
  wanted:
    description: Names of the CRDs that must be Established.
    type: list
    elements: string
    required: true
"""

EXAMPLES = r"""
- name: CRDs that cannot be used yet
  ansible.builtin.debug:
    msg: "{{ crds.resources | meshops.istio.istio_crds_not_established(['gateways.networking.istio.io']) }}"
"""

RETURN = r"""
_value:
  description: Names of the wanted CRDs that are missing or not Established; empty when all are.
  type: list
  elements: string
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import crds_not_established


class FilterModule:
    def filters(self):
        return {"istio_crds_not_established": crds_not_established}
