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
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    site_paths = [p for p in sys.path if p.endswith("site-packages")]
    _AnsibleCollectionFinder(paths=[COLLECTIONS_DIR, *site_paths])._install()


_install_collection_finder()

# Fixture plugins live next to the lab code they drive; a plugin whose package is absent is
# simply not registered, so one missing lab piece does not break every other tier.
pytest_plugins = [
    name
    for name in ("lab.cluster.fixtures", "lab.nodes.fixtures", "lab.pods.fixtures")
    if importlib.util.find_spec(name.rsplit(".", 1)[0]) is not None and importlib.util.find_spec(name) is not None
]
