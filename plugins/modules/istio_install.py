#!/usr/bin/python
# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: istio_install
short_description: Install or remove an Istio control plane from a profile by server-side apply
version_added: 0.2.0
description:
  - Runs C(istioctl manifest generate) with the O(profile), O(set) values and overlays, then applies
    the manifests with server-side apply (field manager O(field_manager), conflicts forced) - CRDs
    first, waited for until C(Established) when one changed, then the namespaces, then every other
    object - and waits until the profile's Deployments are Available. All of it in one process, as
    C(istioctl install) does.
  - Idempotent - an object counts as changed when a field value differs from what was there before,
    not when only the API server's bookkeeping (C(managedFields), C(resourceVersion),
    C(generation), C(status)) moved. A validating webhook that istiod has already switched to
    C(failurePolicy=Fail) is kept at C(Fail).
  - O(state=absent) deletes the profile's objects in reverse order with Foreground propagation and
    waits until they are gone; CRDs and the control-plane namespace only with O(purge=true).
  - On failure RV(stage) says which step failed (C(api), C(generate), C(apply), C(wait)), so that a
    role can explain it in its own words; nothing is applied when C(api) or C(generate) fails.
  - The engine of the C(meshops.istio.istio_control_plane) role, which also diagnoses a failed
    generation (the istioctl binary, the profile) and an unusable kubeconfig.
author:
  - meshops.istio developers (@meshops)
extends_documentation_fragment:
  - meshops.istio.k8s_auth
  - meshops.istio.attributes
  - meshops.istio.attributes.k8s_action_group
attributes:
  check_mode:
    support: full
    details:
      - A server-side dry run of every apply; objects that a dry run cannot place (in a namespace, or of
        a CRD, that does not exist yet) are predicted from the manifest.
  diff_mode:
    support: full
    details: One diff per object that changes, without the API server's bookkeeping.
  platform:
    support: full
    details: Runs where the Kubernetes API is reachable (the C(istio_controller) host), with istioctl there.
options:
  state:
    description: Install (or update) the control plane, or remove it.
    type: str
    choices: [present, absent]
    default: present
  istioctl:
    description: Path of istioctl. Defaults to C(istioctl) on E(PATH).
    type: path
  profile:
    description: The istioctl profile (C(demo) as in the tutorial, C(default), C(minimal), ...).
    type: str
    default: demo
  set:
    description:
      - C(--set) values for istioctl, for example V(values.pilot.replicaCount=2) as a mapping; scalars only.
      - A C(profile) key here wins over O(profile).
    type: dict
    default: {}
  overlay:
    description: An IstioOperator overlay (C(kind=IstioOperator)), passed to istioctl with C(-f).
    type: dict
    default: {}
  overlay_file:
    description: An IstioOperator overlay file, passed to istioctl with C(-f) before O(overlay).
    type: path
  revision:
    description: Control plane revision for canary upgrades (istioctl C(--revision)); empty for the default.
    type: str
    default: ""
  namespace:
    description: Namespace of the control plane; O(purge) removes it.
    type: str
    default: istio-system
  purge:
    description: With O(state=absent), also delete the Istio CRDs (and every custom resource of them) and O(namespace).
    type: bool
    default: false
  field_manager:
    description: Server-side apply field manager, the owner of the fields written.
    type: str
    default: meshops-istio
  manifest_cache_dir:
    description:
      - Directory (on the host the module runs on) where the output of C(istioctl manifest generate) is
        kept for the next run with the same input - the same istioctl binary (path, inode, size,
        modification time), profile, values, overlays, revision, istioctl configuration file and
        C(ISTIOCTL_*) environment - which then does not run istioctl (RV(manifest_from_cache)). The
        newest 8 entries are kept.
      - An empty string runs istioctl every time.
    type: str
    default: ~/.cache/meshops-istio/istio-manifests
  wait:
    description: Wait until the profile's Deployments are Available (O(state=present)).
    type: bool
    default: true
  crd_timeout:
    description: Seconds for changed CRDs to become C(Established).
    type: int
    default: 120
  wait_timeout:
    description: Seconds for the Deployments to become Available, or for deleted objects to be gone.
    type: int
    default: 600
seealso:
  - module: kubernetes.core.k8s
  - module: meshops.istio.istio_verify
notes:
  - Does not prune objects of a previous profile that the new one no longer has; remove the old profile first
    with O(state=absent).
"""

EXAMPLES = r"""
- name: The tutorial's istioctl install --set profile=demo, gateway as NodePort
  meshops.istio.istio_install:
    profile: demo
    set:
      values.gateways.istio-ingressgateway.type: NodePort
    istioctl: "{{ istioctl_path }}"
    kubeconfig: /etc/kubernetes/admin.conf

