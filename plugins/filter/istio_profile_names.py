# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_profile_names
short_description: (internal) Profile names from the output of istioctl profile list
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) role,
    not a public interface; it may change or go in any release.
  - Returns the indented names listed under the heading of C(istioctl profile list).
options:
  _input:
    description: The command's standard output.
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Known profiles
  ansible.builtin.set_fact:
    profiles: "{{ profile_list.stdout | meshops.istio.istio_profile_names }}"
"""

RETURN = r"""
_value:
  description: The profile names, in the order printed.
  type: list
  elements: string
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import parse_profile_list


class FilterModule:
    def filters(self):
        return {"istio_profile_names": parse_profile_list}
