"""Filters and tests that only serve the collection's roles say so ("internal", naming the roles),
so playbooks do not come to depend on them by accident; and the roles named are the ones that
use them."""

import pathlib
import re
import subprocess

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
PLUGINS = sorted((REPO / "plugins" / "filter").glob("*.py")) + sorted((REPO / "plugins" / "test").glob("*.py"))


def documentation(path):
    source = path.read_text()
    start = source.index('DOCUMENTATION = r"""') + len('DOCUMENTATION = r"""')
    return yaml.safe_load(source[start : source.index('"""', start)])


def roles_using(name):
    found = subprocess.run(
        ["git", "grep", "-l", "-E", rf"meshops\.istio\.{name}\b", "--", "roles", "playbooks", "site.yml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return {path.split("/")[1] for path in found if path.startswith("roles/")}


@pytest.mark.parametrize("path", PLUGINS, ids=[f"{p.parent.name}/{p.stem}" for p in PLUGINS])
def test_a_plugin_only_the_roles_use_says_it_is_internal_and_names_them(path):
    doc = documentation(path)
    assert re.match(r"(\(internal\)|Internal to)", doc["short_description"]), doc["short_description"]
    text = " ".join(doc["description"])
    named = set(re.findall(r"[CM]\(meshops\.istio\.(\w+)\)", text))
    used = roles_using(doc["name"])
    assert used, f"{doc['name']} is used by no role: make it public (and documented) or remove it"
    assert used <= named, f"{doc['name']} is used by {sorted(used)} but its documentation names {sorted(named)}"
