"""The attributes of every module come from one doc fragment (meshops.istio.attributes): each
module extends it and lists only ``support`` and its own ``details``; after Ansible merges the
fragments every module documents check_mode, diff_mode and platform, each with a description."""

import importlib
import pathlib

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.doc_fragments.attributes import ModuleDocFragment

REPO = pathlib.Path(__file__).resolve().parents[3]
MODULES = sorted(p for p in (REPO / "plugins" / "modules").glob("*.py") if p.name != "__init__.py")
# Documentation of an action plugin: ansible-core's action_common_attributes describe its attributes.
ACTION_PLUGINS = {"network_audit_report"}
DESCRIBED_BY_FRAGMENT = ("check_mode", "diff_mode", "platform")


def documentation(path):
    namespace = {}
    source = path.read_text()
    start = source.index('DOCUMENTATION = r"""')
    exec(source[start : source.index('"""', start + 20) + 3], namespace)
    return yaml.safe_load(namespace["DOCUMENTATION"])


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_attributes_come_from_the_one_fragment(path):
    doc = documentation(path)
    fragments = doc.get("extends_documentation_fragment", [])
    if path.stem in ACTION_PLUGINS:
        assert "ansible.builtin.action_common_attributes" in fragments
        return
    assert "meshops.istio.attributes" in fragments
    own = doc.get("attributes", {})
    repeated = [name for name in DESCRIBED_BY_FRAGMENT if "description" in own.get(name, {})]
    assert repeated == [], f"{path.stem} describes {repeated} itself instead of using the fragment"
    # What ansible-doc shows (it merges each fragment's attributes, the module's own keys winning):
    # every attribute described, with a support level.
    merged = {}
    for fragment in fragments:
        for name, keys in attributes_of(fragment).items():
            merged[name] = {**merged.get(name, {}), **keys}
    for name, keys in own.items():
        merged[name] = {**merged.get(name, {}), **keys}
    for name in DESCRIBED_BY_FRAGMENT:
        assert merged[name].get("description"), (path.stem, name)
        assert merged[name].get("support") in ("full", "partial", "none"), (path.stem, name)


def attributes_of(fragment):
    """The attributes a meshops.istio doc fragment (``meshops.istio.NAME[.VARIANT]``) declares."""
    parts = fragment.split(".")
    if parts[:2] != ["meshops", "istio"]:
        return {}
    module = importlib.import_module(f"ansible_collections.meshops.istio.plugins.doc_fragments.{parts[2]}")
    text = getattr(module.ModuleDocFragment, parts[3].upper() if len(parts) > 3 else "DOCUMENTATION")
    return yaml.safe_load(text).get("attributes") or {}


def test_the_fragment_describes_the_attributes_it_is_used_for():
    described = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["attributes"]
    assert set(DESCRIBED_BY_FRAGMENT) <= set(described)
