"""istio_control_plane and istio_ingress against the lab cluster: a real kube-apiserver,
controller-manager and scheduler built from Go modules, pods simulated by kwok, and the real
istioctl built from the istio.io/istio module generating the manifests.

ansible-playbook runs from the repository root with an inventory whose istio_controller is
localhost (connection local). The host is not modified: istioctl_path points at the lab's built
binary, the kubeconfig is the lab's. The tests run in file order and share the cluster: bad
input first (nothing installed yet), then install, NodePort, uninstall.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.k8s.rollout import condition
from ansible_collections.meshops.istio.plugins.module_utils.mesh import manifest

pytestmark = pytest.mark.lab

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PROFILE = "demo"
NAMESPACE = "istio-system"


# --------------------------------------------------------------------------------------------
# Helpers


def _kubeconfig_of(cluster):
    for attr in ("kubeconfig", "kubeconfig_path"):
        value = getattr(cluster, attr, None)
        if callable(value):
            value = value()
        if value:
            return str(value)
    if isinstance(cluster, dict) and cluster.get("kubeconfig"):
        return str(cluster["kubeconfig"])
    raise AssertionError(f"lab_cluster fixture gives no kubeconfig: {cluster!r}")


def _istioctl_of(cluster):
    for attr in ("istioctl", "istioctl_path"):
        value = getattr(cluster, attr, None)
        if callable(value):
            value = value()
        if value:
            return str(value)
    if isinstance(cluster, dict) and cluster.get("istioctl"):
        return str(cluster["istioctl"])
    raise AssertionError(f"lab_cluster fixture gives no istioctl binary: {cluster!r}")


def ref(obj):
    """kubectl arguments naming one object: Kind.group name [-n namespace]."""
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    args = [obj["kind"] + ("." + group if group else ""), obj["metadata"]["name"]]
    if obj["metadata"].get("namespace"):
        args += ["-n", obj["metadata"]["namespace"]]
    return args


class Mesh:
    """Runs the playbooks and kubectl against the lab."""

    def __init__(self, kubeconfig, istioctl, workdir):
        self.kubeconfig = kubeconfig
        self.istioctl = istioctl
        self.workdir = workdir
        self.inventory = os.path.join(workdir, "hosts.yml")
        self.write_inventory()

    def write_inventory(self, **overrides):
        controller = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "istio_kubeconfig": self.kubeconfig,
            "istioctl_path": self.istioctl,
            # kwok marks pods Ready quickly; keep failures quick too.
            "istio_control_plane_wait_timeout": 240,
            "istio_ingress_wait_timeout": 120,
            # istioctl's manifests are kept here, not in the home directory of the test's user.
            "istio_control_plane_manifest_cache_dir": os.path.join(self.workdir, "istio-manifests"),
        }
        controller.update(overrides)
        inventory = {"all": {"children": {"istio_controller": {"hosts": {"localhost": controller}}}}}
        path = os.path.join(self.workdir, "hosts.yml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(inventory, handle)
        return path

    def play(self, playbook, *args, inventory=None, **extra_vars):
        """(rc, changed count, failure messages, facts set, diffs) for localhost."""
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections"),
            K8S_AUTH_KUBECONFIG="/nonexistent",  # only the inventory's kubeconfig may be used
        )
        cmd = ["ansible-playbook", "-i", inventory or self.inventory, f"playbooks/{playbook}.yml", *args]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
        try:
            out = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"ansible-playbook printed no JSON:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        failures, facts, diffs = [], {}, []
        for play in out["plays"]:
            for task in play["tasks"]:
                for host, res in task["hosts"].items():
                    if res.get("failed"):
                        failures.append(f"{host}: {res.get('msg', '')}")
                res = task["hosts"].get("localhost")
                if not res:
                    continue
                facts.update(res.get("ansible_facts") or {})
                if res.get("changed"):
                    diffs.append(("changed: " + task["task"]["name"], res.get("msg", "")))
                if res.get("diff"):
                    diffs.append((task["task"]["name"], res["diff"]))
                for item in res.get("results") or []:
                    if isinstance(item, dict) and item.get("diff"):
                        diffs.append((task["task"]["name"], item["diff"]))
        stats = out["stats"].get("localhost", {})
        return proc.returncode, stats.get("changed", 0), failures, facts, diffs

    def verify_control_plane(self):
        """The istio_verify ``control_plane`` check's result, run as an ad-hoc module."""
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
        env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", K8S_AUTH_KUBECONFIG="/nonexistent")
        args = {"checks": ["control_plane"], "kubeconfig": self.kubeconfig, "istioctl_path": self.istioctl}
        cmd = ["ansible", "istio_controller", "-i", self.inventory, "-m", "meshops.istio.istio_verify"]
        proc = subprocess.run(
            [*cmd, "-a", json.dumps(args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
        return result["report"]["control_plane"]

    def four_way(self, playbook, **extra_vars):
        seen = []
        for args in (["--check", "--diff"], [], ["--check", "--diff"], []):
            rc, changed, failures, _facts, _diffs = self.play(playbook, *args, **extra_vars)
            assert rc == 0, failures
            seen.append(changed)
        assert seen[0] > 0, f"check mode predicted no change: {seen}"
        assert seen[1] > 0, f"apply changed nothing: {seen}"
        assert seen[2] == 0, f"check mode after apply still predicts a change: {seen}"
        assert seen[3] == 0, f"second apply changed something: {seen}"
        return seen

    def kubectl(self, *args, check=True):
        kubectl = shutil.which("kubectl") or "kubectl"
        proc = subprocess.run(
            [kubectl, "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def get(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def manifest_objects(self, **settings):
        cmd = [self.istioctl, "manifest", "generate", "--set", f"profile={PROFILE}"]
        for key, value in settings.items():
            cmd += ["--set", f"{key}={value}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    def planned_objects(self, **settings):
        """CRDs and objects as the role plans them (namespaces filled in)."""
        text = yaml.safe_dump_all(self.manifest_objects(**settings))
        plan = manifest.plan_manifest(text, NAMESPACE)
        return plan["crds"] + plan["objects"]

    def namespaces(self):
        return {n["metadata"]["name"] for n in self.get("namespaces")["items"]}


@pytest.fixture(scope="module")
def mesh(lab_cluster, tmp_path_factory):
    m = Mesh(_kubeconfig_of(lab_cluster), _istioctl_of(lab_cluster), str(tmp_path_factory.mktemp("mesh")))
    if NAMESPACE in m.namespaces():
        # A shared session lab where another test left a control plane: start from none.
        rc, _changed, failures, _f, _d = m.play("control_plane", istio_control_plane_state="absent", istio_purge=True)
        assert rc == 0, failures
    assert NAMESPACE not in m.namespaces(), "the lab cluster must start without a control plane"
    yield m
    # Leave the shared cluster as we found it.
    m.play("control_plane", istio_control_plane_state="absent", istio_purge=True)


def _resource_versions(mesh):
    """Every object in the cluster that the profile could touch, with its resourceVersion.
    Namespaces that earlier tests left terminating are left out with what is in them: the
    namespace controller removes them while these tests run."""
    found = {}
    terminating = set()
    for kind in ("namespaces", "crd", "clusterroles", "validatingwebhookconfigurations"):
        for obj in mesh.get(kind)["items"]:
            if kind == "namespaces" and obj["metadata"].get("deletionTimestamp"):
                terminating.add(obj["metadata"]["name"])
                continue
            found[(kind, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
    for kind in ("services", "deployments", "configmaps", "serviceaccounts"):
        for obj in mesh.get(kind, "-A")["items"]:
            meta = obj["metadata"]
            if meta["namespace"] not in terminating:
                found[(kind, meta["namespace"], meta["name"])] = meta["resourceVersion"]
    return found


# --------------------------------------------------------------------------------------------
# Bad input: each fails before any change, naming the variable.


def test_unknown_profile_fails_before_any_change(mesh):
    before = _resource_versions(mesh)
    rc, changed, failures, _f, _d = mesh.play("control_plane", istio_control_plane_profile="demoo")
    assert rc != 0 and changed == 0
    msg = " ".join(failures)
    assert "istio_control_plane_profile" in msg and "demoo" in msg and "demo" in msg.replace("demoo", "")
    assert _resource_versions(mesh) == before


def test_missing_kubeconfig_fails_naming_the_variable(mesh):
    rc, changed, failures, _f, _d = mesh.play("control_plane", istio_kubeconfig="/nonexistent/kubeconfig")
    assert rc != 0 and changed == 0
    assert "istio_control_plane_kubeconfig" in " ".join(failures)
    assert "/nonexistent/kubeconfig" in " ".join(failures)


def _kubeconfig_variant(mesh, name, mutate):
    with open(mesh.kubeconfig, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    mutate(config)
    path = os.path.join(mesh.workdir, name)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle)
    return path


def test_unreachable_api_server_fails_before_any_change(mesh):
    def unreachable(config):
        for cluster in config["clusters"]:
            # A loopback port nothing listens on (port 1 is privileged and unused here).
            cluster["cluster"]["server"] = "https://127.0.0.1:1"

    path = _kubeconfig_variant(mesh, "unreachable.kubeconfig", unreachable)
    before = _resource_versions(mesh)
    for playbook in ("control_plane", "ingress"):
        rc, changed, failures, _f, _d = mesh.play(playbook, istio_kubeconfig=path)
        assert rc != 0 and changed == 0
        msg = " ".join(failures)
        assert "Cannot use the Kubernetes API" in msg and path in msg, msg
    assert _resource_versions(mesh) == before


def test_unauthorised_credentials_fail_before_any_change(mesh):
    def anonymous(config):
        for user in config["users"]:
            user["user"] = {"token": "not-a-valid-token"}

    path = _kubeconfig_variant(mesh, "unauthorised.kubeconfig", anonymous)
    before = _resource_versions(mesh)
    rc, changed, failures, _f, _d = mesh.play("control_plane", istio_kubeconfig=path)
    assert rc != 0 and changed == 0
    msg = " ".join(failures)
    assert "Cannot use the Kubernetes API" in msg and ("401" in msg or "Unauthorized" in msg), msg
    assert _resource_versions(mesh) == before


def test_a_structured_set_value_fails_before_any_change(mesh):
    before = _resource_versions(mesh)
    rc, changed, failures, _f, _d = mesh.play(
        "control_plane", istio_control_plane_set={"values.global.meshNetworks": {"network1": {}}}
    )
    assert rc != 0 and changed == 0
    msg = " ".join(failures)
    assert "istio_control_plane_set" in msg and "mapping of istioctl value paths to scalars" in msg, msg
    assert _resource_versions(mesh) == before


def test_missing_istioctl_fails_naming_the_variable(mesh):
    rc, changed, failures, _f, _d = mesh.play("control_plane", istioctl_path="/nonexistent/istioctl")
    assert rc != 0 and changed == 0
    assert "istioctl_path" in " ".join(failures)


def test_ingress_without_control_plane_says_what_to_do(mesh):
    rc, changed, failures, _f, _d = mesh.play("ingress")
    assert rc != 0 and changed == 0
    assert "istio_ingress_service" in " ".join(failures)


# --------------------------------------------------------------------------------------------
# Install


def test_profile_install_four_way(mesh):
    mesh.four_way("control_plane")
    # istioctl ran once, for the first of the four runs; the other three read its manifests.
    assert len(os.listdir(os.path.join(mesh.workdir, "istio-manifests"))) == 1
    wanted = [o for o in mesh.manifest_objects() if o["kind"] == "Deployment"]
    assert wanted, "the demo profile has Deployments"
    for dep in wanted:
        got = mesh.get("deployment", "-n", dep["metadata"]["namespace"], dep["metadata"]["name"])
        conditions = {c["type"]: c["status"] for c in got["status"].get("conditions", [])}
        assert conditions.get("Available") == "True", got["status"]
    for crd in (o for o in mesh.manifest_objects() if o["kind"] == "CustomResourceDefinition"):
        got = mesh.get("crd", crd["metadata"]["name"])
        conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        assert conditions.get("Established") == "True"


def test_a_control_plane_that_cannot_start_fails_the_wait_with_the_pods_reasons(mesh):
    # istiod asks for a node no one has: the real scheduler leaves its new pod Pending, and the
    # failure says so (the timeout's variable, the Deployment, the scheduler's reason).
    rc, changed, failures, _f, _d = mesh.play(
        "control_plane",
        istio_control_plane_set={"values.pilot.nodeSelector.meshops-test-node": "nowhere"},
        istio_control_plane_wait_timeout=15,
    )
    assert rc != 0
    msg = " ".join(failures)
    assert "not ready after 15 s (istio_control_plane_wait_timeout)" in msg, msg
    assert "istio-system/istiod" in msg and "not scheduled" in msg, msg
    # The old istiod still serves: istio_verify warns that the rollout is under way...
    result = mesh.verify_control_plane()
    assert result["passed"] is True, result
    assert any("istio-system/istiod: rollout in progress" in w for w in result["warnings"]), result
    assert result["deployments"]["istiod"]["rollout_pending"], result
    # ...and fails once the Deployment controller gives up on it (its progress deadline passed).
    mesh.kubectl("-n", NAMESPACE, "patch", "deployment", "istiod", "-p", '{"spec":{"progressDeadlineSeconds":1}}')
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            progressing = condition(mesh.get("deployment", "-n", NAMESPACE, "istiod"), "Progressing") or {}
            if progressing.get("reason") == "ProgressDeadlineExceeded":
                break
            time.sleep(1)
        result = mesh.verify_control_plane()
        assert result["passed"] is False, result
        assert any("istio-system/istiod: rollout stuck" in f for f in result["failures"]), result
    finally:
        # 600 s is the API's default, which the profile's manifest leaves in place.
        mesh.kubectl("-n", NAMESPACE, "patch", "deployment", "istiod", "-p", '{"spec":{"progressDeadlineSeconds":600}}')
    # The profile as it was: the next run puts it back and waits until it is Available again.
    rc, changed, failures, _f, _d = mesh.play("control_plane")
    assert rc == 0 and changed > 0, failures
    assert mesh.get("deployment", "-n", NAMESPACE, "istiod")["spec"]["template"]["spec"].get("nodeSelector") in (
        None,
        {},
    )


def test_every_manifest_object_exists_and_is_managed_by_the_role(mesh):
    for obj in mesh.planned_objects():
        got = json.loads(mesh.kubectl("get", *ref(obj), "-o", "json", "--show-managed-fields").stdout)
        managers = {m["manager"] for m in got["metadata"].get("managedFields", [])}
        assert "meshops-istio" in managers, (obj["kind"], obj["metadata"]["name"], managers)


def test_diff_shows_drift_and_apply_repairs_it(mesh):
    # Someone edits a field the manifest sets: check mode + diff must report it, apply must
    # restore it, and then nothing is left to change.
    mesh.kubectl("-n", NAMESPACE, "scale", "deployment", "istiod", "--replicas=3")
    rc, changed, failures, _facts, diffs = mesh.play("control_plane", "--check", "--diff")
    assert rc == 0, failures
    assert changed > 0
    assert any("replicas" in json.dumps(d) for _name, d in diffs), diffs
    rc, changed, failures, _facts, _diffs = mesh.play("control_plane")
    assert rc == 0 and changed > 0, failures
    assert mesh.get("deployment", "-n", NAMESPACE, "istiod")["spec"]["replicas"] == 1
    rc, changed, failures, _facts, _diffs = mesh.play("control_plane", "--check")
    assert rc == 0 and changed == 0, failures


# --------------------------------------------------------------------------------------------
# Ingress gateway as NodePort


def _gateway_service(mesh):
    return mesh.get("service", "-n", NAMESPACE, "istio-ingressgateway")


def test_ingress_type_written_at_install(mesh):
    # The control plane wrote type NodePort into the manifest (istio_ingress_service_type), so the
    # ingress role has nothing left to change for the type alone.
    assert _gateway_service(mesh)["spec"]["type"] == "NodePort"
    rc, changed, failures, _f, _d = mesh.play("ingress")
    assert rc == 0 and changed == 0, failures


def test_ingress_patch_from_load_balancer_four_way(mesh):
    # The tutorial's situation: a LoadBalancer gateway (as `istioctl install` leaves it) patched
    # to NodePort.
    mesh.kubectl("-n", NAMESPACE, "patch", "service", "istio-ingressgateway", "-p", '{"spec":{"type":"LoadBalancer"}}')
    assert _gateway_service(mesh)["spec"]["type"] == "LoadBalancer"
    mesh.four_way("ingress")
    assert _gateway_service(mesh)["spec"]["type"] == "NodePort"


def test_fixed_node_ports_four_way_and_facts_equal_kubectl(mesh):
    ports = {"http2": 30080, "https": 30443}
    mesh.four_way("ingress", istio_ingress_node_ports=ports)
    svc = _gateway_service(mesh)
    by_name = {p["name"]: p.get("nodePort") for p in svc["spec"]["ports"]}
    assert by_name["http2"] == 30080 and by_name["https"] == 30443

    rc, _changed, failures, facts, _d = mesh.play("ingress", istio_ingress_node_ports=ports)
    assert rc == 0, failures
    # What the Bookinfo chapter reads by hand.
    pods = mesh.get("pods", "-n", NAMESPACE, "-l", "istio=ingressgateway")["items"]
    host_ips = {p["status"].get("hostIP") for p in pods if p["status"].get("phase") == "Running"}
    assert facts["istio_ingress_host"] in host_ips
    http = mesh.kubectl(
        "-n",
        NAMESPACE,
        "get",
        "service",
        "istio-ingressgateway",
        "-o",
        'jsonpath={.spec.ports[?(@.name=="http2")].nodePort}',
    ).stdout
    https = mesh.kubectl(
        "-n",
        NAMESPACE,
        "get",
        "service",
        "istio-ingressgateway",
        "-o",
        'jsonpath={.spec.ports[?(@.name=="https")].nodePort}',
    ).stdout
    assert int(facts["istio_ingress_http_node_port"]) == int(http) == 30080
    assert int(facts["istio_ingress_https_node_port"]) == int(https) == 30443
    assert facts["istio_ingress_url"] == f"http://{facts['istio_ingress_host']}:{http}/"


def test_chosen_node_gives_its_internal_ip(mesh):
    node = mesh.get("nodes")["items"][0]
    internal = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    rc, _changed, failures, facts, _d = mesh.play("ingress", istio_ingress_node=node["metadata"]["name"])
    assert rc == 0, failures
    assert facts["istio_ingress_host"] == internal


def test_control_plane_rerun_keeps_the_ingress_changes(mesh):
    # Both roles server-side apply the same Service under different field managers: the
    # control plane must not take back the node ports (or the type).
    rc, changed, failures, _f, diffs = mesh.play("control_plane", "--diff")
    assert rc == 0 and changed == 0, (failures, diffs)
    by_name = {p["name"]: p.get("nodePort") for p in _gateway_service(mesh)["spec"]["ports"]}
    assert by_name["http2"] == 30080


def test_hosts_playbook_maps_gateway_hosts_to_the_ingress_host(mesh):
    # playbooks/hosts.yml end to end: the controller reads the ingress facts and the Gateways'
    # hosts from the cluster and hands them to a workstation, whose hosts file (a temporary file,
    # not the machine's /etc/hosts) gets the block.
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "jiuxi-gateway", "namespace": NAMESPACE},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["jiuxi.com"]}],
        },
    }
    gateway_file = os.path.join(mesh.workdir, "gateway.json")
    with open(gateway_file, "w", encoding="utf-8") as handle:
        json.dump(gateway, handle)
    mesh.kubectl("apply", "-f", gateway_file)
    hosts_file = os.path.join(mesh.workdir, "etc-hosts")
    with open(hosts_file, "w", encoding="utf-8") as handle:
        handle.write("127.0.0.1 localhost\n")
    inventory = {
        "all": {
            "children": {
                "istio_controller": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "istio_kubeconfig": mesh.kubeconfig,
                        }
                    }
                },
                "workstations": {
                    "hosts": {
                        "ws-local": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "ansible_become": False,
                            "hosts_entries_path": hosts_file,
                        }
                    }
                },
            }
        }
    }
    path = os.path.join(mesh.workdir, "hosts-play.yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle)
    try:
        rc, _changed, failures, _facts, _d = mesh.play("hosts", inventory=path)
        assert rc == 0, failures
        pods = mesh.get("pods", "-n", NAMESPACE, "-l", "istio=ingressgateway")["items"]
        host_ips = {p["status"].get("hostIP") for p in pods if p["status"].get("phase") == "Running"}
        with open(hosts_file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        assert lines[0] == "127.0.0.1 localhost"
        block = lines[lines.index(next(x for x in lines if x.startswith("# BEGIN"))) + 1 : -1]
        assert len(block) == 1
        address, name = block[0].split()
        assert name == "jiuxi.com" and address in host_ips
    finally:
        mesh.kubectl("delete", "-f", gateway_file, check=False)


@pytest.mark.parametrize(
    ("ports", "expect"),
    [
        ({"http2": 8080}, "outside the cluster's NodePort range"),
        ({"http2": 30555}, "already used by"),
        ({"http": 30100}, "has no port of that name"),
        ({"http2": "eighty"}, "istio_ingress_node_ports"),
    ],
)
def test_bad_node_ports_fail_before_any_change(mesh, ports, expect):
    mesh.kubectl("create", "namespace", "nodeport-squatter", check=False)
    mesh.kubectl(
        "-n",
        "nodeport-squatter",
        "create",
        "service",
        "nodeport",
        "squatter",
        "--tcp=80:80",
        "--node-port=30555",
        check=False,
    )
    before = _gateway_service(mesh)["metadata"]["resourceVersion"]
    rc, changed, failures, _f, _d = mesh.play("ingress", istio_ingress_node_ports=ports)
    assert rc != 0 and changed == 0
    msg = " ".join(failures)
    assert "istio_ingress_node_ports" in msg and expect in msg, msg
    assert _gateway_service(mesh)["metadata"]["resourceVersion"] == before


# --------------------------------------------------------------------------------------------
# Uninstall


def test_uninstall_leaves_no_object_of_the_profile(mesh):
    mesh.kubectl("delete", "namespace", "nodeport-squatter", "--wait=true", check=False)
    objects = mesh.manifest_objects()
    rc, changed, failures, _f, _d = mesh.play("control_plane", "--check", istio_control_plane_state="absent")
    assert rc == 0 and changed > 0, failures
    rc, changed, failures, _f, _d = mesh.play("control_plane", istio_control_plane_state="absent")
    assert rc == 0 and changed > 0, failures
    rc, changed, failures, _f, _d = mesh.play("control_plane", "--check", istio_control_plane_state="absent")
    assert rc == 0 and changed == 0, failures
    rc, changed, failures, _f, _d = mesh.play("control_plane", istio_control_plane_state="absent")
    assert rc == 0 and changed == 0, failures

    left = [
        (o["kind"], o["metadata"]["name"])
        for o in mesh.planned_objects()
        if o["kind"] != "CustomResourceDefinition" and mesh.kubectl("get", *ref(o), check=False).returncode == 0
    ]
    assert left == []
    # The pods and replica sets the Deployments made are gone too (Foreground deletion).
    assert mesh.get("pods", "-n", NAMESPACE)["items"] == []
    assert mesh.get("replicasets", "-n", NAMESPACE)["items"] == []
    # Without purge the CRDs stay.
    crds = [o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert all(mesh.kubectl("get", "crd", name, check=False).returncode == 0 for name in crds)


def test_purge_removes_crds_and_namespace(mesh):
    rc, changed, failures, _f, _d = mesh.play("control_plane", istio_control_plane_state="absent", istio_purge=True)
    assert rc == 0 and changed > 0, failures
    crds = [o["metadata"]["name"] for o in mesh.manifest_objects() if o["kind"] == "CustomResourceDefinition"]
    assert all(mesh.kubectl("get", "crd", name, check=False).returncode != 0 for name in crds)
    assert NAMESPACE not in mesh.namespaces()
