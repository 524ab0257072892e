"""Turn a lab node container into a real Kubernetes node: containerd (with Debian's runc and CNI
plugins), the kubelet and kube-proxy, as systemd units inside the container.

The binaries are the lab's own builds, mounted read-only from the build cache at ``BIN_MOUNT``;
every configuration file is rendered here and written into the node in one tar stream. What
these machines need that a bare-metal node does not (cgroup v1 hybrid, no CAP_SYS_RESOURCE, a
hard open-files limit of 20000, a shared kernel) is set here and said where it is set.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass

BIN_MOUNT = "/opt/meshops-lab/bin"  # the lab build cache (<lab home>/bin), read-only in every node
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.2"  # containerd 2.4's default; built by lab.images
PROXY_MODES = ("iptables", "nftables")  # ipvs needs the ip_vs module, which this kernel lacks

# The kubelet sets these host-wide sysctls when they differ (setupKernelTunables). A node
# container shares the host's kernel, so on the lab they are shielded: a read-only file with the
# value the kubelet expects is bind-mounted over each one, and protectKernelDefaults makes the
# kubelet fail (rather than write) if a shield is missing.
KUBELET_KERNEL_TUNABLES = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}
UNITS = ("meshops-lab-node-prep", "containerd", "kubelet", "kube-proxy")


@dataclass
class NodeConfig:
    name: str
    address: str  # the node's address on the lab network (kubelet --node-ip)
    pod_cidr: str
    binaries: dict[str, str]  # name -> path inside the node (under BIN_MOUNT)
    ca_pem: bytes
    kubelet_kubeconfig: str
    proxy_kubeconfig: str
    cluster_cidr: str = "10.244.0.0/16"  # every node's pod CIDR (kube-proxy: what is "inside")
    proxy_mode: str = "iptables"
    cgroup_driver: str = "systemd"


def containerd_config(node: NodeConfig) -> str:
    cgroup = "true" if node.cgroup_driver == "systemd" else "false"
    return f"""\
