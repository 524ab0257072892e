# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_deployments_not_available
short_description: (internal) Say which Deployments are not Available and fully rolled out
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) role,
    not a public interface; it may change or go in any release.
  - Takes Deployment objects (for example the C(resources) of M(kubernetes.core.k8s_info))
    and returns one readable line per Deployment that is not Available, not fully updated or
    not fully ready; with O(wanted), also one line per wanted Deployment that is missing.
options:
  _input:
    description: Deployment objects.
    type: list
    elements: dict
    required: true
  wanted:
    description: C(namespace/name) of the Deployments that matter; others are ignored.
    type: list
    elements: string
"""

EXAMPLES = r"""
- name: What is not ready
  ansible.builtin.debug:
    msg: "{{ deployments.resources | meshops.istio.istio_deployments_not_available(['istio-system/istiod']) }}"
"""

RETURN = r"""
_value:
  description: Readable problems, empty when everything is Available.
  type: list
  elements: string
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import deployments_not_available


class FilterModule:
    def filters(self):
        return {"istio_deployments_not_available": deployments_not_available}
