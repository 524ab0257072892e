"""mesh/hosts.py: DNS name and address validation, foreign /etc/hosts entries."""

import os
import re

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.mesh import hosts

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "mesh", "hosts_cases.yml")
with open(DATA, encoding="utf-8") as _handle:
    CASES = yaml.safe_load(_handle)


@pytest.mark.parametrize("name", CASES["dns_names"]["valid"])
def test_valid_dns_names(name):
    assert hosts.dns_name_problem(name) is None
    assert hosts.is_dns_name(name)


@pytest.mark.parametrize("name", CASES["dns_names"]["invalid"])
def test_invalid_dns_names_say_why(name):
    problem = hosts.dns_name_problem(name)
    assert isinstance(problem, str) and problem
    assert not hosts.is_dns_name(name)


def test_label_and_name_length_limits():
    assert hosts.is_dns_name("a" * 63 + ".example")
    assert not hosts.is_dns_name("a" * 64 + ".example")
    long_name = ".".join(["a" * 50] * 5)  # 254 characters
    assert len(long_name) == 254
    assert "253" in hosts.dns_name_problem(long_name)


@pytest.mark.parametrize(("address", "version"), sorted(CASES["ip_addresses"].items()))
def test_ip_version(address, version):
    assert hosts.ip_version(address) == version


def test_markers():
    assert hosts.markers(CASES["marker"]) == (
        "# BEGIN meshops.istio hosts_entries",
        "# END meshops.istio hosts_entries",
    )


KEYS = ("line", "address", "names", "replacement", "position")


@pytest.mark.parametrize("case", CASES["foreign"], ids=lambda c: c["id"])
def test_find_foreign_entries(case):
    found = hosts.find_foreign_entries(case["content"], case["names"], CASES["marker"])
    assert [{k: f[k] for k in KEYS} for f in found] == case["expected"]


def _ansible_replace(contents, regexp, replace, before=None, after=None):
    # What ansible.builtin.replace does with these arguments (section, then re.subn MULTILINE).
    start, end = 0, len(contents)
    if after or before:
        pattern = (after or "") + "(?P<subsection>.*)" + (before or "")
        match = re.search(pattern, contents, re.DOTALL)
        assert match, pattern
        start, end = match.start("subsection"), match.end("subsection")
    section = re.compile(regexp, re.MULTILINE).subn(replace, contents[start:end])[0]
    return contents[:start] + section + contents[end:]


@pytest.mark.parametrize("case", CASES["foreign"], ids=lambda c: c["id"])
def test_replace_arguments_rewrite_exactly_the_foreign_lines(case):
    contents = case["content"]
    for entry in hosts.find_foreign_entries(contents, case["names"], CASES["marker"]):
        contents = _ansible_replace(contents, entry["regexp"], entry["replace"], entry["before"], entry["after"])
    assert contents == case["result"]
    assert hosts.find_foreign_entries(contents, case["names"], CASES["marker"]) == []
