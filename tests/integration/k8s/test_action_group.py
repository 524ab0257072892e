"""module_defaults for group/meshops.istio.k8s reach meshops.istio's and kubernetes.core's modules.

The kubeconfig set once in module_defaults names a loopback stand-in API server that answers 401
to everything (a real API server is not needed to see which server a module talked to): every
module in the play must have sent its requests there, and none may fall back to another
kubeconfig (K8S_AUTH_KUBECONFIG points at a file that does not exist).
"""

import os
import subprocess
import sys

import yaml

from tests.support.loopback_api import UnauthorizedServer

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

MODULE_TASKS = {
    "meshops.istio.istio_verify": {"checks": ["control_plane"], "control_plane": {"compare_istioctl_version": False}},
    "meshops.istio.istio_sidecar_injection": {"mode": "namespace", "namespaces": ["jiuxi"]},
    # The API is read before istioctl runs: none is needed to reach the stand-in.
    "meshops.istio.istio_install": {"istioctl": "/nonexistent/istioctl", "manifest_cache_dir": ""},
    "kubernetes.core.k8s_info": {"kind": "Namespace"},
    "kubernetes.core.k8s": {"kind": "Namespace", "name": "jiuxi", "state": "present"},
}


def test_one_module_defaults_entry_sets_the_cluster_for_both_collections(tmp_path):
    with UnauthorizedServer() as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "loopback",
                    "clusters": [{"name": "loopback", "cluster": {"server": server.url}}],
                    "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "u"}}],
                    "users": [{"name": "u", "user": {"token": "group-test"}}],
                }
            )
        )
        tasks = []
        for index, (module, options) in enumerate(MODULE_TASKS.items()):
            tasks.append({"name": module, module: options, "register": f"r{index}", "ignore_errors": True})
        tasks.append(
            {
                "name": "Every module failed on the stand-in server's 401",
                "ansible.builtin.assert": {
                    "that": [f"r{index} is failed" for index in range(len(MODULE_TASKS))]
                    + [f"'401' in r{index}.msg or 'Unauthorized' in r{index}.msg" for index in range(len(MODULE_TASKS))]
                },
            }
        )
        playbook = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {"group/meshops.istio.k8s": {"kubeconfig": str(kubeconfig)}},
                "tasks": tasks,
            }
        ]
        (tmp_path / "playbook.yml").write_text(yaml.safe_dump(playbook))
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_LOCALHOST_WARNING="0",
            K8S_AUTH_KUBECONFIG=str(tmp_path / "absent"),
        )
        completed = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                str(tmp_path / "playbook.yml"),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        tokens = {
            value
            for _method, _path, headers in server.requests
            for name, value in headers
            if name.lower() == "authorization"
        }
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert tokens == {"Bearer group-test"}
    assert len(server.requests) >= len(MODULE_TASKS)
