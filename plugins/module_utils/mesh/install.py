# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install or remove an Istio control plane from ``istioctl manifest generate`` in one process.

What the ``istio_install`` module does, step by step, the way ``istioctl install`` does it (one
process, one connection to the API server, polling once a second) but by server-side apply, so
that check mode is a server-side dry run and the diff shows the fields that drifted:

1. ``generate``: run istioctl with the profile, ``--set`` values and overlays (or take its
   output of an earlier run with the same input from ``manifest_cache``); split the output
   into a plan (``manifest.plan_manifest``).
2. ``Installer.present``: CRDs (waited for until Established when one changed), namespaces,
   every other object; then the Deployments until Available.
3. ``Installer.absent``: the objects in reverse order with Foreground propagation, waited for
   until gone; CRDs and the control-plane namespace only on purge.

An ``InstallError`` carries the ``stage`` that failed (``generate``, ``api``, ``apply``,
``wait``) so that the role can diagnose the first two in its own words.

No Ansible imports: the module passes ``run_command`` and a ``K8sClient``; ``clock`` and
``sleep`` can be replaced in unit tests.
"""

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.istio.plugins.module_utils.k8s.client import CONNECTIONS, K8sError, NotFoundError
from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest import (
    ManifestError,
    crds_not_established,
    deployments_not_available,
    describe,
    istioctl_set_args,
    keep_fail_closed,
    plan_manifest,
    readable,
)
from ansible_collections.meshops.istio.plugins.module_utils.mesh.manifest_cache import cache_key
from ansible_collections.meshops.istio.plugins.module_utils.mesh.pods import pod_problems

CRD_API = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
# Applied after every other object, so that what their pods need (ServiceAccounts, ConfigMaps,
# Services, webhooks) is there when the pods are created.
WORKLOAD_KINDS = frozenset({"Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob"})
# Requests in flight at once (the client keeps as many connections): the API server handles
# applies in parallel, and one at a time spends most of the run waiting for answers.
PARALLEL_REQUESTS = CONNECTIONS


class InstallError(MeshopsError):
    """A step failed; ``stage`` says which, and goes into the module's result with ``details``."""

    def __init__(self, stage, message, **details):
        super().__init__(message)
        self.stage = stage
        self.details = details
        self.result = dict(details, stage=stage)


def generate_argv(istioctl, profile, values, overlay_files, revision):
    """The ``istioctl manifest generate`` command line (``values``: the ``--set`` mapping)."""
    settings = dict({"profile": profile}, **(values or {}))
    argv = [istioctl, "manifest", "generate", *istioctl_set_args(settings)]
    for path in overlay_files:
        argv += ["-f", path]
    if revision:
        argv += ["--revision", revision]
    return argv


def generate(
    run_command,
    istioctl,
    profile,
    values=None,
    overlay=None,
    overlay_file=None,
    revision=None,
    namespace="istio-system",
    cache=None,
):
    """The plan of the manifest istioctl generates, with ``from_cache`` set when ``cache`` (a
    ``manifest_cache.ManifestCache``) had it from an earlier run with the same input."""
    if not (os.path.isfile(istioctl) and os.access(istioctl, os.X_OK)):
        raise InstallError("generate", f"istioctl not found or not executable at {istioctl}", rc=None, stderr="")
    try:
        generate_argv(istioctl, profile, values, [], revision)  # refuses structured values
    except ManifestError as exc:
        raise InstallError("generate", str(exc), rc=None, stderr="") from exc
    key = None
    text = None
    if cache is not None:
        inputs = {
            "profile": profile,
            "values": values or {},
            "overlay": overlay or {},
            "files": [overlay_file] if overlay_file else [],
            "revision": revision or "",
        }
        key = cache_key(istioctl, inputs)
        text = cache.get(key)
    from_cache = text is not None
    if text is None:
        text = run_istioctl(run_command, istioctl, profile, values, overlay, overlay_file, revision)
    try:
        plan = plan_manifest(text, namespace)
    except ManifestError as exc:
        raise InstallError("generate", f"the output of istioctl manifest generate cannot be used: {exc}") from exc
    if key is not None and not from_cache:
        cache.put(key, text)
    plan["from_cache"] = from_cache
    return plan


