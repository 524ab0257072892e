"""One oldest node Python, said the same everywhere: README, preflight, module default, the
linter's target for node-side code and the Pythons the tests run the node-side code under."""

import os
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
