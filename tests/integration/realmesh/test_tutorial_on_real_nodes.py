"""The whole tutorial for real: ``MESHOPS_LAB_NODES=real scripts/site.sh`` (the README's main job
on the lab whose nodes run kubelets and containerd, with Istio's and the samples' images built
from their sources and loaded by the images role), then what a user does next on that mesh.

The module's tests share one lab (``meshops-mesh``) and run in file order: the main job and its
quiet second run first, then checks that read the running mesh, then changes (a 90/10 split, a
namespace labelled after its pods started, manual injection, a deleted capture rule, kube-proxy
switched to nftables mode), each undone or confined to a namespace of its own. Nothing here is a
stand-in except the two the README lists for the samples (the tutorial's nginx and tomcat images
built from Debian's packages); the Envoy is upstream Envoy (README: the one way the lab differs).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lab import stack
from lab.nodes.fixtures import RealLab, running_lab_info
from tests.integration.kubenodes.test_nodes import app_deployment, apply, ready_pods, wait_for
from tests.integration.labmesh import Ansible

pytestmark = [pytest.mark.lab, pytest.mark.podman, pytest.mark.kubenodes]

REPO = Path(__file__).resolve().parents[3]
LAB = "meshops-mesh"
SAMPLES_NS = "jiuxi"
VIRTUAL_SERVICE = "jiuxi-virtual-svc"
PODMAN_ENV = dict(os.environ, CONTAINERS_CONF=str(REPO / "lab" / "podman" / "containers.conf"))
RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=0\s+failed=0", re.M)
CHECKS = ("control_plane", "sidecars", "http", "versions_seen", "traffic_split")
WORKERS = ("w1", "w2")
SAMPLES_PLAY = ("site.yml", "--tags", "istioctl,samples")


def lab_is_up() -> bool:
    probe = ["podman", "container", "exists", f"{LAB}-cp1"]
    return subprocess.run(probe, env=PODMAN_ENV, check=False).returncode == 0


class RealMesh:
    """The running lab: kubectl and the nodes (``lab``), the lab inventory's playbooks
    (``playbook``) and single modules on the controller (``ansible``, localhost)."""

    def __init__(self, workdir: Path, istioctl: str, reports: Path):
        self.workdir = workdir
        self.reports = reports
        self.env = dict(PODMAN_ENV, MESHOPS_LAB=LAB, MESHOPS_REPORT_DIR=str(reports), MESHOPS_LAB_NODES="real")
        self.env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
        self.env["PATH"] = f"{Path(sys.executable).parent}:{self.env['PATH']}"
        self.istioctl = istioctl
        self.lab: RealLab | None = None
        self.ansible: Ansible | None = None

    def attach(self):
        """After the main job brought the lab up: its kubeconfig and node addresses."""
        info = running_lab_info(LAB)
        if info is None:
            return  # the main job failed before the lab was up: the first test says why
        self.lab = RealLab(LAB, False, info)
        self.ansible = Ansible(str(self.lab.kubeconfig), self.istioctl, self.workdir)

    def site(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / "scripts" / "site.sh")],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=2400,
            check=False,  # the tests assert the exit code with the output
        )

    def playbook(self, playbook: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = ["ansible-playbook", "-i", "inventories/lab/hosts.yml", playbook, *args]
        done = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=900, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout[-5000:]}\n{done.stderr[-2000:]}")
        return done

    def verify(self, checks, **options) -> dict:
        """istio_verify on the host (it reaches the node addresses and, through the lab's host
        routes, the pod addresses); the module's whole result."""
        args = {"checks": list(checks), "istioctl_path": self.istioctl, "kubeconfig": str(self.lab.kubeconfig)}
        args.update(options)
        return self.ansible.module("meshops.istio.istio_verify", args)

    def kubectl(self, *args, **kwargs):
        return self.lab.kubectl(*args, **kwargs)

    def kubectl_json(self, *args):
        return self.lab.kubectl_json(*args)

    def report(self, node: str) -> dict:
        return json.loads((self.reports / f"{node}.json").read_text())


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, lab_istioctl):
    workdir = tmp_path_factory.mktemp("realmesh")
    started_here = not lab_is_up()
    real = RealMesh(workdir, str(lab_istioctl), workdir / "reports")
    real.first_run = real.site()
    real.attach()
    yield real
    if started_here:
        subprocess.run([sys.executable, "-m", "lab.stack", "down", "--lab", LAB], cwd=REPO, env=PODMAN_ENV, check=False)


