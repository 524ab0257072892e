"""The checkout resolves as the collection meshops.istio, and its metadata is consistent."""

import os

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _load(path):
    with open(os.path.join(REPO_ROOT, path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_symlink_points_at_the_checkout():
    link = os.path.join(REPO_ROOT, "collections", "ansible_collections", "meshops", "istio")
    assert os.path.islink(link)
    assert os.path.realpath(link) == os.path.realpath(REPO_ROOT)


def test_galaxy_metadata_names_the_collection_and_pins_dependencies():
    galaxy = _load("galaxy.yml")
    assert (galaxy["namespace"], galaxy["name"]) == ("meshops", "istio")
    for dependency, spec in galaxy["dependencies"].items():
        assert ">=" in spec and "<" in spec, f"{dependency} must be pinned by range, got {spec!r}"
    assert "kubernetes.core" in galaxy["dependencies"]
    assert "collections" in galaxy["build_ignore"]


def test_run_time_dependencies_are_the_collections_used_at_run_time():
    """A collection the roles, playbooks and plugins do not use is no dependency of the
    collection (ansible.posix serves the tests only: tests/requirements.yml)."""
    galaxy = _load("galaxy.yml")
    used = set()
    for top in ("roles", "playbooks", "plugins"):
        for directory, _dirs, files in os.walk(os.path.join(REPO_ROOT, top)):
            for name in files:
                with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
                used.update(dep for dep in galaxy["dependencies"] if dep + "." in text)
    assert used == set(galaxy["dependencies"])
    declared = {entry["name"] for entry in _load("requirements.yml")["collections"]}
    assert declared == set(galaxy["dependencies"])
    assert "ansible.posix" in {entry["name"] for entry in _load("tests/requirements.yml")["collections"]}


def test_runtime_requires_supported_ansible():
    assert _load("meta/runtime.yml")["requires_ansible"] == ">=2.16.0"


def test_site_yml_only_imports_playbooks():
    plays = _load("site.yml")
    assert plays, "site.yml is empty"
    for play in plays:
        assert set(play) <= {"name", "ansible.builtin.import_playbook", "tags"}, play
        assert play["ansible.builtin.import_playbook"].startswith("playbooks/")
        assert os.path.exists(os.path.join(REPO_ROOT, play["ansible.builtin.import_playbook"]))


def test_module_utils_import_through_the_collection_namespace():
    import ansible_collections.meshops.istio.plugins.module_utils as utils

    locations = {os.path.realpath(path) for path in utils.__path__}
    assert os.path.join(os.path.realpath(REPO_ROOT), "plugins", "module_utils") in locations
