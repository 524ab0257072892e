"""lab/nodeimage/build.sh: the mirror comes from the host's apt sources, and the recipe hash
that decides a rebuild follows the recipe file (and only it)."""

import os
import shutil
import subprocess

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.path.join(REPO_ROOT, "lab", "nodeimage", "build.sh")
RECIPE = os.path.join(REPO_ROOT, "lab", "nodeimage", "recipe.env")
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "nodeimage")


def _build(*args, **env):
    return subprocess.run(
        ["bash", BUILD, *args], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("apt_etc", "mirror"),
    [
        ("oneline", "http://mirror.example.org/debian"),  # options skipped, -security not taken
        ("deb822", "http://deb.example.org/debian"),
        ("disabled", "http://second.example.org/debian"),  # Enabled: no skipped, lower-case keys
        ("none", ""),  # only bullseye
    ],
)
def test_mirror_comes_from_apt_sources(apt_etc, mirror):
    result = _build("--print-mirror", MESHOPS_APT_ETC=os.path.join(DATA, apt_etc))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == mirror


def test_recipe_hash_follows_the_recipe(tmp_path):
    copy = tmp_path / "recipe.env"
    shutil.copy(RECIPE, copy)
    original = _build("--print-hash", MESHOPS_NODE_RECIPE=str(copy)).stdout.strip()
    assert original == _build("--print-hash").stdout.strip()
    assert len(original) == 64
    copy.write_text(copy.read_text().replace("\ntmux\n", "\ntmux\nstrace\n"))
    assert _build("--print-hash", MESHOPS_NODE_RECIPE=str(copy)).stdout.strip() != original


def test_recipe_lists_what_preflight_checks():
    env = subprocess.run(
        ["bash", "-c", f'. "{RECIPE}"; echo $NODE_IMAGE_PACKAGES'], capture_output=True, text=True, check=True
    )
    packages = set(env.stdout.split())
    # iptables (both back ends, iptables-save), util-linux (nsenter, unshare), bash-completion,
    # python3 (the modules) and systemd (init): what meshops.istio.preflight looks for.
    assert {"iptables", "util-linux", "bash-completion", "python3", "systemd", "systemd-sysv"} <= packages


def test_unknown_argument_is_refused():
    result = _build("--bogus")
    assert result.returncode == 2
    assert "--bogus" in result.stderr
