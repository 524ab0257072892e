"""Sidecar pod lab: real network namespaces, nginx, Envoy and istio-init style capture rules.

See :class:`lab.pods.lab.PodLab`; the pytest fixture is in ``lab.pods.fixtures`` and the CLI
(``python -m lab.pods up|down``) starts pods inside molecule node containers.
"""

from lab.pods.lab import BROKEN_VARIANTS, CaptureOptions, Pod, PodLab

__all__ = ["BROKEN_VARIANTS", "CaptureOptions", "Pod", "PodLab"]
