"""istio_sidecar_injection (and the cluster checks of istio_verify) against the lab cluster.

Real kube-apiserver, controller-manager and scheduler built from Go modules, pods simulated by
kwok (so there is no sidecar process: the checks read pod specs and statuses), the real istioctl
built from istio.io/istio generating the demo profile and doing kube-inject. The module runs
through ``ansible`` with localhost as the istio_controller.

Note on automatic injection in the lab: the demo profile's webhook (failurePolicy Fail) points at
istiod, whose pod is simulated, so pods created in a labelled namespace are refused by the API
server. The namespace-mode tests therefore check labels, pods_needing_restart and restarts, not
webhook-injected pods; manual injection is proven with the real kube-inject.
"""

import pytest
import yaml

pytestmark = pytest.mark.lab

SEED_NGINX = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14-alpine", "ports": [{"containerPort": 80}]}]},
        },
    },
}


def containers(deployment):
    spec = deployment["spec"]["template"]["spec"]
    return [c["name"] for c in spec.get("containers", [])], [c["name"] for c in spec.get("initContainers", [])]


def inject(mesh, check=False, **args):
    base = {"mode": "manifest", "istioctl_path": mesh.istioctl, "kubeconfig": mesh.kubeconfig}
    base.update(args)
    return mesh.ansible.module("meshops.istio.istio_sidecar_injection", base, check=check, diff=True)


def label(mesh, check=False, **args):
    base = {"mode": "namespace", "kubeconfig": mesh.kubeconfig}
    base.update(args)
    return mesh.ansible.module("meshops.istio.istio_sidecar_injection", base, check=check, diff=True)


def verify(mesh, **args):
    base = {"kubeconfig": mesh.kubeconfig, "istioctl_path": mesh.istioctl}
    base.update(args)
    return mesh.ansible.module("meshops.istio.istio_verify", base)


def test_offline_injection_with_captured_configuration(mesh, tmp_path):
    # The cluster's configuration captured into files (istioctl kube-inject --help's recipe),
    # then used with injector_config: files - no cluster access for the injection itself.
    injector = mesh.kubectl.json("get", "configmap", "istio-sidecar-injector", "-n", "istio-system")["data"]
    mesh_config = mesh.kubectl.json("get", "configmap", "istio", "-n", "istio-system")["data"]["mesh"]
    (tmp_path / "inject.yaml").write_text(injector["config"])
    (tmp_path / "values.json").write_text(injector["values"])
    (tmp_path / "mesh.yaml").write_text(mesh_config)
    args = {
        "definition": yaml.safe_dump(SEED_NGINX),
        "injector_config": "files",
        "inject_config_file": str(tmp_path / "inject.yaml"),
        "mesh_config_file": str(tmp_path / "mesh.yaml"),
        "values_file": str(tmp_path / "values.json"),
        "check_version": False,
    }
    result = inject(mesh, **args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    (deployment,) = result["resources"]
    names, init_names = containers(deployment)
    assert "nginx" in names
    assert "istio-proxy" in names or "istio-proxy" in init_names
    assert "istio-init" in init_names or "istio-validation" in init_names
    assert result["injection"][0]["injected"] is True
    # Injecting the injected workload changes nothing.
    again = inject(mesh, **{**args, "definition": yaml.safe_dump(deployment)})
    assert again["resources"] == result["resources"]


def test_manifest_apply_four_way_then_sidecars_ready(mesh, namespace):
    args = {"definition": [SEED_NGINX], "namespace": namespace, "apply": True}
    predicted = inject(mesh, check=True, **args)
    assert not predicted.get("failed"), predicted.get("msg")
    assert predicted["changed"] is True and predicted["applied"] == [
        {"object": f"Deployment {namespace}/nginx", "action": "created"}
    ]
    assert not mesh.kubectl.exists("get", "deployment", "nginx", "-n", namespace)

    applied = inject(mesh, **args)
    assert applied["changed"] is True
    live = mesh.kubectl.json("get", "deployment", "nginx", "-n", namespace)
    names, init_names = containers(live)
    assert "istio-proxy" in names + init_names and "istio-init" in init_names

    assert inject(mesh, check=True, **args)["changed"] is False
    assert inject(mesh, **args)["changed"] is False
    # The live (injected) object fed back: unchanged as well.
    fed_back = inject(mesh, **{**args, "definition": [live]})
    assert fed_back["changed"] is False, (fed_back.get("applied"), fed_back.get("diff"), fed_back.get("msg"))

    mesh.kubectl("rollout", "status", "deployment/nginx", "-n", namespace, "--timeout=120s")
    result = verify(mesh, checks=["sidecars"], sidecars={"namespaces": [namespace]})
    assert result["passed"] is True, result.get("msg")
    (pod_state,) = result["report"]["sidecars"]["pods"].values()
    assert pod_state["ready"] == "2/2"  # the tutorial's READY 2/2


def test_sidecars_check_names_the_pod_without_sidecar(mesh, namespace):
    inject(mesh, definition=[SEED_NGINX], namespace=namespace, apply=True)
    plain = dict(SEED_NGINX, metadata={"name": "plain", "labels": {"app": "plain"}})
    plain["spec"] = yaml.safe_load(yaml.safe_dump(SEED_NGINX["spec"]).replace("nginx", "plain"))
    mesh.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(plain))
    mesh.kubectl("rollout", "status", "deployment/plain", "-n", namespace, "--timeout=120s")
    mesh.kubectl("rollout", "status", "deployment/nginx", "-n", namespace, "--timeout=120s")
    result = verify(mesh, checks=["sidecars"], sidecars={"namespaces": [namespace]})
    assert result["failed"] is True
    assert f"pod {namespace}/plain-" in result["msg"] and "has no istio-proxy container" in result["msg"]
    assert "nginx-" not in result["msg"]


