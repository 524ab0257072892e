#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: istio_sidecar_injection
short_description: Enable Istio sidecar injection for namespaces, or inject manifests with istioctl kube-inject
version_added: 0.1.0
description:
  - O(mode=namespace) - enables or disables automatic injection for O(namespaces) with the
    C(istio-injection=enabled) label, or C(istio.io/rev=<revision>) when O(revision) is set; the two labels
    are never both set. Reports the pods created before the change that so still lack (or still have) a
    sidecar in RV(pods_needing_restart); O(restart=true) rolls their Deployments, StatefulSets and DaemonSets
    the way C(kubectl rollout restart) does.
  - O(mode=manifest) - manual injection of the given resources with the real C(istioctl kube-inject), using
    the cluster's injector configuration (the C(istio-sidecar-injector) and C(istio) ConfigMaps) or
    configuration files for offline use. Returns the injected resources and applies them (server-side apply)
    when O(apply=true).
  - Idempotent - objects are compared with the live ones after normalisation (a server-side dry run predicts
    the stored object); injecting an already injected workload changes nothing.
  - Refuses, before changing anything, a missing namespace, a revision without injector, an istioctl whose
    version does not match the control plane, and hostNetwork workloads (which cannot get a sidecar).
author:
  - meshops.istio developers (@meshops)
extends_documentation_fragment:
  - meshops.istio.k8s_auth
  - meshops.istio.attributes
  - meshops.istio.attributes.k8s_action_group
attributes:
  check_mode:
    support: full
    details: Predicts label changes, restarts and applies (with a server-side dry run) without changing anything.
  diff_mode:
    support: full
    details:
      - Namespace mode shows the labels before and after and the workloads restarted.
      - Manifest mode shows the live objects and the objects the apply would store.
  platform:
    support: full
    details: Runs where the Kubernetes API is reachable (the C(istio_controller) host).
options:
  mode:
    description: Namespace (automatic) or manifest (manual) injection.
    type: str
    required: true
    choices: [namespace, manifest]
  namespaces:
    description: Namespaces to label (O(mode=namespace)).
    type: list
    elements: str
    default: []
  state:
    description: Whether automatic injection is enabled or disabled for O(namespaces).
    type: str
    choices: [enabled, disabled]
    default: enabled
  revision:
    description:
      - Control plane revision. In namespace mode the namespaces get C(istio.io/rev=<revision>) instead of
        C(istio-injection=enabled); in manifest mode the revision's ConfigMaps are used.
    type: str
  restart:
    description: Roll the workloads of RV(pods_needing_restart) so that their pods are recreated.
    type: bool
    default: false
  src:
    description: File with the resources to inject (O(mode=manifest)).
    type: path
  definition:
    description: The resources to inject, as YAML text, one object, or a list of objects (O(mode=manifest)).
    type: raw
  namespace:
    description:
      - Namespace for the resources that do not name one (like C(kubectl apply -n)); resources naming another
        namespace are refused.
    type: str
  apply:
    description: Apply the injected resources to the cluster (server-side apply, field manager C(meshops-istio)).
    type: bool
    default: false
  injector_config:
    description:
      - V(cluster) reads the injector configuration from the ConfigMaps in O(istio_namespace).
      - V(files) uses O(inject_config_file), O(mesh_config_file) and O(values_file), for offline use.
    type: str
    choices: [cluster, files]
    default: cluster
  inject_config_file:
    description: Injection template file (the C(config) key of the C(istio-sidecar-injector) ConfigMap).
    type: path
  mesh_config_file:
    description: Mesh configuration file (the C(mesh) key of the C(istio) ConfigMap).
    type: path
  values_file:
    description: Injector values file (the C(values) key of the C(istio-sidecar-injector) ConfigMap).
    type: path
  istio_namespace:
    description: Namespace of the Istio control plane.
    type: str
    default: istio-system
  istioctl_path:
    description:
      - Path of istioctl. Defaults to C(istioctl) on E(PATH); playbooks pass the C(istioctl_path) fact.
    type: path
  check_version:
    description: Refuse to inject with an istioctl whose major.minor version differs from istiod's.
    type: bool
    default: true
seealso:
  - module: meshops.istio.istio_verify
  - module: kubernetes.core.k8s
notes:
  - Manifest mode runs C(istioctl kube-inject) with the configuration given as files, so it does not need
    to reach istiod.
"""

EXAMPLES = r"""
- name: Automatic injection for jiuxi (kubectl label ns jiuxi istio-injection=enabled), rolling old pods
  meshops.istio.istio_sidecar_injection:
    mode: namespace
    namespaces: [jiuxi]
    state: enabled
    restart: true
  register: injection

- name: Pods that still run without a sidecar
  ansible.builtin.debug:
    var: injection.pods_needing_restart

- name: Automatic injection by revision (istio.io/rev=canary, istio-injection removed)
  meshops.istio.istio_sidecar_injection:
    mode: namespace
    namespaces: [jiuxi]
    revision: canary

