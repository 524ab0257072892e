"""The lab's nodes really run pods: kubelet, containerd, CNI, kube-proxy and CoreDNS in the node
containers cp1, w1, w2 (lab.stack; the ``real_lab`` fixture). Nothing here is simulated."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from lab import stack
from lab.cluster.errors import LabError
from lab.nodes import kubenode, routes
from lab.nodes.containers import Lab as NodeLab
from lab.nodes.containers import podman_cmd
from tests.integration.kubenodes.webhook import webhook_objects

pytestmark = [pytest.mark.kubenodes, pytest.mark.podman, pytest.mark.lab]

APP_IMAGE = "localhost/meshops-lab/app:1"
KUBE_NODES = ("cp1", "w1", "w2")


def wait_for(what, check, timeout=120.0, every=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def make_namespace(lab, name):
    lab.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true")
    lab.kubectl("create", "namespace", name)
    wait_for(
        "default ServiceAccount",
        lambda: lab.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
    )
    return name


@pytest.fixture
def ns(real_lab, request):
    name = make_namespace(real_lab, "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-"))
    yield name
    real_lab.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(real_lab, ns, *docs):
    real_lab.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump_all(docs))


def app_deployment(name, replicas, node_selector=None, spread=True):
    spec = {
        "containers": [
            {
                "name": "app",
                "image": APP_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "args": ["serve"],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                ],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            }
        ]
    }
    if spread:  # one replica per worker (cp1 is tainted like a kubeadm control plane)
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": name}},
            }
        ]
    if node_selector:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node_selector}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def ready_pods(real_lab, ns, app, count):
    def check():
        pods = real_lab.kubectl_json("-n", ns, "get", "pods", "-l", f"app={app}")["items"]
        ready = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
        ]
        return ready if len(ready) == count else None

    return wait_for(f"{count} ready pods of {app}", check)


def test_three_nodes_ready_through_their_kubelets(real_lab):
    nodes = real_lab.kubectl_json("get", "nodes")["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert sorted(by_name) == sorted(KUBE_NODES)
    for name, node in by_name.items():
        info = node["status"]["nodeInfo"]
        assert info["kubeletVersion"] == "v1.37.2", name
        assert info["containerRuntimeVersion"].startswith("containerd://2.4."), info
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", name
        assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert internal == [real_lab.address(name)]
        # the kubelet that keeps the node Ready is a process inside that node container
        assert (
            real_lab.node_exec(name, "systemctl", "is-active", "kubelet", "containerd", "kube-proxy").stdout.split()
            == ["active"] * 3
        )
    wide = real_lab.kubectl("get", "nodes", "-o", "wide").stdout
    assert "v1.37.2" in wide and "containerd://2.4." in wide
    state = json.loads((real_lab.kubeconfig.parent / "lab.json").read_text())
    assert state["real_nodes"] is True
    assert "kwok" not in [p["name"] for p in state["procs"]]


def test_deployment_runs_on_both_workers_with_logs_exec_and_restarts(real_lab, ns):
    apply(real_lab, ns, app_deployment("web", 2))
    pods = ready_pods(real_lab, ns, "web", 2)
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["w1", "w2"]
    for pod in pods:
        node = pod["spec"]["nodeName"]
        # the server's process runs inside that node container
        procs = real_lab.node_exec(node, "pgrep", "-af", "labapp.py serve").stdout
        assert "labapp.py serve" in procs
        logs = real_lab.kubectl("-n", ns, "logs", pod["metadata"]["name"]).stdout
        assert "labapp: serve on port 8080" in logs
        out = real_lab.kubectl(
            "-n",
            ns,
            "exec",
            pod["metadata"]["name"],
            "--",
            "python3",
            "-c",
            "import os; print(os.environ['NODE_NAME'])",
        ).stdout
        assert out.strip() == node
    # kill the server process from the node (SIGKILL: the container's init ignores signals it has
    # no handler for when they come from outside its PID namespace): the kubelet restarts it
    victim = pods[0]
    node = victim["spec"]["nodeName"]
    real_lab.node_exec(node, "pkill", "-KILL", "-f", "labapp.py serve")

    def restarted():
        pod = real_lab.kubectl_json("-n", ns, "get", "pod", victim["metadata"]["name"])
        status = pod["status"]["containerStatuses"][0]
        return status["restartCount"] >= 1 and status["ready"]

    wait_for("the killed container restarted and ready", restarted)


def test_service_by_clusterip_dns_and_nodeport(real_lab, ns):
    check_service(real_lab, ns)


def check_service(real_lab, ns):
    """A Service reached by ClusterIP and DNS from a pod on another node and by NodePort from the
    host at every node's address; kube-proxy's own rules for it in every node."""
    backend = app_deployment("backend", 1, node_selector="w2", spread=False)
    client = app_deployment("client", 1, node_selector="w1", spread=False)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "backend"},
        "spec": {"type": "NodePort", "selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(real_lab, ns, backend, client, service)
    server = ready_pods(real_lab, ns, "backend", 1)[0]
    client_pod = ready_pods(real_lab, ns, "client", 1)[0]["metadata"]["name"]
    svc = real_lab.kubectl_json("-n", ns, "get", "service", "backend")
    cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"

    def fetched(url):
        proc = real_lab.kubectl("-n", ns, "exec", client_pod, "--", "python3", "-c", fetch, url, check=False)
        return proc.returncode == 0 and proc.stdout

    # kube-proxy programs a new Service within its sync period, longer just after kube-proxy
    # restarted in another mode (seen: "Connection refused" at once): the first request waits
    # for that, every later one must answer at once.
    wait_for(f"kube-proxy on w1 to program {ns}/backend", lambda: fetched(f"http://{cluster_ip}/"), timeout=60)
    # from a pod on w1 to the pod on w2: by ClusterIP and by the DNS name (CoreDNS)
    for url in (f"http://{cluster_ip}/", f"http://backend.{ns}.svc.cluster.local/", "http://backend/"):
        answer = json.loads(real_lab.kubectl("-n", ns, "exec", client_pod, "--", "python3", "-c", fetch, url).stdout)
        assert answer["pod"] == server["metadata"]["name"] and answer["node"] == "w2", url
    # from the host to every node's address and the node port
    for node in KUBE_NODES:
        url = f"http://{real_lab.address(node)}:{node_port}/"
        answer = json.loads(urllib.request.urlopen(url, timeout=5).read())
        assert answer["pod"] == server["metadata"]["name"], url
    # kube-proxy's real chains in each node
    for node in KUBE_NODES:
        if real_lab.proxy_mode == "iptables":
            nat = real_lab.node_exec(node, "iptables-save", "-t", "nat").stdout
            for chain in (":KUBE-SERVICES", ":KUBE-NODEPORTS", ":KUBE-SVC-", ":KUBE-SEP-"):
                assert chain in nat, (node, chain)
            assert f"{ns}/backend" in nat
        else:
            table = real_lab.node_exec(node, "nft", "list", "table", "ip", "kube-proxy").stdout
            assert f"{ns}/backend" in table and "service-nodeports" in table


def test_validating_webhook_served_by_a_pod(real_lab, ns, tmp_path):
    docs, config = webhook_objects(ns, APP_IMAGE)
    apply(real_lab, ns, *docs)
    ready_pods(real_lab, ns, "webhook", 1)
    real_lab.kubectl("apply", "-f", "-", input=yaml.safe_dump(config))
    try:
        allowed = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "allowed"}, "data": {"a": "b"}}
        denied = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "denied", "labels": {"meshops.lab/deny": "true"}},
            "data": {"a": "b"},
        }

        def admitted():  # the webhook's endpoints may lag its readiness by a moment
            proc = real_lab.kubectl("-n", ns, "create", "-f", "-", input=yaml.safe_dump(allowed), check=False)
            return proc.returncode == 0 or "AlreadyExists" in proc.stderr

        wait_for("the allowed object admitted", admitted, timeout=60)
        proc = real_lab.kubectl("-n", ns, "create", "-f", "-", input=yaml.safe_dump(denied), check=False)
        assert proc.returncode != 0
        assert "denied by the lab webhook: label meshops.lab/deny=true" in proc.stderr
        assert real_lab.kubectl("-n", ns, "get", "configmap", "denied", check=False).returncode != 0
        logs = real_lab.kubectl("-n", ns, "logs", "deploy/webhook").stdout
        assert "webhook allowed allowed" in logs and "webhook denied denied" in logs
    finally:
        real_lab.kubectl("delete", "validatingwebhookconfiguration", config["metadata"]["name"], check=False)


def test_init_container_writes_rules_in_its_pod_network_namespace(real_lab, ns):
    chain = "MESHOPS_LAB_INIT"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "netadmin"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": "w1"},
            "initContainers": [
                {
                    "name": "rules",
                    "image": APP_IMAGE,
                    "command": [
                        "sh",
                        "-c",
                        f"iptables -t nat -N {chain} && iptables -t nat -A OUTPUT -p tcp --dport 15999 -j {chain}",
                    ],
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": APP_IMAGE,
                    "command": ["python3", "-c", "import time  # meshops-lab-netadmin\ntime.sleep(86400)"],
                }
            ],
        },
    }
    apply(real_lab, ns, pod)
    wait_for(
        "the pod running",
        lambda: real_lab.kubectl_json("-n", ns, "get", "pod", "netadmin")["status"].get("phase") == "Running",
    )
    pid = real_lab.node_exec("w1", "pgrep", "-f", "meshops-lab-netadmin").stdout.split()[0]
    rules = real_lab.node_exec("w1", "nsenter", "-t", pid, "-n", "iptables-save", "-t", "nat").stdout
    assert f":{chain} - [0:0]" in rules
    assert f"-A OUTPUT -p tcp -m tcp --dport 15999 -j {chain}" in rules
    # and only there: the node's own namespace has no such chain
    assert chain not in real_lab.node_exec("w1", "iptables-save", "-t", "nat").stdout


def test_service_paths_with_kube_proxy_in_nftables_mode(real_lab):
    lab = real_lab.with_proxy_mode("nftables")  # switched in place: kube-proxy restarted
    for node in KUBE_NODES:
        # the kube-proxy tables of both families, and the iptables mode's chains removed by
        # kube-proxy itself when it started in the other mode
        wait_for(
            f"kube-proxy's nftables tables on {node}",
            lambda n=node: lab.node_exec(n, "nft", "list", "tables").stdout.count("kube-proxy") == 2,
            timeout=60,
        )
        wait_for(
            f"no KUBE-SVC chains left on {node}",
            lambda n=node: "KUBE-SVC-" not in lab.node_exec(n, "iptables-save", "-t", "nat").stdout,
            timeout=60,
        )
    check_service(lab, make_namespace(lab, "t-nftables"))


def test_a_second_lab_of_real_nodes_is_refused_while_one_is_up(real_lab):
    with pytest.raises(LabError, match=rf"lab {real_lab.name} of real nodes is up.*name=systemd"):
        stack.up("meshops-fault")
    assert (
        podman_list("ps", "-a", "--filter", f"label={NodeLab('meshops-fault').label}", "--format", "{{.Names}}") == []
    )


def test_down_leaves_nothing_behind(real_lab):
    """Last: the lab goes down and nothing of it is left (containers, volumes, network, host
    routes, processes, state)."""
    from lab.cluster import procs

    state = json.loads((real_lab.kubeconfig.parent / "lab.json").read_text())
    started = [procs.Proc.from_json(p) for p in state["procs"]]
    result = stack.down(real_lab.name)
    real_lab.owned = False
    node_lab = NodeLab(real_lab.name)
    assert sorted(result["containers"]) == sorted(node_lab.prefix + n for n in ("cp1", "w1", "w2", "ws1"))
    assert len(result["host_routes"]) == 3

    def podman(*args):
        return subprocess.run([*podman_cmd(), *args], capture_output=True, text=True, check=True).stdout

    assert podman("ps", "-a", "--filter", f"label={node_lab.label}", "--format", "{{.Names}}").split() == []
    assert podman("volume", "ls", "--filter", f"label={node_lab.label}", "--format", "{{.Name}}").split() == []
    assert subprocess.run([*podman_cmd(), "network", "exists", node_lab.network], check=False).returncode != 0
    assert [r for r in routes.host_routes() if r.get("dst", "").startswith(node_lab.pod_prefix + ".")] == []
    assert [p.name for p in started if procs.is_ours(p)] == []  # none runs (a zombie awaiting reaping does not)
    assert not (stack.lab_home(real_lab.name) / "cluster").exists()
    # the mounts and network namespaces of the pods lived in the node containers' namespaces
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"{node_lab.prefix}w1-containerd" not in mounts and "/run/netns/cni-" not in mounts


# ---- after the test lab is down (one lab of real nodes at a time on a cgroup v1 host)

FAULT_LAB = "meshops-fault"


def podman_list(*args):
    return subprocess.run([*podman_cmd(), *args], capture_output=True, text=True, check=True).stdout.split()


def test_a_kubelet_that_cannot_start_is_named_and_nothing_is_left(monkeypatch):
    real_config = kubenode.kubelet_config

    def refused(node):  # what a stock kubelet 1.37 does on these cgroup v1 machines
        config = json.loads(real_config(node))
        config["failCgroupV1"] = True
        return json.dumps(config)

    monkeypatch.setattr(kubenode, "kubelet_config", refused)
    stack.down(FAULT_LAB)
    try:
        with pytest.raises(LabError) as error:
            stack.up(FAULT_LAB)
    finally:
        stack.down(FAULT_LAB)  # when up did not fail as it should
    message = str(error.value)
    assert "kubelet on cp1" in message and "node cp1: kubelet keeps exiting" in message
    assert "journalctl -u kubelet" in message
    assert "cgroup v1" in message  # the kubelet's own words, from its log
    node_lab = NodeLab(FAULT_LAB)
    assert podman_list("ps", "-a", "--filter", f"label={node_lab.label}", "--format", "{{.Names}}") == []
    assert podman_list("volume", "ls", "--filter", f"label={node_lab.label}", "--format", "{{.Name}}") == []
    assert subprocess.run([*podman_cmd(), "network", "exists", node_lab.network], check=False).returncode != 0
    assert [r for r in routes.host_routes() if r.get("dst", "").startswith(node_lab.pod_prefix + ".")] == []
    assert not (stack.lab_home(FAULT_LAB) / "cluster").exists()


def test_unknown_proxy_mode_is_refused_before_anything_starts():
    with pytest.raises(LabError, match=r"--proxy-mode 'ipvs'.*ip_vs kernel module"):
        stack.up(FAULT_LAB, proxy_mode="ipvs")
    assert podman_list("ps", "-a", "--filter", f"label={NodeLab(FAULT_LAB).label}", "--format", "{{.Names}}") == []
