# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istioctl_set_args
short_description: (internal) Turn a mapping into istioctl --set arguments
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) role,
    not a public interface; it may change or go in any release.
  - Returns C(["--set", "key=value", ...]) in key order, with booleans written as
    C(true)/C(false). Structured values are refused (use an IstioOperator overlay for them).
options:
  _input:
    description: Mapping of istioctl value paths to scalar values.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Arguments for istioctl manifest generate
  ansible.builtin.debug:
    msg: "{{ {'values.global.proxy.privileged': true} | meshops.istio.istioctl_set_args }}"
"""

RETURN = r"""
_value:
  description: The argument list.
  type: list
  elements: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import ManifestError, istioctl_set_args


def _set_args(values):
    try:
        return istioctl_set_args(values)
    except ManifestError as e:
        raise AnsibleFilterError(str(e)) from e


class FilterModule:
    def filters(self):
        return {"istioctl_set_args": _set_args}
