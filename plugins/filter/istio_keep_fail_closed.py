# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_keep_fail_closed
short_description: (internal) Keep istiod's validating webhooks at failurePolicy Fail on a re-apply
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_control_plane) role, not a public interface; it may
    change or go in any release.
  - Istio's manifests ship istiod's validating webhooks with C(failurePolicy=Ignore); istiod
    switches them to C(Fail) once its webhook serves. Takes the manifest's objects and returns
    them with every such webhook that the cluster already has at C(Fail) kept at C(Fail), so that
    applying the manifest again neither opens the cluster to unvalidated configuration until
    istiod switches it back nor reports a change.
options:
  _input:
    description: The objects to apply.
    type: list
    elements: dict
    required: true
  live:
    description: The cluster's ValidatingWebhookConfiguration objects (matched by name).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Apply without switching istiod's webhooks back to Ignore
  kubernetes.core.k8s:
    definition: "{{ plan.objects | meshops.istio.istio_keep_fail_closed(webhooks.resources) }}"
    apply: true
"""

RETURN = r"""
_value:
  description: The objects, with those webhooks' failurePolicy set to Fail.
  type: list
  elements: dict
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import keep_fail_closed


class FilterModule:
    def filters(self):
        return {"istio_keep_fail_closed": keep_fail_closed}
