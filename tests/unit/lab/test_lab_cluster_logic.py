"""Pure logic of the lab cluster tooling (lab.cluster): go.mod reading, node lists, the istioctl
version label, build-failure messages, node objects and certificates. Table data under
tests/unit/data/lab/."""

import ipaddress
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from lab.cluster import build as labbuild
from lab.cluster import cluster, pki
from lab.cluster.errors import LabError

DATA = Path(__file__).resolve().parents[1] / "data" / "lab"


def _table(name):
    return yaml.safe_load((DATA / name).read_text())


@pytest.mark.parametrize("case", _table("nodes.yaml"), ids=lambda c: repr(c["input"]))
def test_parse_nodes(case):
    if "error" in case:
        with pytest.raises(LabError) as err:
            cluster.parse_nodes(case["input"])
        assert case["error"] in str(err.value)
    else:
        got = [[n.name, n.role, n.address] for n in cluster.parse_nodes(case["input"])]
        assert got == case["nodes"]


@pytest.mark.parametrize("case", _table("go_failures.yaml"), ids=lambda c: c["cause"][:30])
def test_classify_go_failure(case):
    assert labbuild.classify_go_failure(case["output"]).startswith(case["cause"])


def test_classify_never_prints_a_registry_host():
    out = labbuild.classify_go_failure("reading https://registry.example.net/a/@v/list: 410 Gone")
    assert "registry.example.net" not in out and "<GOPROXY>" in out


@pytest.mark.parametrize("case", _table("istio_labels.yaml"), ids=lambda c: c["label"])
def test_istio_label(case, tmp_path):
    if case["version_file"] is not None:
        (tmp_path / "VERSION").write_text(case["version_file"])
    assert labbuild.istio_label(case["version"], tmp_path) == case["label"]


def test_parse_gomod_blocks_single_lines_and_comments():
    mod = labbuild.parse_gomod(
        "// comment\nmodule a/b\n\ngo 1.26.0\n\nrequire x.io/y v1.2.3 // indirect\n"
        "require (\n\tz.io/w v0.1.0\n\t// skipped\n)\n"
        "replace (\n\tk8s.io/api => k8s.io/api v0.37.2\n)\nreplace old.io/m => new.io/m v1.0.0\n"
        "tool (\n\tx.io/y/cmd/a\n\tx.io/y/cmd/b\n)\ntool x.io/y/cmd/c\n"
    )
    assert mod.module == "a/b"
    assert mod.requires == {"x.io/y": "v1.2.3", "z.io/w": "v0.1.0"}
    assert mod.replaces == {"k8s.io/api": "k8s.io/api v0.37.2", "old.io/m": "new.io/m v1.0.0"}
    assert mod.tools == ["x.io/y/cmd/a", "x.io/y/cmd/b", "x.io/y/cmd/c"]


def test_our_component_modules_pin_what_the_lab_builds():
    """The committed go.mod files: upstream pinned, every binary a tool, staging modules replaced."""
    for comp in labbuild.COMPONENTS.values():
        mod = comp.gomod()
        assert mod.requires.get(comp.module), comp.name
        assert set(comp.binaries.values()) <= set(mod.tools), comp.name
    kube = labbuild.COMPONENTS["kube"].gomod()
    assert kube.requires["k8s.io/kubernetes"] == "v1.37.2"
    for staging in ("k8s.io/api", "k8s.io/apimachinery", "k8s.io/apiserver", "k8s.io/client-go"):
        assert kube.replaces[staging] == f"{staging} v0.37.2"


def test_node_manifest_roles():
    cp = cluster.node_manifest(cluster.NodeSpec("cp1", "control-plane"), 1, "v1.37.2")
    w = cluster.node_manifest(cluster.NodeSpec("w1", "worker", "10.89.0.3"), 2, "v1.37.2")
    assert cp["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert "node-role.kubernetes.io/control-plane" in cp["metadata"]["labels"]
    assert w["spec"]["taints"] == []
    assert w["spec"]["podCIDR"] == "10.244.2.0/24" != cp["spec"]["podCIDR"]
    assert {"type": "InternalIP", "address": "10.89.0.3"} in w["status"]["addresses"]
    assert "addresses" not in cp["status"]
    assert cp["metadata"]["annotations"][cluster.NODE_ANNOTATION] == "fake"


def test_nodes_from_inventory(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "k8s_cluster": {
                            "children": {
                                "control_plane": {"hosts": {"m1": None}},
                                "workers": {"hosts": {"n1": None, "n2": None}},
                            }
                        }
                    }
                }
            }
        )
    )
    got = [(n.name, n.role) for n in cluster.nodes_from_inventory(inv)]
    assert got == [("m1", "control-plane"), ("n1", "worker"), ("n2", "worker")]
    inv.write_text("all: {hosts: {x: null}}\n")
    with pytest.raises(LabError, match="no hosts in groups control_plane / workers"):
        cluster.nodes_from_inventory(inv)


def test_pki_sans_and_identities(tmp_path):
    p = pki.generate(tmp_path / "pki", ip_sans=["127.0.0.1", "10.89.0.1", "127.0.0.1"], dns_sans=["localhost"])
    ips, dns = pki.serving_sans(p)
    assert ips == ["127.0.0.1", "10.89.0.1"] and dns == ["localhost"]
    ca = x509.load_pem_x509_certificate(p.ca.read_bytes())
    for ident, (cn, org) in pki.CLIENTS.items():
        cert = x509.load_pem_x509_certificate(p.cert(ident).read_bytes())
        assert cert.issuer == ca.subject
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        assert orgs == ([org] if org else [])
        assert (p.key(ident).stat().st_mode & 0o777) == 0o600
    assert p.sa_key.is_file() and p.sa_pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    served = x509.load_pem_x509_certificate(p.cert("apiserver").read_bytes())
    san = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.89.0.1") in san.get_values_for_type(x509.IPAddress)
