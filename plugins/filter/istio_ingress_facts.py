# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istio_ingress_facts
short_description: (internal) INGRESS_HOST, INGRESS_PORT and the gateway host names, as facts
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.istio_ingress) role,
    not a public interface; it may change or go in any release.
  - Computes what the Bookinfo chapter reads by hand with kubectl, the hostIP of a Running
    gateway pod (or the InternalIP of a chosen node), the C(http2) and C(https) node ports, a
    URL, and the host names of the Gateways bound to the ingress gateway (wildcards dropped).
options:
  _input:
    description: The gateway Service.
    type: dict
    required: true
  pods:
    description: The gateway pods.
    type: list
    elements: dict
  node:
    description: A Node object to use instead of the pods' hostIP.
    type: dict
  gateways:
    description: Istio Gateway objects.
    type: list
    elements: dict
  pod_labels:
    description: Labels of the gateway pods, to match the Gateways' selectors.
    type: dict
"""

EXAMPLES = r"""
- name: Ingress facts
  ansible.builtin.set_fact:
    ingress: "{{ svc | meshops.istio.istio_ingress_facts(pods, none, gateways, {'istio': 'ingressgateway'}) }}"
"""

RETURN = r"""
_value:
  description:
    - Dict with C(istio_ingress_host), C(istio_ingress_http_node_port),
      C(istio_ingress_https_node_port), C(istio_ingress_url), C(istio_ingress_gateway_hosts).
  type: dict
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.ingress import ingress_facts


class FilterModule:
    def filters(self):
        return {"istio_ingress_facts": ingress_facts}