def gateway_request(mesh, path="/", host="jiuxi.com", node="w1", timeout=10.0):
    """One request through the ingress gateway's NodePort at a node's address, as from a
    workstation whose /etc/hosts maps the gateway host to that node."""
    service = mesh.kubectl_json("-n", "istio-system", "get", "service", "istio-ingressgateway")
    port = next(p["nodePort"] for p in service["spec"]["ports"] if p["name"] == "http2")
    request = urllib.request.Request(f"http://{mesh.lab.address(node)}:{port}{path}", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode(errors="replace")


def outcome(result):
    """What a module's result says, short enough to read in an assertion."""
    return {key: result.get(key) for key in ("msg", "failures", "exception") if result.get(key)}


def containers(pod):
    """Names of a pod's containers, its native sidecars included (Istio injects istio-proxy as
    an init container with restartPolicy Always where Kubernetes has native sidecars)."""
    spec = pod["spec"]
    native = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    return [c["name"] for c in spec["containers"] + native]


def sidecar_pods(mesh, namespace):
    pods = mesh.kubectl_json("-n", namespace, "get", "pods")["items"]
    return [p for p in pods if "istio-proxy" in containers(p)]


def assert_xds_accepted(mesh, namespace, pod):
    """The proxy's Envoy took istiod's listeners and clusters and rejected none of them."""
    stats = mesh.kubectl(
        "-n", namespace, "exec", pod, "-c", "istio-proxy", "--", "pilot-agent", "request", "GET", "stats"
    )
    values = dict(line.split(": ", 1) for line in stats.stdout.splitlines() if ": " in line)
    for xds in ("listener_manager.lds", "cluster_manager.cds"):
        assert values.get(f"{xds}.update_rejected") == "0", (pod, xds, values.get(f"{xds}.update_rejected"))
        assert int(values.get(f"{xds}.update_success", "0")) >= 1, (pod, xds)


# ---- the main job, twice


def test_main_job_runs_every_check_for_real(mesh):
    first = mesh.first_run
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    for check in CHECKS:
        assert f"{check}: passed" in first.stdout, first.stdout[-4000:]
    # the audit found the real sidecars of the tutorial's samples on the workers, none in error
    sidecars = 0
    for node in WORKERS:
        summary = mesh.report(node)["summary"]
        assert summary["findings"]["error"] == 0, (node, summary)
        sidecars += summary["sidecar_pods"]
    assert sidecars == 9, sidecars  # Bookinfo's six pods, nginx, and the split's nginx and tomcat
    # each pod named by the node's container runtime (crictl, containerd's CRI), as the API names it
    api = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in mesh.kubectl_json("get", "pods", "-A")["items"]}
    for node in WORKERS:
        report = mesh.report(node)
        assert any(note.startswith("crictl: ") for note in report["runtime"]["notes"]), report["runtime"]
        for pod in report["pods"]:
            assert pod["named_by"] == "container runtime (cri)", (node, pod["display"], pod["named_by"])
            assert (pod["namespace"], pod["name"]) in api, (node, pod["display"])
    # the pods run: no kwok on this lab, every node's kubelet reports them
    for node in mesh.kubectl_json("get", "nodes")["items"]:
        assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})


def test_second_main_job_changes_nothing(mesh):
    second = mesh.site()
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    recap = second.stdout.split("PLAY RECAP")[-1]
    changed = {m["host"]: int(m["changed"]) for m in RECAP.finditer(recap)}
    assert set(changed) >= {"cp1", "w1", "w2", "ws1"}, recap
    assert all(count == 0 for count in changed.values()), recap


# ---- the running mesh, read


def test_every_proxy_accepts_istiods_configuration(mesh):
    """Upstream Envoy with the lab's overlay: istiod sends nothing any proxy rejects."""
    gateways = mesh.kubectl_json(
        "-n", "istio-system", "get", "pods", "-l", "app in (istio-ingressgateway,istio-egressgateway)"
    )
    pods = [(SAMPLES_NS, p) for p in sidecar_pods(mesh, SAMPLES_NS)]
    proxies = [(ns, p["metadata"]["name"]) for ns, p in pods]
    proxies += [("istio-system", g["metadata"]["name"]) for g in gateways["items"]]
    assert len(proxies) == 11, proxies  # nine sidecars, two gateways
    for namespace, pod in proxies:
        assert_xds_accepted(mesh, namespace, pod)


