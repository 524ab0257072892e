# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_pod_problems
short_description: (internal) Say why pods are not running and ready
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) and C(meshops.istio.istio_samples) roles,
    not a public interface; it may change or go in any release.
  - Takes Pod objects (for example the C(resources) of M(kubernetes.core.k8s_info)) and returns
    one readable line per pod that is not running with every container ready, with the first
    cause as C(kubectl describe pod) shows it (not scheduled and why, a container waiting with
    its reason and message, the last exit code of a crashing container, a failed init container).
options:
  _input:
    description: Pod objects.
    type: list
    elements: dict
    required: true
  namespace:
    description: Only the pods of this namespace.
    type: string
"""

EXAMPLES = r"""
- name: Why the control plane's pods do not run
  ansible.builtin.debug:
    msg: "{{ pods.resources | meshops.istio.istio_pod_problems }}"
"""

RETURN = r"""
_value:
  description: Readable problems, empty when every pod runs and is ready.
  type: list
  elements: string
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.pods import pod_problems


class FilterModule:
    def filters(self):
        return {"istio_pod_problems": pod_problems}
