"""Which Istio version a control-plane Deployment runs."""

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.verify.cluster import deployment_version


def _deployment(image, labels=None):
    return {
        "metadata": {"labels": labels or {}},
        "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": image}]}}},
    }


@pytest.mark.parametrize(
    ("image", "labels", "expected"),
    [
        # A release: tag and label agree.
        ("docker.io/istio/pilot:1.24.2", {"app.kubernetes.io/version": "1.24.2"}, "1.24.2"),
        # A build of Istio's main branch labels its charts 1.0.0; the tag tells the truth.
        ("docker.io/istio/pilot:1.31.0-lab.eed52ebb", {"app.kubernetes.io/version": "1.0.0"}, "1.31.0-lab.eed52ebb"),
        # A registry with a port and a non-version tag: fall back to the label.
        ("registry.local:5000/istio/pilot:latest", {"operator.istio.io/version": "1.22.1"}, "1.22.1"),
        # Nothing usable.
        ("registry.local:5000/istio/pilot", {}, None),
    ],
)
def test_deployment_version(image, labels, expected):
    assert deployment_version(_deployment(image, labels)) == expected
