# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_manifest_plan
short_description: (internal) Split an istioctl manifest into CRDs, namespaces and objects in apply order
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) role,
    not a public interface; it may change or go in any release.
  - Takes the text printed by C(istioctl manifest generate) and returns the objects grouped
    for server-side apply (CRDs first) and for removal (reverse order).
  - Fails on text that is not a list of Kubernetes objects, or that holds an object twice.
options:
  _input:
    description: The multi-document YAML manifest.
    type: string
    required: true
  namespace:
    description: Namespace given to namespaced objects that carry none.
    type: string
    default: istio-system
"""

EXAMPLES = r"""
- name: Plan the demo profile
  ansible.builtin.set_fact:
    plan: "{{ generated.stdout | meshops.istio.istio_manifest_plan('istio-system') }}"
"""

RETURN = r"""
_value:
  description:
    - Dict with C(crds), C(namespaces), C(objects) (cluster-scoped then namespaced),
      C(custom) (objects whose kind the CRDs define), C(deployments) (namespace/name),
      C(removal) (objects in reverse order) and C(counts) (objects per kind).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import ManifestError, plan_manifest


def istio_manifest_plan(text, namespace="istio-system"):
    try:
        return plan_manifest(text, namespace)
    except ManifestError as e:
        raise AnsibleFilterError(f"istio_manifest_plan: {e}") from e


class FilterModule:
    def filters(self):
        return {"istio_manifest_plan": istio_manifest_plan}
