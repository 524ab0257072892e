"""Pure logic of the lab's real nodes: rendered configuration, image archives, host routes."""

from __future__ import annotations

import json
import subprocess
import tarfile
import types
from pathlib import Path

import pytest
import yaml

from lab import stack
from lab.cluster.errors import LabError
from lab.images import archive
from lab.nodes import containers, kubenode, routes

REPO = Path(__file__).resolve().parents[3]


def node(**over):
    base = dict(
        name="w1",
        address="10.89.79.3",
        pod_cidr="10.246.2.0/24",
        binaries={
            "kubelet": "/opt/k/kubelet",
            "kube-proxy": "/opt/k/kube-proxy",
            "containerd": "/opt/c/containerd",
            "ctr": "/opt/c/ctr",
            "crictl": "/opt/t/crictl",
        },
        ca_pem=b"CA",
        kubelet_kubeconfig="kubelet-kc",
        proxy_kubeconfig="proxy-kc",
        cluster_cidr="10.246.0.0/16",
    )
    base.update(over)
    return kubenode.NodeConfig(**base)


def test_kubelet_config_fits_these_machines_and_never_writes_host_sysctls():
    cfg = json.loads(kubenode.kubelet_config(node()))
    assert cfg["failCgroupV1"] is False
    assert cfg["maxOpenFiles"] == 20000 and cfg["oomScoreAdj"] == 0
    # with protectKernelDefaults the kubelet fails rather than writes a host-wide sysctl
    assert cfg["protectKernelDefaults"] is True
    assert cfg["clusterDNS"] == [kubenode.CLUSTER_DNS]
    prep = kubenode.units(node())["meshops-lab-node-prep"]
    for flag, value in kubenode.KUBELET_KERNEL_TUNABLES.items():
        assert f"mount --bind -o ro /run/meshops-lab/sysctl/{flag.replace('/', '.')} /proc/sys/{flag}" in prep
        assert f"echo {value} >" in prep


def test_kube_proxy_leaves_host_wide_conntrack_settings_alone():
    cfg = json.loads(kubenode.proxy_config(node(proxy_mode="nftables")))
    assert cfg["mode"] == "nftables"
    assert cfg["conntrack"]["maxPerCore"] == 0
    assert cfg["conntrack"]["tcpEstablishedTimeout"] == "0s" and cfg["conntrack"]["tcpCloseWaitTimeout"] == "0s"
    assert cfg["clusterCIDR"] == "10.246.0.0/16" and cfg["hostnameOverride"] == "w1"


def test_containerd_and_cni_configuration():
    text = kubenode.containerd_config(node())
    assert "restrict_oom_score_adj = true" in text
    assert f'sandbox = "{kubenode.SANDBOX_IMAGE}"' in text and 'BinaryName = "/usr/sbin/runc"' in text
    assert "SystemdCgroup = true" in text
    assert "SystemdCgroup = false" in kubenode.containerd_config(node(cgroup_driver="cgroupfs"))
    cni = json.loads(kubenode.cni_config(node()))
    bridge = cni["plugins"][0]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.246.2.0/24"}]] and bridge["ipMasq"] is False


def test_units_run_the_mounted_binaries_and_files_are_complete():
    units = kubenode.units(node())
    assert "ExecStart=/opt/c/containerd --config /etc/containerd/config.toml" in units["containerd"]
    settings = [ln for ln in units["containerd"].splitlines() if not ln.startswith("#")]
    assert "LimitNOFILE=20000" in settings and not any(ln.endswith("=infinity") for ln in settings)
    assert "Environment=PATH=/opt/c:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in settings
    assert "--node-ip=10.89.79.3 --hostname-override=w1" in units["kubelet"]
    files = kubenode.files(node())
    assert files["etc/kubernetes/kubelet.conf"] == (b"kubelet-kc", 0o600)
    assert set(f"etc/systemd/system/{u}.service" for u in kubenode.UNITS) <= set(files)
    links = kubenode.links(node())
    # on PATH, as a node with containerd and kubeadm's cri-tools has them
    assert links == {"usr/local/bin/ctr": "/opt/c/ctr", "usr/local/bin/crictl": "/opt/t/crictl"}
    with tarfile.open(fileobj=__import__("io").BytesIO(kubenode.tar_stream(files, links))) as tar:
        assert sorted(tar.getnames()) == sorted([*files, *links])
        crictl = tar.getmember("usr/local/bin/crictl")
        assert crictl.issym() and crictl.linkname == "/opt/t/crictl"