# containerd for a lab node (meshops.istio). Config version 3 (containerd 2.x).
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{SANDBOX_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE in the node container: runc cannot lower a sandbox's oom_score_adj below
  # containerd's own, and every sandbox would fail ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = {cgroup}
"""


def cni_config(node: NodeConfig) -> str:
    # No masquerade: the nodes and the host route every pod CIDR, so pods keep their addresses
    # across nodes (what Istio's peer checks and the audit's traces expect).
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "meshops-lab",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": node.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(node: NodeConfig) -> str:
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # cgroup v1 hybrid on these machines: kubelet 1.35+ refuses it unless told
            "failCgroupV1": False,
            "cgroupDriver": node.cgroup_driver,
            "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [CLUSTER_DNS],
            "clusterDomain": CLUSTER_DOMAIN,
            "protectKernelDefaults": True,
            # the hard open-files limit of these machines; no CAP_SYS_RESOURCE for -999
            "maxOpenFiles": 20000,
            "oomScoreAdj": 0,
            "failSwapOn": False,
            # the node's disk is the host's: never evict or collect images for its fill level
            "evictionHard": {
                "memory.available": "0%",
                "nodefs.available": "0%",
                "nodefs.inodesFree": "0%",
                "imagefs.available": "0%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "resolvConf": "/etc/resolv.conf",
        },
        indent=2,
    )


def proxy_config(node: NodeConfig) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": "/etc/kubernetes/kube-proxy.conf"},
            "mode": node.proxy_mode,
            "clusterCIDR": node.cluster_cidr,
            "hostnameOverride": node.name,
            "bindAddress": node.address,
            "metricsBindAddress": "127.0.0.1:10249",
            # nf_conntrack_max and the TCP timeouts are host-wide here: leave them alone
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        },
        indent=2,
    )


def units(node: NodeConfig) -> dict[str, str]:
    shields = "\n".join(
        f"ExecStart=/bin/sh -c 'echo {value} > /run/meshops-lab/sysctl/{flag.replace('/', '.')} && "
        f"mount --bind -o ro /run/meshops-lab/sysctl/{flag.replace('/', '.')} /proc/sys/{flag}'"
        for flag, value in KUBELET_KERNEL_TUNABLES.items()
    )
    b = node.binaries
    return {
        "meshops-lab-node-prep": f"""\
[Unit]
Description=meshops.istio lab: per-namespace network settings and the kubelet's sysctl shields
Before=containerd.service kubelet.service kube-proxy.service

[Service]
Type=oneshot
RemainAfterExit=yes
# per network namespace: forwarding for pod traffic, bridged pod traffic through kube-proxy's rules
ExecStart=/usr/sbin/sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
ExecStart=/bin/mkdir -p /run/meshops-lab/sysctl
{shields}

[Install]
WantedBy=multi-user.target
""",
        "containerd": f"""\
[Unit]
Description=containerd (meshops.istio lab build)
After=network.target meshops-lab-node-prep.service
Requires=meshops-lab-node-prep.service

[Service]
ExecStart={b["containerd"]} --config /etc/containerd/config.toml
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=2
# the hard limit of these machines; no Limit*=infinity (no CAP_SYS_RESOURCE)
LimitNOFILE=20000
# the runc shim is looked up on PATH: the directory of this containerd build
Environment=PATH={b["containerd"].rsplit("/", 1)[0]}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[Install]
WantedBy=multi-user.target
""",
        "kubelet": f"""\
[Unit]
Description=kubelet (meshops.istio lab build)
After=containerd.service
Requires=containerd.service

[Service]
ExecStart={b["kubelet"]} --config=/etc/kubernetes/kubelet-config.yaml \\
  --kubeconfig=/etc/kubernetes/kubelet.conf --node-ip={node.address} --hostname-override={node.name} --v=1
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
""",
        "kube-proxy": f"""\
[Unit]
Description=kube-proxy (meshops.istio lab build)
After=network.target meshops-lab-node-prep.service
Requires=meshops-lab-node-prep.service

[Service]
ExecStart={b["kube-proxy"]} --config=/etc/kubernetes/kube-proxy-config.yaml --v=1
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
""",
    }


def files(node: NodeConfig) -> dict[str, tuple[bytes, int]]:
    """Every file a node needs, path -> (content, mode)."""
    out: dict[str, tuple[bytes, int]] = {
        "etc/containerd/config.toml": (containerd_config(node).encode(), 0o644),
        "etc/cni/net.d/10-meshops-lab.conflist": (cni_config(node).encode(), 0o644),
        "etc/kubernetes/pki/ca.crt": (node.ca_pem, 0o644),
        "etc/kubernetes/kubelet.conf": (node.kubelet_kubeconfig.encode(), 0o600),
        "etc/kubernetes/kubelet-config.yaml": (kubelet_config(node).encode(), 0o644),
        "etc/kubernetes/kube-proxy.conf": (node.proxy_kubeconfig.encode(), 0o600),
        "etc/kubernetes/kube-proxy-config.yaml": (proxy_config(node).encode(), 0o644),
        "etc/crictl.yaml": (b"runtime-endpoint: unix:///run/containerd/containerd.sock\n", 0o644),
    }
    for unit, text in units(node).items():
        out[f"etc/systemd/system/{unit}.service"] = (text.encode(), 0o644)
    return out


# What a bare-metal node with containerd has on PATH (containerd's ctr, kubeadm's cri-tools
# crictl): the images role imports with ctr, the network audit names pods with crictl.
ON_PATH = ("ctr", "crictl")


def links(node: NodeConfig) -> dict[str, str]:
    """Symbolic links in /usr/local/bin to the mounted builds of ``ON_PATH``, path -> target."""
    return {f"usr/local/bin/{name}": node.binaries[name] for name in ON_PATH if name in node.binaries}


def tar_stream(entries: dict[str, tuple[bytes, int]], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, (data, mode) in sorted(entries.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted((symlinks or {}).items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
    return buf.getvalue()