def test_nodeport_path_the_audit_traced_is_the_one_requests_take(mesh):
    """The report's KUBE-NODEPORTS step for the gateway's http2 port on the node that runs the
    gateway pod (that node's report names the pod): its kernel counter grows by the requests
    sent to that node's address at that port."""
    ingress = mesh.kubectl_json("-n", "istio-system", "get", "pods", "-l", "app=istio-ingressgateway")["items"][0]
    node = ingress["spec"]["nodeName"]
    paths = [
        p for p in mesh.report(node)["host"]["node_port_paths"] if p["service"].endswith("istio-ingressgateway:http2")
    ]
    assert paths and all(p["gateway_pods"] for p in paths), paths
    step = next(s for s in paths[0]["steps"] if s["chain"] == "KUBE-NODEPORTS")
    rule = step["rule"]

    def packets():
        dump = mesh.lab.node_exec(node, "iptables-save", "-c", "-t", "nat").stdout
        line = next(line for line in dump.splitlines() if line.endswith(rule))
        return int(re.match(r"\[(\d+):", line).group(1))

    before = packets()
    for _request in range(5):
        status, _body = gateway_request(mesh, node=node)
        assert status == 200
    assert packets() >= before + 5


# ---- what must fail, fails


def test_a_control_plane_whose_image_cannot_be_pulled_fails_the_wait_with_the_pods_reasons(mesh):
    """A new istiod whose image no node has (and no registry can give): the real kubelet cannot
    pull it, the control-plane role's wait fails naming the pod and the kubelet's reason, the old
    istiod goes on serving, and the profile as it was is back after one more run."""
    missing = "docker.io/istio/pilot:meshops-missing"
    broken = {"istio_control_plane_set": {"values.pilot.image": missing}, "istio_control_plane_wait_timeout": 30}
    done = mesh.playbook("playbooks/control_plane.yml", "-e", json.dumps(broken), check=False)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "not ready after 30 s (istio_control_plane_wait_timeout)" in done.stdout, done.stdout[-3000:]
    reason = re.search(r"istio-system/istiod-[\w-]+ on (w1|w2): container discovery: (\w+)", done.stdout)
    assert reason and reason.group(2) in ("ErrImagePull", "ImagePullBackOff"), done.stdout[-3000:]
    serving = [
        p
        for p in mesh.kubectl_json("-n", "istio-system", "get", "pods", "-l", "app=istiod")["items"]
        if p["spec"]["containers"][0]["image"] != missing
    ]
    assert serving and all(p["status"]["phase"] == "Running" for p in serving), serving
    restored = mesh.playbook("playbooks/control_plane.yml")
    assert re.search(r"cp1\s+: .*failed=0", restored.stdout), restored.stdout[-2000:]
    images = [
        p["spec"]["containers"][0]["image"]
        for p in mesh.kubectl_json("-n", "istio-system", "get", "pods", "-l", "app=istiod")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert images and missing not in images, images


def test_verify_refuses_a_90_10_split_checked_as_50_50(mesh):
    vs = mesh.kubectl_json("-n", SAMPLES_NS, "get", "virtualservice", VIRTUAL_SERVICE)
    route = vs["spec"]["http"][0]["route"]
    original = json.dumps([{"op": "replace", "path": "/spec/http/0/route", "value": route}])
    skewed = [dict(r, weight=90 if i == 0 else 10) for i, r in enumerate(route)]
    mesh.kubectl(
        "-n",
        SAMPLES_NS,
        "patch",
        "virtualservice",
        VIRTUAL_SERVICE,
        "--type",
        "json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/http/0/route", "value": skewed}]),
    )
    try:
        patterns = {"tomcat-svc": "<title>Apache Tomcat", "nginx-svc": "<title>Welcome to nginx"}
        destinations = [{"name": name, "pattern": pattern} for name, pattern in patterns.items()]
        claimed = {"host_header": "jiuxi.com", "destinations": [dict(d, weight=50) for d in destinations]}
        heavy = patterns[route[0]["destination"]["host"].split(".")[0]]

        def applied():  # istiod pushed the new weights to the gateway: the shares moved
            bodies = [gateway_request(mesh)[1] for _request in range(40)]
            return sum(1 for body in bodies if re.search(heavy, body)) >= 30 or None

        wait_for("the 90/10 weights to reach the gateway", applied, timeout=60, every=2)
        wrong = mesh.verify(["traffic_split"], traffic_split=claimed)
        assert wrong.get("failed"), outcome(wrong)
        split = wrong["report"]["traffic_split"]
        assert split["passed"] is False and split["p_value"] < 0.001, split
        read = {
            "host_header": "jiuxi.com",
            "destinations": destinations,
            "virtual_service": {"name": VIRTUAL_SERVICE, "namespace": SAMPLES_NS},
        }
        right = mesh.verify(["traffic_split"], traffic_split=read)
        assert not right.get("failed"), outcome(right)
    finally:
        mesh.kubectl("-n", SAMPLES_NS, "patch", "virtualservice", VIRTUAL_SERVICE, "--type", "json", "-p", original)