def test_docker_archive_is_reproducible_and_readable(tmp_path):
    layer = archive.files_layer([archive.File("/bin/x", data=b"#!x", mode=0o755)])
    cfg = archive.ImageConfig(entrypoint=["/bin/x"], user="65535:65535")
    id1 = archive.write(tmp_path / "a.tar", "registry.example/x:1", [layer], cfg)
    id2 = archive.write(tmp_path / "b.tar", "registry.example/x:1", [layer], cfg)
    assert id1 == id2 and (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["registry.example/x:1"]
        config = json.load(tar.extractfile(manifest[0]["Config"]))
        assert config["config"]["Entrypoint"] == ["/bin/x"] and config["config"]["User"] == "65535:65535"
        assert id1 == "sha256:" + manifest[0]["Config"].removesuffix(".json")
        with tarfile.open(fileobj=tar.extractfile(manifest[0]["Layers"][0])) as inner:
            member = inner.getmember("bin/x")
            assert member.mode == 0o755 and inner.extractfile(member).read() == b"#!x"
            assert inner.getmember("bin").isdir()


def test_pod_cidr_already_routed_elsewhere_is_refused(monkeypatch):
    table = [
        {"dst": "default", "gateway": "192.0.2.1"},
        {"dst": "10.246.0.0/20", "dev": "tun0", "protocol": "boot"},
        {"dst": "10.244.1.0/24", "gateway": "10.89.77.2", "protocol": routes.PROTO},
    ]
    monkeypatch.setattr(routes, "host_routes", lambda: table)
    with pytest.raises(LabError, match=r"already routes 10.246.0.0/20 \(dev tun0\).*10.246.1.0/24"):
        routes.check_free(["10.246.1.0/24"])
    routes.check_free(["10.244.1.0/24", "10.245.1.0/24"])  # the lab's own route is no clash


def test_node_routes_point_at_the_other_nodes():
    from lab.nodes.agents import RealNode

    nodes = [RealNode(n, f"c-{n}", f"10.0.0.{i}", f"10.246.{i}.0/24") for i, n in enumerate(("cp1", "w1", "w2"), 1)]
    assert routes.node_routes_script(nodes[1], nodes) == [
        ["ip", "route", "replace", "10.246.1.0/24", "via", "10.0.0.1"],
        ["ip", "route", "replace", "10.246.3.0/24", "via", "10.0.0.3"],
    ]


def test_role_archives_are_staged_where_the_nodes_mount_the_image_cache(tmp_path):
    """The lab hands its Istio and samples archives to the images role as node_path entries under
    the read-only mount of its image cache, and the role's argument spec takes them."""
    built = [
        types.SimpleNamespace(archive=tmp_path / "docker.io-istio-pilot-abc.tar"),
        types.SimpleNamespace(archive=tmp_path / "samples" / "reviews-v1-def.tar"),
    ]
    archives = stack.role_archives(built, images_root=tmp_path)
    assert archives == [
        {"node_path": f"{containers.IMAGES_MOUNT}/docker.io-istio-pilot-abc.tar"},
        {"node_path": f"{containers.IMAGES_MOUNT}/samples/reviews-v1-def.tar"},
    ]
    spec = yaml.safe_load((REPO / "roles" / "images" / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    entry = spec["argument_specs"]["main"]["options"]["images_archives"]["options"]
    assert all(set(a) <= set(entry) for a in archives)
    with pytest.raises(ValueError):  # an archive outside the image cache is not in the nodes
        stack.role_archives([types.SimpleNamespace(archive=tmp_path.parent / "elsewhere.tar")], images_root=tmp_path)


def test_down_removes_a_node_that_stopped_during_podmans_own_stop(monkeypatch):
    """podman's answer is replayed here (a stand-in: the race, a container exiting by itself
    within rm's stop timeout, cannot be caused on purpose with the real podman)."""
    calls = []
    listed = [["lab-cp1", "lab-w1"], ["lab-w1"]]

    def podman(*args, check=True):
        calls.append(args)
        if args[0] == "ps":
            return subprocess.CompletedProcess(args, 0, " ".join(listed.pop(0)), "")
        if args[0] == "rm" and "-t" in args:
            return subprocess.CompletedProcess(args, 125, "", "container state improper: stopped")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(containers, "_podman", podman)
    monkeypatch.setattr(containers, "_exists", lambda kind, name: False)
    assert containers.down(containers.Lab("meshops-test")) == ["lab-cp1", "lab-w1"]
    assert ("rm", "-f", "lab-w1") in calls


@pytest.mark.parametrize("still_there", [False, True])
def test_down_of_a_network_another_down_removed_meanwhile(monkeypatch, still_there):
    """Two ``down`` of one lab at once: the other one removes the network between this one's
    ``exists`` and ``rm`` (podman's answer replayed, a stand-in: the interleaving cannot be
    caused on purpose). Gone is what down wants; a network still there is an error."""
    existing = {"network": [True, still_there]}

    def podman(*args, check=True):
        if args[:2] == ("network", "rm"):
            return subprocess.CompletedProcess(args, 125, "", "unable to find network with name or ID meshops-test")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(containers, "_podman", podman)
    monkeypatch.setattr(containers, "_exists", lambda kind, name: existing[kind].pop(0))
    if still_there:
        with pytest.raises(containers.LabNodesError, match="network rm meshops-test failed: unable to find"):
            containers.down(containers.Lab("meshops-test"))
    else:
        assert containers.down(containers.Lab("meshops-test")) == []
