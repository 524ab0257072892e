"""plugins/filter/istioctl_reported_version.py (internal to the istioctl role): the version an
unpacked istioctl reports, which the role compares with istioctl_version before installing."""

import json

import pytest

from ansible_collections.meshops.istio.plugins.filter.istioctl_reported_version import FilterModule, reported_version


def _json(version, **extra):
    return json.dumps({"clientVersion": {"version": version, "revision": "abc", "status": "Clean", **extra}}, indent=2)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (_json("1.24.2"), "1.24.2"),
        (_json("1.31.0-lab.eed52ebb", tag="1.31.0-lab.eed52ebb"), "1.31.0-lab.eed52ebb"),
        (_json("1.25.0-beta.1+build.7"), "1.25.0-beta.1+build.7"),
        # older releases, text output
        ("client version: 1.24.2\n", "1.24.2"),
        ("Client Version: 1.5.0\ncontrol plane version: 1.4.0\n", "1.5.0"),
        ("1.4.3\n", "1.4.3"),
        # nothing that names a client version
        ("", ""),
        ("\n\n", ""),
        ("Error: unknown flag: --output\n", ""),
        ("hello\nworld\n", ""),
        ('{"meshVersion": []}', ""),
        ('{"clientVersion": "1.24.2"}', ""),
        ('{"clientVersion": {"version": 1.24}}', ""),
        ('["1.24.2"]', ""),
        ("control plane version: 1.4.0\n1.2.3 something\n", ""),
        (None, ""),
    ],
)
def test_reported_version(output, expected):
    assert reported_version(output) == expected


def test_the_filter_is_registered():
    assert FilterModule().filters()["istioctl_reported_version"] is reported_version
