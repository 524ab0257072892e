"""mesh/install.py: the istioctl command line, its failures, and waiting with a deadline.

Applying and removing are proven against the lab's real API server
(tests/integration/mesh/test_control_plane_ingress.py); these are the parts that need none.
"""

import os
import stat

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.mesh import install


def test_argv_has_the_profile_the_values_in_order_the_overlays_and_the_revision():
    argv = install.generate_argv(
        "/usr/local/bin/istioctl",
        "demo",
        {"values.pilot.replicaCount": 2, "meshConfig.enableTracing": True},
        ["/srv/overlay.yaml", "/tmp/inline.json"],
        "canary",
    )
    assert argv == [
        "/usr/local/bin/istioctl",
        "manifest",
        "generate",
        "--set",
        "meshConfig.enableTracing=true",
        "--set",
        "profile=demo",
        "--set",
        "values.pilot.replicaCount=2",
        "-f",
        "/srv/overlay.yaml",
        "-f",
        "/tmp/inline.json",
        "--revision",
        "canary",
    ]


def test_a_profile_among_the_values_wins():
    argv = install.generate_argv("istioctl", "demo", {"profile": "minimal"}, [], "")
    assert argv == ["istioctl", "manifest", "generate", "--set", "profile=minimal"]


def _never_run(argv):
    raise AssertionError(f"nothing may run: {argv}")


def test_a_missing_istioctl_fails_in_the_generate_stage_without_running_anything(tmp_path):
    with pytest.raises(install.InstallError) as caught:
        install.generate(_never_run, str(tmp_path / "istioctl"), "demo")
    assert caught.value.stage == "generate"
    assert str(tmp_path / "istioctl") in str(caught.value)


def test_a_structured_value_fails_in_the_generate_stage_naming_it(tmp_path):
    binary = tmp_path / "istioctl"
    binary.write_text("")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(install.InstallError) as caught:
        install.generate(_never_run, str(binary), "demo", values={"values.global.meshNetworks": {"a": 1}})
    assert caught.value.stage == "generate"
    assert "values.global.meshNetworks" in str(caught.value)


def test_the_inline_overlay_is_given_to_istioctl_as_a_file_and_removed_afterwards(tmp_path):
    # run_command here reads what istioctl would read; the real istioctl's use of the file is
    # proven by the role's tests on the lab (its overlay changes the generated manifests).
    binary = tmp_path / "istioctl"
    binary.write_text("")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    seen = {}

    def run_command(argv):
        path = argv[argv.index("-f") + 1]
        with open(path, encoding="utf-8") as handle:
            seen[path] = handle.read()
        return 1, "", "Error: boom"

    with pytest.raises(install.InstallError) as caught:
        install.generate(run_command, str(binary), "demo", overlay={"kind": "IstioOperator", "spec": {}})
    assert len(seen) == 1
    path, text = next(iter(seen.items()))
    assert '"kind": "IstioOperator"' in text
    assert not os.path.exists(path)
    assert caught.value.stage == "generate"
    assert caught.value.details == {"rc": 1, "stderr": "Error: boom"}


class _Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_poll_stops_as_soon_as_nothing_is_missing():
    clock = _Clock()
    installer = install.Installer(None, {}, "istio-system", "meshops-istio", clock=clock, sleep=clock.sleep)
    answers = iter([["a", "b"], ["b"], []])
    assert installer._poll(10, 1.0, lambda: next(answers)) == []
    assert clock.sleeps == [1.0, 1.0]


def test_poll_gives_up_at_the_deadline_with_what_is_still_missing():
    clock = _Clock()
    installer = install.Installer(None, {}, "istio-system", "meshops-istio", clock=clock, sleep=clock.sleep)
    assert installer._poll(3, 1.0, lambda: ["istio-system/istiod"]) == ["istio-system/istiod"]
    assert clock.now == 3.0