def test_manifest_refuses_host_network_and_missing_namespace(mesh, namespace):
    host = yaml.safe_load(yaml.safe_dump(SEED_NGINX))
    host["spec"]["template"]["spec"]["hostNetwork"] = True
    result = inject(mesh, definition=[host], namespace=namespace, apply=True)
    assert result["failed"] is True
    assert f"Deployment {namespace}/nginx uses hostNetwork: true" in result["msg"]
    assert not mesh.kubectl.exists("get", "deployment", "nginx", "-n", namespace)

    result = inject(mesh, definition=[SEED_NGINX], namespace="no-such-namespace", apply=True)
    assert result["failed"] is True
    assert "namespace no-such-namespace not found" in result["msg"]


def test_version_mismatch_is_refused_and_reported(mesh, namespace):
    # istiod's version is read from its image tag (main-branch charts are labelled 1.0.0): run an
    # istiod image of another minor release and the lab's istioctl no longer matches it.
    istiod = mesh.kubectl.json("get", "deployment", "istiod", "-n", "istio-system")
    (container,) = [c for c in istiod["spec"]["template"]["spec"]["containers"] if c["name"] == "discovery"]
    original = container["image"]
    older = original.rsplit(":", 1)[0] + ":1.24.2"
    mesh.kubectl("set", "image", "deployment/istiod", f"discovery={older}", "-n", "istio-system")
    try:
        result = inject(mesh, definition=[SEED_NGINX], namespace=namespace, apply=True)
        assert result.get("failed") is True, result
        assert "does not match the control plane (istiod 1.24.2)" in result["msg"]
        assert not mesh.kubectl.exists("get", "deployment", "nginx", "-n", namespace)
        check = verify(mesh, checks=["control_plane"])
        assert check.get("failed") is True and "does not match the control plane" in check["msg"]
    finally:
        mesh.kubectl("set", "image", "deployment/istiod", f"discovery={original}", "-n", "istio-system")
        mesh.kubectl("rollout", "status", "deployment/istiod", "-n", "istio-system", "--timeout=120s")