- name: Remove it, CRDs and istio-system included
  meshops.istio.istio_install:
    state: absent
    purge: true
    istioctl: "{{ istioctl_path }}"
"""

RETURN = r"""
counts:
  description: Number of objects per kind in the generated manifests.
  returned: always
  type: dict
  sample: {CustomResourceDefinition: 14, Deployment: 3, Service: 3}
changes:
  description: Each object created, updated or deleted (or, in check mode, that would be).
  returned: always
  type: list
  elements: dict
  sample: [{object: Deployment istio-system/istiod, action: update}]
manifest_from_cache:
  description: Whether the manifests came from O(manifest_cache_dir) instead of a run of istioctl.
  returned: always
  type: bool
deployments:
  description: The profile's Deployments, as C(namespace/name).
  returned: always
  type: list
  elements: str
stage:
  description: On failure, the step that failed - C(generate), C(api), C(apply) or C(wait).
  returned: failure
  type: str
rc:
  description: The exit code of C(istioctl manifest generate) when it failed (null when it could not run).
  returned: failure of stage generate
  type: int
stderr:
  description: What C(istioctl manifest generate) wrote on its standard error when it failed.
  returned: failure of stage generate
  type: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
from ansible_collections.meshops.istio.plugins.module_utils.k8s.client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    K8sError,
    get_client,
)
from ansible_collections.meshops.istio.plugins.module_utils.k8s.module import k8s_module
from ansible_collections.meshops.istio.plugins.module_utils.mesh.install import Installer, InstallError, generate
from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest_cache import ManifestCache

MODULE_OPTIONS = {
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "istioctl": {"type": "path"},
    "profile": {"type": "str", "default": "demo"},
    "set": {"type": "dict", "default": {}},
    "overlay": {"type": "dict", "default": {}},
    "overlay_file": {"type": "path"},
    "revision": {"type": "str", "default": ""},
    "namespace": {"type": "str", "default": "istio-system"},
    "purge": {"type": "bool", "default": False},
    "field_manager": {"type": "str", "default": "meshops-istio"},
    "manifest_cache_dir": {"type": "str", "default": "~/.cache/meshops-istio/istio-manifests"},
    "wait": {"type": "bool", "default": True},
    "crd_timeout": {"type": "int", "default": 120},
    "wait_timeout": {"type": "int", "default": 600},
}


def connect(params):
    """The client, after one read that needs authorisation (the default namespace)."""
    try:
        client = get_client(params)
        if client.get("v1", "Namespace", "default") is None:
            raise K8sError('the API server returned no "default" namespace')
    except K8sError as exc:
        raise InstallError("api", str(exc)) from exc
    return client


def run(module):
    params = module.params
    istioctl = params["istioctl"] or module.get_bin_path("istioctl") or "istioctl"

    def run_command(argv):
        return module.run_command(argv, environ_update={"LANG": "C", "LC_ALL": "C"})

    client = connect(params)
    plan = generate(
        run_command,
        istioctl,
        params["profile"],
        values=params["set"],
        overlay=params["overlay"],
        overlay_file=params["overlay_file"],
        revision=params["revision"],
        namespace=params["namespace"],
        cache=ManifestCache(params["manifest_cache_dir"]) if params["manifest_cache_dir"] else None,
    )
    installer = Installer(client, plan, params["namespace"], params["field_manager"], module.check_mode)
    if params["state"] == "present":
        installer.present(params["crd_timeout"], params["wait_timeout"], wait=params["wait"])
    else:
        installer.absent(params["purge"], params["wait_timeout"])
    result = {
        "changed": bool(installer.changes),
        "counts": plan["counts"],
        "manifest_from_cache": plan["from_cache"],
        "deployments": plan["deployments"],
        "changes": [{"object": c["object"], "action": c["action"]} for c in installer.changes],
    }
    if module._diff:
        result["diff"] = [
            {
                "before_header": change["object"],
                "after_header": change["object"],
                "before": change["before"],
                "after": change["after"],
            }
            for change in installer.changes
        ]
    return result


def main():
    module = k8s_module(MODULE_OPTIONS, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    for name in ("crd_timeout", "wait_timeout"):
        if module.params[name] <= 0:
            module.fail_json(msg=f"{name} is {module.params[name]}: give the seconds to wait, e.g. 600", stage="input")
    module.exit_json(**run_module(module, lambda: run(module), "istio_install"))


if __name__ == "__main__":
    main()
