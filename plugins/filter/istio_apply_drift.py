# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_apply_drift
short_description: (internal) Per-object differences from a kubernetes.core.k8s result
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) and C(meshops.istio.istio_ingress) roles,
    not a public interface; it may change or go in any release.
  - M(kubernetes.core.k8s) given a list of definitions returns each object's diff inside
    C(result.results), where C(--diff) output does not show it. This filter lists, for every
    object that changed (or would change in check mode), its kind, namespace/name and the
    C(before)/C(after) of the fields that differ.
options:
  _input:
    description: The registered result of M(kubernetes.core.k8s).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show what drifted
  ansible.builtin.debug:
    msg: "{{ applied | meshops.istio.istio_apply_drift }}"
  when: ansible_diff_mode
"""

RETURN = r"""
_value:
  description: One dict per changed object with C(object), C(before) and C(after).
  type: list
  elements: dict
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import apply_drift


class FilterModule:
    def filters(self):
        return {"istio_apply_drift": apply_drift}