def test_labelled_namespace_pods_restarted_get_sidecars_and_istio_init_rules(mesh):
    """The tutorial labels a namespace whose pods already run: those pods have no sidecar until
    they are recreated. pods_needing_restart names them; restart: true recreates them with a
    sidecar, and the real istio-init's rules are in their network namespaces."""
    namespace = "t-late-label"
    mesh.kubectl("create", "namespace", namespace)
    try:
        apply(
            mesh.lab, namespace, app_deployment("web", 2, spread=False)
        )  # a spread would block the rollout's surge pod
        ready_pods(mesh.lab, namespace, "web", 2)
        injection = {
            "mode": "namespace",
            "namespaces": [namespace],
            "istioctl_path": mesh.istioctl,
            "kubeconfig": str(mesh.lab.kubeconfig),
        }
        predicted = mesh.ansible.module("meshops.istio.istio_sidecar_injection", injection, check=True)
        assert predicted["changed"] and not mesh.kubectl_json("get", "namespace", namespace)["metadata"]["labels"].get(
            "istio-injection"
        )
        labelled = mesh.ansible.module("meshops.istio.istio_sidecar_injection", injection)
        assert labelled["changed"], labelled
        waiting = sorted(p["pod"] for p in labelled["pods_needing_restart"])
        assert len(waiting) == 2 and all(name.startswith("web-") for name in waiting), labelled["pods_needing_restart"]

        before = mesh.verify(["sidecars"], sidecars={"namespaces": [namespace]})
        assert before.get("failed"), outcome(before)
        assert all(name in json.dumps(before) for name in waiting)

        restarted = mesh.ansible.module("meshops.istio.istio_sidecar_injection", dict(injection, restart=True))
        assert restarted["changed"] and restarted["restarted"], restarted

        def injected():
            pods = [
                p
                for p in mesh.kubectl_json("-n", namespace, "get", "pods", "-l", "app=web")["items"]
                if not p["metadata"].get("deletionTimestamp")
            ]
            names = [name for p in pods for name in containers(p)]
            ready = all(
                {c["type"]: c["status"] for c in p["status"].get("conditions", [])}.get("Ready") == "True" for p in pods
            )
            return pods if len(pods) == 2 and names.count("istio-proxy") == 2 and ready else None

        pods = wait_for("2/2 Ready web pods with sidecars", injected, timeout=180, every=2)
        again = mesh.ansible.module("meshops.istio.istio_sidecar_injection", injection)
        assert not again["changed"] and again["pods_needing_restart"] == [], again
        for pod in pods:
            assert_xds_accepted(mesh, namespace, pod["metadata"]["name"])
        after = mesh.verify(["sidecars"], sidecars={"namespaces": [namespace]})
        assert not after.get("failed"), outcome(after)
        for pod in pods:  # istio-init ran and its rules are in the pod's namespace
            init = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}["istio-init"]
            assert init["state"]["terminated"]["exitCode"] == 0, init
        mesh.playbook(
            "playbooks/audit.yml",
            "-e",
            f"network_audit_report_dir={mesh.workdir / 'late'}",
            "-e",
            "network_audit_probe=true",
        )
        found = {}
        for node in WORKERS:
            report = json.loads((mesh.workdir / "late" / f"{node}.json").read_text())
            for pod in report["pods"]:
                if pod.get("namespace") == namespace:
                    found[pod["name"]] = pod
        assert sorted(found) == sorted(p["metadata"]["name"] for p in pods), sorted(found)
        for pod in found.values():
            assert pod["role"] == "sidecar" and pod["worst_severity"] != "error", pod["findings"]
            assert pod["capture"], pod["name"]
            # the probe's connection from the node took the inbound path the tracer predicted
            # from the rules the real istio-init wrote: those nat rules' counters moved
            probe = pod["probe"]
            assert probe["status"] == "ok" and probe["agrees"] and probe["predicted"], probe
            moved = {(m["table"], m["chain"]) for m in probe["moved"]}
            assert ("nat", "ISTIO_IN_REDIRECT") in moved, probe
    finally:
        mesh.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_manual_injection_runs_a_sidecar_without_the_label(mesh):
    namespace = "t-kube-inject"
    mesh.kubectl("create", "namespace", namespace)
    try:
        deployment = app_deployment("manual", 1)
        args = {
            "mode": "manifest",
            "definition": deployment,
            "namespace": namespace,
            "apply": True,
            "istioctl_path": mesh.istioctl,
            "kubeconfig": str(mesh.lab.kubeconfig),
        }
        first = mesh.ansible.module("meshops.istio.istio_sidecar_injection", args)
        assert first["changed"], first
        pods = ready_pods(mesh.lab, namespace, "manual", 1)
        assert sorted(containers(pods[0])) == ["app", "istio-proxy"]
        assert_xds_accepted(mesh, namespace, pods[0]["metadata"]["name"])
        assert "istio-injection" not in mesh.kubectl_json("get", "namespace", namespace)["metadata"].get("labels", {})
        second = mesh.ansible.module("meshops.istio.istio_sidecar_injection", args)
        assert not second["changed"], second
    finally:
        mesh.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_strict_mtls_keeps_the_mesh_and_refuses_a_caller_without_sidecar(mesh):
    """The samples namespace in STRICT mode (istio_samples_mtls_mode): the gateway and the
    services still talk (mutual TLS between sidecars), a pod without a sidecar is refused, and
    the verify play's mtls check says so with plain-text probes; back to "" removes the policy."""
    namespace = "t-no-sidecar"
    mesh.kubectl("create", "namespace", namespace)
    try:
        apply(mesh.lab, namespace, app_deployment("caller", 1, spread=False))
        ready_pods(mesh.lab, namespace, "caller", 1)

        def plain_call():
            argv = ["-n", namespace, "exec", "deploy/caller", "--", "curl", "-sS", "-m", "5", "-o", "/dev/null"]
            argv += ["-w", "%{http_code}", f"http://productpage.{SAMPLES_NS}:9080/productpage"]
            return mesh.kubectl(*argv, check=False)

        assert plain_call().stdout == "200"  # PERMISSIVE (Istio's default): plain text is accepted

        strict = ["-e", "istio_samples_mtls_mode=STRICT"]
        # the samples play after the istioctl play, which tells it where the release's samples are
        predicted = mesh.playbook(*SAMPLES_PLAY, *strict, "--check", "--diff")
        assert "PeerAuthentication" in predicted.stdout and re.search(r"cp1\s+: .*changed=1\b", predicted.stdout)
        assert mesh.kubectl("-n", SAMPLES_NS, "get", "peerauthentication", "default", check=False).returncode != 0
        mesh.playbook(*SAMPLES_PLAY, *strict)
        again = mesh.playbook(*SAMPLES_PLAY, *strict)
        assert re.search(r"cp1\s+: .*changed=0\b", again.stdout), again.stdout[-2000:]
        policy = mesh.kubectl_json("-n", SAMPLES_NS, "get", "peerauthentication", "default")
        assert policy["spec"]["mtls"]["mode"] == "STRICT"

        def refused():
            done = plain_call()
            return done if done.returncode != 0 else None

        refusal = wait_for("the sidecars to refuse plain text", refused, timeout=60, every=2)
        assert refusal.stdout in ("", "000"), refusal.stdout
        verified = mesh.playbook(
            "playbooks/verify.yml", *strict, "-e", "istio_verify_mtls_probe=true", "-e", "istio_verify_http_retries=8"
        )
        for check in ("mtls", "http", "versions_seen", "traffic_split", "sidecars"):
            assert f"{check}: passed" in verified.stdout, verified.stdout[-4000:]
        report = mesh.verify(["mtls"], mtls={"namespaces": [SAMPLES_NS], "mode": "STRICT", "probe": True})
        assert not report.get("failed"), outcome(report)
        probes = report["report"]["mtls"]["probes"]
        assert len({p["pod"] for p in probes}) == 9, probes  # every pod of the samples
        assert all(p["outcome"] == "refused" for p in probes), probes
        permissive = mesh.verify(["mtls"], mtls={"namespaces": [SAMPLES_NS], "mode": "PERMISSIVE"})
        assert permissive.get("failed") and "expected PERMISSIVE" in str(outcome(permissive)), outcome(permissive)

        mesh.playbook(*SAMPLES_PLAY, "-e", "istio_samples_mtls_mode=")
        assert mesh.kubectl("-n", SAMPLES_NS, "get", "peerauthentication", "default", check=False).returncode != 0
        wait_for("plain text to be accepted again", lambda: plain_call().stdout == "200" or None, timeout=60, every=2)
    finally:
        mesh.playbook(*SAMPLES_PLAY, "-e", "istio_samples_mtls_mode=", check=False)
        mesh.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_deleted_capture_rule_is_reported_on_its_pod(mesh):
    """Someone removes the jump into ISTIO_OUTPUT in one sidecar's network namespace: the audit
    reports that pod in error; recreating the pod (a fresh istio-init) makes it clean again."""
    report = mesh.report("w1")
    pod = next(p for p in report["pods"] if p.get("namespace") == SAMPLES_NS and p["role"] == "sidecar")
    netns = f"--net={pod['netns_path']}"
    iptables = f"iptables-{pod['capture_backend'] or 'nft'}"
    dump = mesh.lab.node_exec("w1", "nsenter", netns, f"{iptables}-save", "-t", "nat").stdout
    jump = next(line for line in dump.splitlines() if line.startswith("-A OUTPUT ") and "-j ISTIO_OUTPUT" in line)
    mesh.lab.node_exec("w1", "nsenter", netns, iptables, "-t", "nat", "-D", *shlex.split(jump)[1:])
    try:
        broken = mesh.playbook(
            "playbooks/audit.yml",
            "-l",
            "w1",
            "-e",
            f"network_audit_report_dir={mesh.workdir / 'broken'}",
            "-e",
            "network_audit_fail_on=none",
        )
        assert broken.returncode == 0
        audited = json.loads((mesh.workdir / "broken" / "w1.json").read_text())
        mine = next(p for p in audited["pods"] if p.get("name") == pod["name"])
        assert mine["worst_severity"] == "error", mine["findings"]
        assert audited["summary"]["worst_severity"] == "error"
        others = [p for p in audited["pods"] if p.get("name") != pod["name"] and p["role"] == "sidecar"]
        assert others and all(p["worst_severity"] != "error" for p in others)
    finally:
        mesh.kubectl("-n", SAMPLES_NS, "delete", "pod", pod["name"], "--wait=true")
        app = pod["name"].rsplit("-", 2)[0]
        mesh.kubectl("-n", SAMPLES_NS, "rollout", "status", f"deployment/{app}", "--timeout=180s")


