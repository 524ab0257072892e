"""The real istioctl (built from istio.io/istio) against the real lab control plane.

A private lab (its own state directory and ports) is started for this module, so the demo
profile is applied to an empty cluster and nothing of it is left for other tests.
"""

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lab.cluster.cluster import Lab
from lab.cluster.fixtures import LabCluster

pytestmark = pytest.mark.lab

HERE = Path(__file__).resolve().parent
ISTIO_NS = "istio-system"


@pytest.fixture(scope="module")
def fresh_lab(tmp_path_factory, lab_istioctl):
    from lab.cluster.bundle import make_bundle

    lab = Lab(tmp_path_factory.mktemp("istio-lab") / "state", echo=False)
    lab.up()
    try:
        yield LabCluster(lab, lab.kubeconfig_path(), True, lab.status(), make_bundle(echo=False))
    finally:
        lab.down()


@pytest.fixture(scope="module")
def demo_manifests(fresh_lab, tmp_path_factory):
    """``istioctl manifest generate --set profile=demo``: (all documents, path of the YAML)."""
    proc = subprocess.run(
        [str(fresh_lab.istioctl), "manifest", "generate", "--set", "profile=demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env=fresh_lab.env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    path = tmp_path_factory.mktemp("demo") / "demo.yaml"
    path.write_text(proc.stdout)
    return docs, path


@pytest.fixture(scope="module")
def demo_installed(fresh_lab, demo_manifests, tmp_path_factory):
    docs = demo_manifests[0]
    d = tmp_path_factory.mktemp("apply")
    crds = [x for x in docs if x["kind"] == "CustomResourceDefinition"]
    rest = [x for x in docs if x["kind"] != "CustomResourceDefinition"]
    (d / "crds.yaml").write_text(yaml.safe_dump_all(crds))
    (d / "rest.yaml").write_text(yaml.safe_dump_all(rest))
    k = fresh_lab.kubectl
    if k("get", "namespace", ISTIO_NS, check=False).returncode != 0:
        k("create", "namespace", ISTIO_NS)
    k("apply", "--server-side", "-f", str(d / "crds.yaml"))
    names = [f"crd/{c['metadata']['name']}" for c in crds]
    k("wait", "--for=condition=Established", "--timeout=120s", *names)
    k("apply", "--server-side", "-f", str(d / "rest.yaml"), timeout=300)
    return {"crds": crds, "rest": rest}


def test_demo_profile_has_the_expected_shape(demo_manifests):
    docs = demo_manifests[0]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for dep in ("istiod", "istio-ingressgateway", "istio-egressgateway"):
        assert ("Deployment", dep) in kinds
    assert ("ConfigMap", "istio-sidecar-injector") in kinds
    assert sum(1 for d in docs if d["kind"] == "CustomResourceDefinition") >= 10


def test_demo_profile_applies_crds_established_deployments_available(fresh_lab, demo_installed):
    k = fresh_lab.kubectl
    for crd in demo_installed["crds"]:
        obj = fresh_lab.kubectl_json("get", "crd", crd["metadata"]["name"])
        cond = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert cond.get("Established") == "True", crd["metadata"]["name"]
    deployments = [x["metadata"]["name"] for x in demo_installed["rest"] if x["kind"] == "Deployment"]
    assert deployments
    k(
        "-n",
        ISTIO_NS,
        "wait",
        "--for=condition=Available",
        "--timeout=180s",
        *[f"deployment/{n}" for n in deployments],
        timeout=200,
    )
    pods = fresh_lab.kubectl_json("-n", ISTIO_NS, "get", "pods")["items"]
    assert {p["metadata"]["labels"].get("app") for p in pods} >= {"istiod", "istio-ingressgateway"}
    assert all(p["status"]["phase"] == "Running" for p in pods)
    # a custom resource of an Istio CRD is accepted by the real API server (schema validation)
    gw = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "lab-gw", "namespace": ISTIO_NS},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    }
    k("apply", "-f", "-", input=json.dumps(gw))
    bad = dict(gw, metadata={"name": "lab-gw-bad", "namespace": ISTIO_NS}, spec={"servers": "not-a-list"})
    assert k("apply", "-f", "-", input=json.dumps(bad), check=False).returncode != 0


