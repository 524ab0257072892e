"""Lab fixtures for the samples tests: the demo control plane and an Ansible runner."""

import types

import pytest

from tests.integration.labmesh import Ansible, Kubectl, demo_control_plane, istioctl_of, kubeconfig_of


@pytest.fixture(scope="module")
def mesh(lab_cluster, tmp_path_factory):
    kubeconfig, istioctl = kubeconfig_of(lab_cluster), istioctl_of(lab_cluster)
    kubectl = Kubectl(kubeconfig)
    with demo_control_plane(kubectl, istioctl):
        yield types.SimpleNamespace(
            kubectl=kubectl,
            istioctl=istioctl,
            kubeconfig=kubeconfig,
            ansible=Ansible(kubeconfig, istioctl, tmp_path_factory.mktemp("samples")),
        )


@pytest.fixture
def namespace(k8s_namespace):
    """The fresh namespace of the lab fixture, as a name."""
    return (
        k8s_namespace if isinstance(k8s_namespace, str) else getattr(k8s_namespace, "name", None) or str(k8s_namespace)
    )
