"""Shared pytest set-up: make ``ansible_collections.meshops.istio`` importable from the checkout
and register the lab fixtures (cluster and network-namespace pods)."""

import importlib.util
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_DIR = os.path.join(REPO_ROOT, "collections")

if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def _install_collection_finder():
    # Ansible's own finder resolves ansible_collections.* the way ansible-test does, so the
    # checkout (through the collections/ symlink) and the PyPI bundle's collections both import.
    try:
        from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    except ImportError:
        # No ansible-core for this Python (the node-side unit tests under Python 3.9 and 3.10,
        # which ansible-core 2.19 does not support on a controller): plain namespace packages.
        sys.path.insert(0, COLLECTIONS_DIR)
        return

    site_paths = [p for p in sys.path if p.endswith("site-packages")]
    _AnsibleCollectionFinder(paths=[COLLECTIONS_DIR, *site_paths])._install()


_install_collection_finder()


# Fixture plugins live next to the lab code they drive; a plugin whose package is absent is
# simply not registered, so one missing lab piece does not break every other tier. The lab is
# controller-side code (Python 3.11+, cryptography): in the node-side unit runs under the
# nodes' Pythons it is not registered either.
_LAB_USABLE = sys.version_info >= (3, 11) and importlib.util.find_spec("cryptography") is not None
pytest_plugins = [
    name
    for name in ("lab.cluster.fixtures", "lab.nodes.fixtures", "lab.pods.fixtures")
    if _LAB_USABLE
    and importlib.util.find_spec(name.rsplit(".", 1)[0]) is not None
    and importlib.util.find_spec(name) is not None
]