# ---- kube-proxy in nftables mode (last: the lab stays in that mode)


def test_audit_and_gateway_with_kube_proxy_in_nftables_mode(mesh):
    mesh.lab.info = stack.up(LAB, "nftables", samples=True)
    assert mesh.lab.proxy_mode == "nftables"

    def answered():
        try:
            return gateway_request(mesh, node="w2")[0] == 200 or None
        except OSError:
            return None

    wait_for("the gateway to answer through kube-proxy's nftables rules", answered, timeout=120, every=2)
    mesh.playbook("playbooks/audit.yml", "-e", f"network_audit_report_dir={mesh.workdir / 'nft'}")
    ingress = mesh.kubectl_json("-n", "istio-system", "get", "pods", "-l", "app=istio-ingressgateway")["items"][0]
    for node in ("cp1", *WORKERS):
        report = json.loads((mesh.workdir / "nft" / f"{node}.json").read_text())
        assert report["host"]["kube_proxy_mode"]["mode"] == "nftables", report["host"]["kube_proxy_mode"]
        http2 = [p for p in report["host"]["node_port_paths"] if p["service"].endswith("istio-ingressgateway:http2")]
        assert http2, (node, [p["name"] for p in report["host"]["node_port_paths"]])
        # every node's NodePort leads to the gateway pod; the node it runs on names it
        assert all(any(d.startswith(ingress["status"]["podIP"] + ":") for d in p["destinations"]) for p in http2), http2
        if ingress["spec"]["nodeName"] == node:
            assert all(p["gateway_pods"] for p in http2), http2
        assert report["summary"]["findings"]["error"] == 0, (node, report["findings"])
    status = mesh.verify(["http"], http={"timeout": 15, "retries": 5, "delay": 3})
    assert not status.get("failed"), outcome(status)
