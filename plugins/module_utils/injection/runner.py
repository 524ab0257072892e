# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio_sidecar_injection: read, compare, decide, act - for both modes.

``params``: the module's parameters; ``run_command(argv) -> (rc, out, err)``; ``check_mode``.
Everything that can be refused (missing namespace, no injector, hostNetwork, version mismatch,
bad manifest) is refused before the first change.
"""

import datetime
import json

from ansible_collections.meshops.istio.plugins.module_utils.injection import manifest as manifest_mode
from ansible_collections.meshops.istio.plugins.module_utils.injection import namespace as namespace_mode
from ansible_collections.meshops.istio.plugins.module_utils.injection.common import (
    REVISION_LABEL,
    InjectionError,
    object_name,
)
from ansible_collections.meshops.istio.plugins.module_utils.k8s.client import get_client
from ansible_collections.meshops.istio.plugins.module_utils.verify.cluster import deployment_version, major_minor

WORKLOAD_API = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1"}


def istioctl_version(istioctl, run_command):
    rc, out, err = run_command([istioctl, "version", "--remote=false", "-o", "json"])
    if rc != 0:
        raise InjectionError(f"{istioctl} version failed (rc={rc}): {(err or out).strip()}")
    try:
        return json.loads(out)["clientVersion"]["version"]
    except (ValueError, KeyError, TypeError):
        return out.strip().splitlines()[-1] if out.strip() else None


class InjectionRunner:
    def __init__(self, params, run_command=None, check_mode=False, client=None, now=None):
        self.params = params
        self.run_command = run_command
        self.check_mode = check_mode
        self._client = client
        self._now = now

    @property
    def client(self):
        if self._client is None:
            self._client = get_client(self.params)
        return self._client

    def now(self):
        if self._now:
            return self._now
        # timezone.utc, not datetime.UTC: managed hosts may run Python older than 3.11.
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def run(self):
        if self.params["mode"] == "namespace":
            return self.run_namespace()
        return self.run_manifest()

    # -- namespace mode -------------------------------------------------------------------

    def _require_namespaces(self, names):
        found = {}
        for name in names:
            obj = self.client.get("v1", "Namespace", name)
            if obj is None:
                raise InjectionError(
                    f"namespace {name} not found; create it first (kubernetes.core.k8s, kind Namespace)"
                )
            found[name] = obj
        return found

    def _require_injector(self):
        revision = self.params.get("revision") or "default"
        webhooks = self.client.list(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            label_selector=f"{REVISION_LABEL}={revision}",
        )
        if not webhooks:
            raise InjectionError(
                f"no sidecar injector for revision {revision!r}: no MutatingWebhookConfiguration labelled "
                f"{REVISION_LABEL}={revision}; install the Istio control plane (or fix revision) first"
            )

    def _pods_and_workloads(self, namespace):
        pods = self.client.list("v1", "Pod", namespace)
        replicasets = {rs["metadata"]["name"]: rs for rs in self.client.list("apps/v1", "ReplicaSet", namespace)}
        workloads = {}
        for pod in pods:
            owner = namespace_mode.owner_of(pod, replicasets)
            if owner and owner not in workloads and owner[0] in WORKLOAD_API:
                workloads[owner] = self.client.get(WORKLOAD_API[owner[0]], owner[0], owner[1], namespace)
        return pods, replicasets, workloads

    def run_namespace(self):
        params = self.params
        state = params["state"]
        namespaces = self._require_namespaces(params["namespaces"])
        if state == "enabled":
            self._require_injector()
        changed = False
        before, after, label_changes = {}, {}, {}
        for name, obj in namespaces.items():
            labels = (obj.get("metadata") or {}).get("labels") or {}
            patch = namespace_mode.label_patch(labels, state, params.get("revision"))
            before[name] = labels
            after[name] = namespace_mode.apply_label_patch(labels, patch)
            if patch:
                changed = True
                label_changes[name] = patch
        if label_changes and not self.check_mode:
            for name, patch in label_changes.items():
                self.client.merge_patch("v1", "Namespace", name, {"metadata": {"labels": patch}})
        needing, cannot = [], []
        restarts = {}
        for name in namespaces:
            pods, replicasets, workloads = self._pods_and_workloads(name)
            pod_list, cannot_list = namespace_mode.pods_needing_restart(pods, state, replicasets, workloads)
            needing.extend(pod_list)
            cannot.extend(cannot_list)
            if params["restart"]:
                for entry in pod_list:
                    if entry["restartable"]:
                        restarts[(name, entry["owner_kind"], entry["owner"])] = True
        warnings = [f"pod {c['namespace']}/{c['pod']}: {c['reason']}" for c in cannot]
        if params["restart"]:
            warnings.extend(
                f"pod {e['namespace']}/{e['pod']} has no Deployment/StatefulSet/DaemonSet to roll; "
                "delete it to recreate it"
                for e in needing
                if not e["restartable"]
            )
        restarted = [{"namespace": ns, "kind": kind, "name": wname} for ns, kind, wname in sorted(restarts)]
        if restarted:
            changed = True
            if not self.check_mode:
                patch = namespace_mode.restart_patch(self.now())
                for item in restarted:
                    self.client.merge_patch(
                        WORKLOAD_API[item["kind"]], item["kind"], item["name"], patch, item["namespace"]
                    )
        return {
            "changed": changed,
            "namespaces": {name: {"labels": after[name]} for name in namespaces},
            "pods_needing_restart": needing,
            "cannot_inject": cannot,
            "restarted": restarted,
            "warnings": warnings,
            "diff": {
                "before": {"labels": before, "restarted": []},
                "after": {
                    "labels": after,
                    "restarted": [f"{r['kind']} {r['namespace']}/{r['name']}" for r in restarted],
                },
            },
        }

    # -- manifest mode --------------------------------------------------------------------

    def _injector_config(self):
        params = self.params
        if params["injector_config"] == "files":
            return {
                "inject_file": params["inject_config_file"],
                "mesh_file": params["mesh_config_file"],
                "values_file": params.get("values_file"),
            }
        namespace = params["istio_namespace"]
        suffix = f"-{params['revision']}" if params.get("revision") and params["revision"] != "default" else ""
        injector_name, mesh_name = "istio-sidecar-injector" + suffix, "istio" + suffix
        injector = self.client.get("v1", "ConfigMap", injector_name, namespace)
        mesh = self.client.get("v1", "ConfigMap", mesh_name, namespace)
        for obj, name in ((injector, injector_name), (mesh, mesh_name)):
            if obj is None:
                raise InjectionError(
                    f"ConfigMap {namespace}/{name} not found: the control plane is not installed there "
                    "(set istio_namespace/revision, or injector_config: files for offline use)"
                )
        data = injector.get("data") or {}
        if not data.get("config") or not (mesh.get("data") or {}).get("mesh"):
            raise InjectionError(
                f"ConfigMaps {namespace}/{injector_name} (config) and {namespace}/{mesh_name} (mesh) are incomplete"
            )
        return {"inject": data["config"], "values": data.get("values"), "mesh": mesh["data"]["mesh"]}

    def _check_version(self, warnings):
        if not self.params["check_version"]:
            return None
        ours = istioctl_version(self.params["istioctl_path"], self.run_command)
        if self.params["injector_config"] != "cluster":
            return ours
        suffix = (
            f"-{self.params['revision']}"
            if self.params.get("revision") and self.params["revision"] != "default"
            else ""
        )
        istiod = self.client.get("apps/v1", "Deployment", "istiod" + suffix, self.params["istio_namespace"])
        theirs = deployment_version(istiod) if istiod else None
        if major_minor(ours) is None or major_minor(theirs) is None:
            warnings.append(f"could not compare istioctl {ours!r} with the control plane's {theirs!r}")
        elif major_minor(ours) != major_minor(theirs):
            raise InjectionError(
                f"istioctl {ours} does not match the control plane (istiod {theirs}); inject with the istioctl of "
                "the installed release (istioctl_path) or set check_version: false"
            )
        return ours

    def run_manifest(self):
        params = self.params
        resources = manifest_mode.resources_from_params(params.get("src"), params.get("definition"))
        manifest_mode.set_namespace(resources, params.get("namespace"))
        manifest_mode.check_injectable(resources)
        warnings = []
        if params["apply"]:
            names = sorted({(o.get("metadata") or {}).get("namespace") for o in resources} - {None})
            self._require_namespaces(names)
        version = self._check_version(warnings)
        # Objects that already carry a sidecar pass through as they are (minus server-owned
        # fields): re-running kube-inject on them would re-render the sidecar from the defaulted
        # object (e.g. ports gaining protocol: TCP) and report a change that is none.
        todo = [obj for obj in resources if not manifest_mode.already_injected(obj)]
        injected_todo = []
        if todo:
            injected_todo, kube_warnings = manifest_mode.kube_inject(
                params["istioctl_path"], todo, self.run_command, self._injector_config(), params.get("revision")
            )
            warnings.extend(kube_warnings)
        rendered = iter(injected_todo)
        injected = [
            manifest_mode.normalise(obj) if manifest_mode.already_injected(obj) else next(rendered) for obj in resources
        ]
        summaries = [s for s in (manifest_mode.injection_summary(o) for o in injected) if s]
        for summary in summaries:
            if not summary["injected"]:
                warnings.append(f"{summary['object']} was not injected (opted out with sidecar.istio.io/inject=false?)")
        applied = []
        before_docs, after_docs = [], []
        changed = False
        if params["apply"]:
            # Read and predict everything first (server-side dry run), then act: a problem with
            # any object stops the task before the first change.
            plan = []
            for obj in injected:
                meta = obj.get("metadata") or {}
                resource = self.client.resource(obj["apiVersion"], obj["kind"])
                if resource.namespaced and not meta.get("namespace"):
                    raise InjectionError(f"{object_name(obj)} has no namespace: set namespace (or metadata.namespace)")
                live = self.client.get(
                    obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace") if resource.namespaced else None
                )
                live_n = manifest_mode.normalise(live)
                predicted_n = manifest_mode.normalise(self.client.apply(obj, dry_run=True))
                if live is None:
                    action = "created"
                elif live_n != predicted_n:
                    action = "configured"
                else:
                    action = "unchanged"
                plan.append((obj, action, live_n, predicted_n))
            for obj, action, live_n, predicted_n in plan:
                if action != "unchanged":
                    changed = True
                    before_docs.append(live_n)
                    after_docs.append(predicted_n)
                    if not self.check_mode:
                        self.client.apply(obj)
                applied.append({"object": object_name(obj), "action": action})
        return {
            "changed": changed,
            "resources": injected,
            "injection": summaries,
            "applied": applied,
            "istioctl_version": version,
            "warnings": warnings,
            "diff": {"before": before_docs, "after": after_docs},
        }
