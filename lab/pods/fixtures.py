"""pytest plugin: the ``pod_lab`` fixture (registered by tests/conftest.py via pytest_plugins).

``pod_lab`` yields a fresh :class:`lab.pods.PodLab` with its own node namespace; everything it
started is killed and its namespaces deleted when the test ends. ``pod_lab_factory`` builds
several labs (several "nodes") in one test.
"""

from __future__ import annotations

import os

import pytest

from lab.pods import PodLab


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("the pod lab needs root (network namespaces, iptables, setpriv)")


@pytest.fixture
def pod_lab():
    _require_root()
    lab = PodLab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def pod_lab_factory():
    _require_root()
    labs: list[PodLab] = []

    def make(**kwargs) -> PodLab:
        kwargs.setdefault("node_index", len(labs) + 1)
        lab = PodLab(**kwargs)
        labs.append(lab)
        return lab

    try:
        yield make
    finally:
        errors = []
        for lab in labs:
            try:
                lab.close()
            except Exception as exc:  # close the others anyway
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))
