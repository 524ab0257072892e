"""Lab fixtures for the samples tests: the demo control plane and an Ansible runner."""

import pytest

from tests.integration.labmesh import lab_mesh, namespace_name


@pytest.fixture(scope="module")
def mesh(lab_cluster, tmp_path_factory):
    with lab_mesh(lab_cluster, tmp_path_factory.mktemp("samples")) as lab:
        yield lab


@pytest.fixture
def namespace(k8s_namespace):
    """The fresh namespace of the lab fixture, as a name."""
    return namespace_name(k8s_namespace)
