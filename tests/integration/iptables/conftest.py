"""Fixtures of the iptables differential tests (real network namespaces, root only)."""

import os
import shutil

import pytest

from .netlab import NetLab

NEEDED = ("ip", "nsenter", "setpriv", "iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore")


def _missing():
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    absent = [name for name in NEEDED if shutil.which(name) is None]
    if absent:
        return f"missing commands: {', '.join(absent)}"
    if not os.path.exists("/usr/bin/python3"):
        return "needs /usr/bin/python3 for listeners running as other uids"
    return None


@pytest.fixture
def netlab():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    with NetLab() as lab:
        yield lab