def test_control_plane_check_passes_then_fails_on_scaled_down_istiod(mesh):
    result = verify(mesh, checks=["control_plane"], control_plane={"deployments": ["istiod", "istio-ingressgateway"]})
    assert result["passed"] is True, result.get("msg")
    assert result["report"]["control_plane"]["deployments"]["istiod"]["available"] is True
    mesh.kubectl("scale", "deployment", "istiod", "-n", "istio-system", "--replicas=0")
    try:
        result = verify(mesh, checks=["control_plane"])
        assert result["failed"] is True
        assert "Deployment istio-system/istiod is scaled to 0 replicas" in result["msg"]
    finally:
        mesh.kubectl("scale", "deployment", "istiod", "-n", "istio-system", "--replicas=1")
        mesh.kubectl("rollout", "status", "deployment/istiod", "-n", "istio-system", "--timeout=120s")


def test_namespace_mode_four_way_restart_and_revision(mesh, namespace):
    # A workload that exists before injection is enabled.
    mesh.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(SEED_NGINX))
    mesh.kubectl("rollout", "status", "deployment/nginx", "-n", namespace, "--timeout=120s")

    predicted = label(mesh, check=True, namespaces=[namespace])
    assert predicted["changed"] is True, predicted.get("msg")
    assert predicted["diff"]["after"]["labels"][namespace]["istio-injection"] == "enabled"
    assert "istio-injection" not in mesh.kubectl.json("get", "namespace", namespace)["metadata"].get("labels", {})

    applied = label(mesh, namespaces=[namespace])
    assert applied["changed"] is True
    assert mesh.kubectl.json("get", "namespace", namespace)["metadata"]["labels"]["istio-injection"] == "enabled"
    (pending,) = applied["pods_needing_restart"]
    assert (pending["owner_kind"], pending["owner"], pending["restartable"]) == ("Deployment", "nginx", True)

    assert label(mesh, check=True, namespaces=[namespace])["changed"] is False
    assert label(mesh, namespaces=[namespace])["changed"] is False

    # A revision without an injector is refused before anything changes.
    refused = label(mesh, namespaces=[namespace], revision="canary")
    assert refused["failed"] is True and "no sidecar injector for revision 'canary'" in refused["msg"]
    assert mesh.kubectl.json("get", "namespace", namespace)["metadata"]["labels"]["istio-injection"] == "enabled"

    # restart rolls the Deployment once (kubectl rollout restart's annotation); asking again is a no-op.
    restarted = label(mesh, namespaces=[namespace], restart=True)
    assert restarted["changed"] is True
    assert restarted["restarted"] == [{"namespace": namespace, "kind": "Deployment", "name": "nginx"}]
    template = mesh.kubectl.json("get", "deployment", "nginx", "-n", namespace)["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    assert label(mesh, namespaces=[namespace], restart=True)["changed"] is False

    # Disable: the label goes, and a second run changes nothing.
    assert label(mesh, namespaces=[namespace], state="disabled")["changed"] is True
    assert "istio-injection" not in mesh.kubectl.json("get", "namespace", namespace)["metadata"].get("labels", {})
    assert label(mesh, namespaces=[namespace], state="disabled")["changed"] is False


def test_namespace_mode_missing_namespace(mesh):
    result = label(mesh, namespaces=["no-such-namespace"])
    assert result["failed"] is True
    assert "namespace no-such-namespace not found" in result["msg"]


def test_http_check_discovers_the_ingress_node_port(mesh):
    # The tutorial's INGRESS_HOST (hostIP of the ingress gateway pod) and INGRESS_PORT (node port
    # of the http2 port). The lab has no data plane, so nothing answers there: the failure must
    # name exactly that URL.
    service = mesh.kubectl.json("get", "service", "istio-ingressgateway", "-n", "istio-system")
    (node_port,) = [p["nodePort"] for p in service["spec"]["ports"] if p["name"] == "http2"]
    pods = mesh.kubectl.json("get", "pods", "-n", "istio-system", "-l", "istio=ingressgateway")["items"]
    host_ip = next(p["status"]["hostIP"] for p in pods if p["status"].get("phase") == "Running")
    result = verify(mesh, checks=["http"], http={"timeout": 2})
    assert result.get("failed") is True
    assert f"GET http://{host_ip}:{node_port}/productpage" in result["msg"]
    assert result["report"]["http"]["url"] == f"http://{host_ip}:{node_port}/productpage"