def run_istioctl(run_command, istioctl, profile, values, overlay, overlay_file, revision):
    """``istioctl manifest generate``'s output. ``overlay`` (an IstioOperator mapping) is written
    to a private temporary file for istioctl (JSON is YAML) and removed afterwards."""
    overlay_files = [overlay_file] if overlay_file else []
    temporary = None
    try:
        if overlay:
            descriptor, temporary = tempfile.mkstemp(suffix=".istiooperator.json")
            with os.fdopen(descriptor, "w") as handle:
                json.dump(overlay, handle)
            overlay_files.append(temporary)
        rc, stdout, stderr = run_command(generate_argv(istioctl, profile, values, overlay_files, revision))
    finally:
        if temporary:
            os.unlink(temporary)
    if rc != 0:
        raise InstallError(
            "generate",
            f"istioctl manifest generate failed (rc {rc}): {stderr.strip()}",
            rc=rc,
            stderr=stderr,
        )
    return stdout


def title(obj):
    return f"{obj.get('kind', '?')} {describe(obj)}"


def _namespace_of(obj):
    return (obj.get("metadata") or {}).get("namespace")


class Installer:
    """Applies or removes a plan through ``client`` (a ``k8s.client.K8sClient``)."""

    def __init__(
        self, client, plan, namespace, field_manager, check_mode=False, clock=time.monotonic, sleep=time.sleep
    ):
        self.client = client
        self.plan = plan
        self.namespace = namespace
        self.field_manager = field_manager
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.changes = []  # {"object", "action", "before", "after"}

    # ----------------------------------------------------------------------------------------
    # present

    def present(self, crd_timeout, wait_timeout, wait=True):
        crds = self._apply_all(self.plan["crds"])
        if crds and not self.check_mode:
            self._wait_established(crd_timeout)
        self._apply_all(self.plan["namespaces"])
        # Read only in check mode: see the dry run below.
        existing_ns = (
            {(n.get("metadata") or {}).get("name") for n in self._list("v1", "Namespace")} if self.check_mode else set()
        )
        missing_crds = self._missing_crds() if self.check_mode else []
        custom = {id(obj) for obj in self.plan["custom"]}
        live_validators = self._list(
            "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", label_selector="app=istiod"
        )
        objects = keep_fail_closed(self.plan["objects"], live_validators)
        applied = []
        for original, obj in zip(self.plan["objects"], objects):
            namespace = _namespace_of(obj)
            # A dry run cannot place an object in a namespace that does not exist yet, nor a
            # custom resource whose CRD is not there: on a first install in check mode those are
            # predicted from the manifest.
            if self.check_mode and (
                (namespace and namespace not in existing_ns) or (id(original) in custom and missing_crds)
            ):
                self.changes.append({"object": title(obj), "action": "create", "before": {}, "after": readable(obj)})
            else:
                applied.append(obj)
        self._apply_all([obj for obj in applied if obj["kind"] not in WORKLOAD_KINDS])
        self._apply_all([obj for obj in applied if obj["kind"] in WORKLOAD_KINDS])
        if wait and not self.check_mode and self.plan["deployments"]:
            self._wait_available(wait_timeout)

    def _apply_all(self, objects):
        """Apply ``objects`` in parallel; their changes are recorded in the objects' order."""
        # Resolve each kind once first: the client's discovery cache is not shared safely by
        # threads that miss it at the same time (a CRD applied a moment ago).
        for api_version, kind in dict.fromkeys((obj["apiVersion"], obj["kind"]) for obj in objects):
            try:
                self.client.resource(api_version, kind)
            except K8sError as exc:
                raise InstallError("apply", f"applying {kind} ({api_version}) failed: {exc}") from exc
        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            changes = [change for change in pool.map(self._apply, objects) if change]
        self.changes.extend(changes)
        return changes

    def _apply(self, obj):
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        try:
            before = self.client.get(obj["apiVersion"], obj["kind"], name, namespace)
            after = self.client.apply(obj, dry_run=self.check_mode, field_manager=self.field_manager)
        except K8sError as exc:
            raise InstallError("apply", f"applying {title(obj)} failed: {exc}") from exc
        if before is not None and readable(before) == readable(after):
            return None
        return {
            "object": title(obj),
            "action": "create" if before is None else "update",
            "before": readable(before) if before is not None else {},
            "after": readable(after),
        }

    def _list(self, api_version, kind, namespace=None, label_selector=None):
        try:
            return self.client.list(api_version, kind, namespace=namespace, label_selector=label_selector)
        except NotFoundError:
            return []
        except K8sError as exc:
            raise InstallError("apply", str(exc)) from exc

    def _missing_crds(self):
        wanted = [crd["metadata"]["name"] for crd in self.plan["crds"]]
        if not wanted:
            return []
        present = {(crd.get("metadata") or {}).get("name") for crd in self._list(*CRD_API)}
        return [name for name in wanted if name not in present]

    def _poll(self, timeout, interval, probe):
        """Call ``probe()`` (a list of what is still missing) until it is empty or ``timeout``
        seconds have passed; returns what was still missing at the end."""
        deadline = self.clock() + timeout
        while True:
            missing = probe()
            if not missing or self.clock() >= deadline:
                return missing
            self.sleep(interval)

    def _wait_established(self, timeout):
        # Custom resources of a CRD are refused until it is Established; unchanged CRDs were
        # Established by the run that applied them, so only a change is waited for.
        names = [crd["metadata"]["name"] for crd in self.plan["crds"]]
        missing = self._poll(timeout, 0.5, lambda: crds_not_established(self._list(*CRD_API), names))
        if missing:
            raise InstallError(
                "wait",
                f"these CRDs are not Established after {timeout} s (crd_timeout): {', '.join(missing)}. "
                "Look at them: kubectl get crd <name> -o yaml (status.conditions)",
                not_established=missing,
            )

    def _wait_available(self, timeout):
        wanted = self.plan["deployments"]
        namespaces = sorted({name.split("/", 1)[0] for name in wanted})

        def deployments():
            found = []
            for namespace in namespaces:
                found += self._list("apps/v1", "Deployment", namespace=namespace)
            return found

        problems = self._poll(timeout, 1.0, lambda: deployments_not_available(deployments(), wanted))
        if not problems:
            return
        pods = []
        for namespace in namespaces:
            pods += self._list("v1", "Pod", namespace=namespace)
        reasons = pod_problems(pods)
        where = " ".join(f"kubectl -n {namespace} get pods;" for namespace in namespaces)
        raise InstallError(
            "wait",
            f"the control plane is not ready after {timeout} s (wait_timeout): {'; '.join(problems)}."
            + (f" Pods: {'; '.join(reasons)}." if reasons else "")
            + f" Look at the pods: {where} kubectl -n {namespaces[0]} describe deployment <name>",
            not_ready=problems,
            pod_problems=reasons,
        )

    # ----------------------------------------------------------------------------------------
    # absent

    def absent(self, purge, wait_timeout):
        # Custom resources are deleted only while their CRD exists: without it the kind cannot
        # be resolved, and the objects went with the CRD anyway.
        missing_crds = self._missing_crds()
        custom = {id(obj) for obj in self.plan["custom"]}
        removal = [obj for obj in self.plan["removal"] if not (missing_crds and id(obj) in custom)]
        self._delete_all(removal, wait_timeout)
        if purge:
            self._delete_all(self.plan["crds"], wait_timeout)
            # Only the control-plane namespace: other namespaces the manifest puts objects in
            # (if any) may hold other workloads.
            namespaces = [ns for ns in self.plan["namespaces"] if ns["metadata"]["name"] == self.namespace]
            self._delete_all(namespaces, wait_timeout)

    def _delete_all(self, objects, timeout):
        gone_from = []
        for obj in objects:
            live = self._get(obj)
            if live is None:
                continue
            self.changes.append({"object": title(obj), "action": "delete", "before": readable(live), "after": {}})
            if self.check_mode:
                continue
            meta = obj["metadata"]
            try:
                self.client.delete(
                    obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), propagation_policy="Foreground"
                )
            except NotFoundError:
                continue
            except K8sError as exc:
                raise InstallError("apply", f"deleting {title(obj)} failed: {exc}") from exc
            gone_from.append(obj)
        left = self._poll(timeout, 1.0, lambda: [title(obj) for obj in gone_from if self._get(obj) is not None])
        if left:
            raise InstallError(
                "wait",
                f"these objects are still there {timeout} s after their deletion (wait_timeout): {', '.join(left)}. "
                "Look at their finalizers: kubectl get <kind> <name> -o yaml",
                not_deleted=left,
            )

    def _get(self, obj):
        meta = obj.get("metadata") or {}
        try:
            return self.client.get(obj["apiVersion"], obj["kind"], meta.get("name"), meta.get("namespace"))
        except NotFoundError:
            # The kind itself is not served (its CRD is gone): nothing of it is left.
            return None
        except K8sError as exc:
            raise InstallError("apply", str(exc)) from exc
