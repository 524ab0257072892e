"""One oldest node Python, said the same everywhere: README, preflight, module default, the
linter's target for node-side code and the Pythons the tests run the node-side code under."""

import os
import pathlib
import re

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def read(path):
    with open(os.path.join(REPO_ROOT, path), encoding="utf-8") as handle:
        return handle.read()


def test_every_place_names_the_same_oldest_node_python():
    readme = re.search(r"\| Python on the nodes \| (3\.\d+) to 3\.13 ", read("README.md")).group(1)
    preflight = yaml.safe_load(read("roles/preflight/defaults/main.yml"))["preflight_min_python_version"]
    spec = yaml.safe_load(read("roles/preflight/meta/argument_specs.yml"))
    spec_default = spec["argument_specs"]["main"]["options"]["preflight_min_python_version"]["default"]
    module_default = re.search(
        r'min_python_version=dict\(type="str", default="(3\.\d+)"\)', read("plugins/modules/node_preflight_info.py")
    ).group(1)
    ruff_targets = set(re.findall(r'"plugins/module(?:s|_utils)/\*\*" = "py3(\d+)"', read("pyproject.toml")))
    test_pythons = re.search(r"^NODE_PYTHONS=\((3\.\d+) ", read("scripts/test.sh"), re.MULTILINE).group(1)
    unit_pythons = re.search(r"^NODE_UNIT_PYTHONS=\((3\.\d+) ", read("scripts/test.sh"), re.MULTILINE).group(1)
    assert {readme, str(preflight), str(spec_default), module_default, test_pythons, unit_pythons} == {"3.9"}
    assert ruff_targets == {"9"}


# Imports that make a unit test a controller-side one (Ansible itself, the controller plugins, the lab).
CONTROLLER_IMPORT = re.compile(
    r"^\s*(from ansible[. ]|import ansible\b|from lab\b|import lab\b)|plugins\.(modules|action|filter|test)\b", re.M
)


def test_every_node_side_unit_test_directory_runs_under_the_node_pythons():
    """A directory of unit tests that exercise module_utils and nothing of the controller is run
    again under the oldest and newest node Python (scripts/test.sh NODE_UNIT_TESTS)."""
    listed = re.search(r"^NODE_UNIT_TESTS=\(([^)]*)\)", read("scripts/test.sh"), re.MULTILINE).group(1).split()
    node_side = set()
    for directory in sorted(pathlib.Path(REPO_ROOT, "tests", "unit").iterdir()):
        sources = [path.read_text(encoding="utf-8") for path in directory.glob("*.py")]
        if directory.name == "foundation" or not sources:
            continue  # checks of the checkout itself, not of node-side code
        if any("plugins.module_utils" in text for text in sources) and not any(
            CONTROLLER_IMPORT.search(text) for text in sources
        ):
            node_side.add(f"tests/unit/{directory.name}")
    assert node_side, "the walk found no node-side unit tests"
    assert sorted(node_side - set(listed)) == []