- name: Manual injection (istioctl kube-inject -f nginx-deployment.yaml | kubectl apply -n jiuxi -f -)
  meshops.istio.istio_sidecar_injection:
    mode: manifest
    src: nginx-deployment.yaml
    namespace: jiuxi
    apply: true
    istioctl_path: "{{ istioctl_path | default(omit) }}"

- name: Offline injection with captured configuration, result kept for review
  meshops.istio.istio_sidecar_injection:
    mode: manifest
    definition: "{{ lookup('ansible.builtin.file', 'bookinfo.yaml') }}"
    injector_config: files
    inject_config_file: /srv/istio/inject-config.yaml
    mesh_config_file: /srv/istio/mesh.yaml
    values_file: /srv/istio/values.json
  register: injected
"""

RETURN = r"""
namespaces:
  description: Labels of each namespace after the change (O(mode=namespace)).
  returned: mode is namespace
  type: dict
  sample: {jiuxi: {labels: {istio-injection: enabled, kubernetes.io/metadata.name: jiuxi}}}
pods_needing_restart:
  description: Pods that do not match the namespace's injection yet, with their owning workload and why.
  returned: mode is namespace
  type: list
  elements: dict
  sample:
    - {pod: nginx-7c5b8d65b8-xk2mq, namespace: jiuxi, owner_kind: Deployment, owner: nginx,
       reason: "created before injection was enabled; has no istio-proxy", restartable: true}
cannot_inject:
  description: Pods that can never get a sidecar (hostNetwork), with the reason.
  returned: mode is namespace
  type: list
  elements: dict
restarted:
  description: Workloads rolled (or, in check mode, that would be).
  returned: mode is namespace
  type: list
  elements: dict
  sample: [{namespace: jiuxi, kind: Deployment, name: nginx}]
resources:
  description: The injected resources, as istioctl kube-inject returned them (O(mode=manifest)).
  returned: mode is manifest
  type: list
  elements: dict
injection:
  description: Per workload, its containers and init containers after injection and whether it has a sidecar.
  returned: mode is manifest
  type: list
  elements: dict
  sample:
    - {object: Deployment jiuxi/nginx, containers: [nginx, istio-proxy], init_containers: [istio-init],
       injected: true, status_annotation: true}
applied:
  description: Per resource, V(created), V(configured) or V(unchanged) (O(apply=true)).
  returned: mode is manifest
  type: list
  elements: dict
istioctl_version:
  description: Version of the istioctl used.
  returned: mode is manifest and O(check_version=true)
  type: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
from ansible_collections.meshops.istio.plugins.module_utils.injection.manifest import HAS_YAML, YAML_IMPORT_ERROR
from ansible_collections.meshops.istio.plugins.module_utils.injection.runner import InjectionRunner
from ansible_collections.meshops.istio.plugins.module_utils.k8s.client import HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR
from ansible_collections.meshops.istio.plugins.module_utils.k8s.module import k8s_module

MODULE_OPTIONS = {
    "mode": {"type": "str", "required": True, "choices": ["namespace", "manifest"]},
    "namespaces": {"type": "list", "elements": "str", "default": []},
    "state": {"type": "str", "choices": ["enabled", "disabled"], "default": "enabled"},
    "revision": {"type": "str"},
    "restart": {"type": "bool", "default": False},
    "src": {"type": "path"},
    "definition": {"type": "raw"},
    "namespace": {"type": "str"},
    "apply": {"type": "bool", "default": False},
    "injector_config": {"type": "str", "choices": ["cluster", "files"], "default": "cluster"},
    "inject_config_file": {"type": "path"},
    "mesh_config_file": {"type": "path"},
    "values_file": {"type": "path"},
    "istio_namespace": {"type": "str", "default": "istio-system"},
    "istioctl_path": {"type": "path"},
    "check_version": {"type": "bool", "default": True},
}


def run(module):
    params = module.params
    if params["mode"] == "namespace" and not params["namespaces"]:
        module.fail_json(msg="namespaces is empty: name the namespaces whose injection to set (mode: namespace)")
    needs_cluster = params["mode"] == "namespace" or params["apply"] or params["injector_config"] == "cluster"
    if needs_cluster and not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    if params["mode"] == "manifest" and not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    if params["mode"] == "manifest" and not params["istioctl_path"]:
        params["istioctl_path"] = module.get_bin_path("istioctl", required=True)

    def run_command(argv):
        return module.run_command(argv, environ_update={"LANG": "C", "LC_ALL": "C"})

    outcome = InjectionRunner(params, run_command=run_command, check_mode=module.check_mode).run()
    for warning in outcome.pop("warnings"):
        module.warn(warning)
    diff = outcome.pop("diff")
    if module._diff and outcome["changed"]:
        outcome["diff"] = diff
    return outcome


def main():
    module = k8s_module(
        MODULE_OPTIONS,
        supports_check_mode=True,
        mutually_exclusive=[("src", "definition")],
        required_if=[
            ("mode", "namespace", ("namespaces",)),
            ("mode", "manifest", ("src", "definition"), True),
            ("injector_config", "files", ("inject_config_file", "mesh_config_file")),
        ],
    )
    module.exit_json(**run_module(module, lambda: run(module), "istio_sidecar_injection"))


if __name__ == "__main__":
    main()
