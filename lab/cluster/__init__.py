"""Lab cluster for meshops.istio: a real Kubernetes control plane and a real istioctl.

The binaries (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok, istioctl)
are compiled from their Go modules at the versions pinned in ``lab/cluster/go/*/go.mod`` and
cached outside the checkout; nothing of those projects lives in this repository.

Entry points: ``lab/labctl`` (CLI), :mod:`lab.cluster.fixtures` (pytest plugin).
"""

from lab.cluster.errors import LabError

__all__ = ["LabError"]