def _injector_files(docs, d: Path) -> dict[str, Path]:
    by = {(x["kind"], x["metadata"]["name"]): x for x in docs}
    inj = by[("ConfigMap", "istio-sidecar-injector")]["data"]
    mesh = by[("ConfigMap", "istio")]["data"]["mesh"]
    files = {"inject": d / "inject-config.yaml", "values": d / "values.json", "mesh": d / "mesh.yaml"}
    files["inject"].write_text(inj["config"])
    files["values"].write_text(inj["values"])
    files["mesh"].write_text(mesh)
    return files


def test_kube_inject_adds_istio_init_and_istio_proxy(fresh_lab, demo_manifests, demo_installed, tmp_path):
    docs = demo_manifests[0]
    files = _injector_files(docs, tmp_path)
    seed = HERE / "data" / "nginx-deployment.yaml"
    proc = subprocess.run(
        [
            str(fresh_lab.istioctl),
            "kube-inject",
            "-f",
            str(seed),
            "--injectConfigFile",
            str(files["inject"]),
            "--valuesFile",
            str(files["values"]),
            "--meshConfigFile",
            str(files["mesh"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=fresh_lab.env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    injected = next(d for d in yaml.safe_load_all(proc.stdout) if d and d.get("kind") == "Deployment")
    spec = injected["spec"]["template"]["spec"]
    assert [c["name"] for c in spec.get("initContainers", [])] == ["istio-init"]
    assert {c["name"] for c in spec["containers"]} == {"nginx", "istio-proxy"}
    init_args = " ".join(spec["initContainers"][0]["args"])
    assert "15001" in init_args and "15006" in init_args and "1337" in init_args
    assert "sidecar.istio.io/status" in injected["spec"]["template"]["metadata"]["annotations"]

    # the original (seed) manifest has neither
    original = yaml.safe_load(seed.read_text())
    assert "initContainers" not in original["spec"]["template"]["spec"]

    # and the injected Deployment runs in the lab: 2/2 containers ready on a simulated node
    ns = f"jiuxi-{int(time.time())}"
    fresh_lab.kubectl("create", "namespace", ns)
    fresh_lab.kubectl("-n", ns, "apply", "-f", "-", input=proc.stdout)
    fresh_lab.kubectl("-n", ns, "wait", "--for=condition=Available", "--timeout=120s", "deployment/nginx")
    pod = fresh_lab.kubectl_json("-n", ns, "get", "pods", "-l", "app=nginx")["items"][0]
    statuses = {c["name"]: c["ready"] for c in pod["status"]["containerStatuses"]}
    assert statuses == {"nginx": True, "istio-proxy": True}


def test_calls_into_the_simulated_cluster_network_fail_locally(fresh_lab, demo_installed):
    """Pods serve nothing: the injector webhook (failurePolicy Fail) and the service proxy are
    refused by the API server's egress selector at once, not routed off this machine."""
    ns = f"autoinject-{int(time.time())}"
    fresh_lab.kubectl("create", "namespace", ns)
    fresh_lab.kubectl("label", "namespace", ns, "istio-injection=enabled")
    t = time.monotonic()
    res = fresh_lab.kubectl("-n", ns, "run", "p1", "--image=nginx", check=False)
    assert res.returncode != 0
    assert "sidecar-injector.istio.io" in res.stderr and "no-cluster-network.sock" in res.stderr
    assert time.monotonic() - t < 8  # no webhook timeout (10 s): refused locally
    res = fresh_lab.kubectl("get", "--raw", f"/api/v1/namespaces/{ISTIO_NS}/services/istiod:15014/proxy/", check=False)
    assert res.returncode != 0 and "no-cluster-network.sock" in res.stderr
