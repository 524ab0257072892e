"""Fixtures of the nftables tests: real network namespaces (root), the nft command."""

import os
import shutil

import pytest

from tests.integration.iptables.netlab import NetLab


@pytest.fixture
def netlab():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    missing = [name for name in ("ip", "nsenter", "nft") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"missing commands: {', '.join(missing)} (bindep.txt: nftables)")
    with NetLab() as lab:
        yield lab
