"""traffic_split with the weights read from a real VirtualService in the lab cluster, and the
traffic sent to the real Envoy gateway of this directory's fixtures (whose canary.jiuxi.com
route splits nginx/tomcat 80/20).

The lab has no data plane, so the VirtualService here only supplies the weights; Envoy stands in
for the ingress gateway that would program them.
"""

import pytest
import yaml

from tests.integration.labmesh import lab_mesh

pytestmark = pytest.mark.lab

DESTINATIONS = [
    {"name": "nginx-svc", "pattern": "<title>Welcome to nginx!</title>"},
    {"name": "tomcat-svc", "pattern": "<title>Apache Tomcat"},
]


@pytest.fixture(scope="module")
def mesh(lab_cluster, tmp_path_factory):
    with lab_mesh(lab_cluster, tmp_path_factory.mktemp("vs")) as lab:
        yield lab


def virtual_service(name, nginx, tomcat, gateways):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {
            "hosts": ["canary.jiuxi.com"],
            "gateways": gateways,
            "http": [
                {
                    "route": [
                        {"destination": {"host": "nginx-svc", "port": {"number": 80}}, "weight": nginx},
                        {"destination": {"host": "tomcat-svc", "port": {"number": 8080}}, "weight": tomcat},
                    ]
                }
            ],
        },
    }


def run_split(mesh, envoy_gateway, namespace, name):
    return mesh.ansible.module(
        "meshops.istio.istio_verify",
        {
            "checks": ["traffic_split"],
            "kubeconfig": mesh.kubeconfig,
            "traffic_split": {
                "url": envoy_gateway.url,
                "host_header": "canary.jiuxi.com",
                "virtual_service": {"name": name, "namespace": namespace},
                "destinations": DESTINATIONS,
                "requests": 400,
                "confidence": 0.9999,
            },
        },
    )


def test_weights_come_from_the_virtual_service(mesh, envoy_gateway, k8s_namespace):
    objects = [
        virtual_service("canary", 80, 20, ["jiuxi-gateway"]),
        virtual_service("stale", 50, 50, ["jiuxi-gateway"]),
        virtual_service("mesh-only", 80, 20, ["mesh"]),
    ]
    mesh.kubectl("apply", "-n", k8s_namespace, "-f", "-", input_text=yaml.safe_dump_all(objects))

    matching = run_split(mesh, envoy_gateway, k8s_namespace, "canary")
    assert matching.get("failed") is not True, matching.get("msg")
    assert matching["report"]["traffic_split"]["weights"] == {"nginx-svc": 80, "tomcat-svc": 20}

    stale = run_split(mesh, envoy_gateway, k8s_namespace, "stale")
    assert stale.get("failed") is True
    assert "traffic_split: observed shares" in stale["msg"]

    mesh_only = run_split(mesh, envoy_gateway, k8s_namespace, "mesh-only")
    assert any("bound to the mesh only" in w for w in mesh_only.get("warnings", [])), mesh_only.get("warnings")

    missing = run_split(mesh, envoy_gateway, k8s_namespace, "nope")
    assert missing.get("failed") is True
    assert f"VirtualService {k8s_namespace}/nope not found" in missing["msg"]
