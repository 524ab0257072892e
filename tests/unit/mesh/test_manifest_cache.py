"""mesh/manifest_cache.py and its use by install.generate: a re-run with the same istioctl and
input reads the stored manifest; any change of them runs istioctl again."""

import os
import stat

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.mesh import install, manifest_cache

MANIFEST = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: istiod
  namespace: istio-system
"""
INPUTS = {"profile": "demo", "values": {}, "overlay": {}, "files": [], "revision": ""}


@pytest.fixture
def istioctl(tmp_path, monkeypatch):
    """A file with istioctl's name, only looked at (stat), never run."""
    monkeypatch.setenv("ISTIOCONFIG", str(tmp_path / "istioctl-config.yaml"))
    for name in [name for name in os.environ if name.startswith("ISTIOCTL_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "istioctl"
    path.write_text("")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_same_input_gives_the_same_key(istioctl):
    assert manifest_cache.cache_key(str(istioctl), INPUTS) == manifest_cache.cache_key(str(istioctl), dict(INPUTS))


@pytest.mark.parametrize(
    "change",
    [
        {"profile": "minimal"},
        {"values": {"values.pilot.replicaCount": 2}},
        {"overlay": {"kind": "IstioOperator", "spec": {"hub": "example.test"}}},
        {"revision": "canary"},
    ],
    ids=["profile", "values", "overlay", "revision"],
)
def test_each_input_is_part_of_the_key(istioctl, change):
    assert manifest_cache.cache_key(str(istioctl), INPUTS) != manifest_cache.cache_key(
        str(istioctl), dict(INPUTS, **change)
    )


def test_the_overlay_files_content_is_part_of_the_key(istioctl, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("kind: IstioOperator\n")
    inputs = dict(INPUTS, files=[str(overlay)])
    before = manifest_cache.cache_key(str(istioctl), inputs)
    overlay.write_text("kind: IstioOperator\nspec: {profile: minimal}\n")
    assert manifest_cache.cache_key(str(istioctl), inputs) != before


def test_another_binary_the_config_file_and_the_environment_are_part_of_the_key(istioctl, tmp_path, monkeypatch):
    keys = {manifest_cache.cache_key(str(istioctl), INPUTS)}
    os.utime(istioctl, ns=(0, 1_000_000_000))  # a new binary in the same place
    keys.add(manifest_cache.cache_key(str(istioctl), INPUTS))
    (tmp_path / "istioctl-config.yaml").write_text("istioNamespace: mesh\n")
    keys.add(manifest_cache.cache_key(str(istioctl), INPUTS))
    monkeypatch.setenv("ISTIOCTL_XDS_ADDRESS", "istiod.mesh:15012")
    keys.add(manifest_cache.cache_key(str(istioctl), INPUTS))
    assert len(keys) == 4


def test_stored_entries_are_private_and_read_back(tmp_path):
    cache = manifest_cache.ManifestCache(str(tmp_path / "cache"))
    assert cache.get("k" * 64) is None
    assert cache.put("k" * 64, MANIFEST)
    assert cache.get("k" * 64) == MANIFEST
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache" / ("k" * 64 + ".yaml")).stat().st_mode) == 0o600


def test_only_the_newest_entries_are_kept(tmp_path):
    cache = manifest_cache.ManifestCache(str(tmp_path))
    for index in range(manifest_cache.KEEP + 3):
        cache.put(f"{index:064d}", MANIFEST)
        os.utime(tmp_path / f"{index:064d}.yaml", ns=(index * 10**9, index * 10**9))
    cache.put("f" * 64, MANIFEST)
    kept = sorted(path.name for path in tmp_path.iterdir())
    assert len(kept) == manifest_cache.KEEP
    assert "f" * 64 + ".yaml" in kept and f"{0:064d}.yaml" not in kept


def test_a_directory_that_cannot_be_written_is_no_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = manifest_cache.ManifestCache(str(blocker / "cache"))  # below a file: cannot exist
    assert cache.put("k" * 64, MANIFEST) is False
    assert cache.get("k" * 64) is None


def test_generate_runs_istioctl_once_and_then_reads_the_cache(istioctl, tmp_path):
    runs = []

    def run_command(argv):
        runs.append(argv)
        return 0, MANIFEST, ""

    cache = manifest_cache.ManifestCache(str(tmp_path / "cache"))
    first = install.generate(run_command, str(istioctl), "demo", cache=cache)
    second = install.generate(run_command, str(istioctl), "demo", cache=cache)
    third = install.generate(run_command, str(istioctl), "minimal", cache=cache)
    assert [first["from_cache"], second["from_cache"], third["from_cache"]] == [False, True, False]
    assert len(runs) == 2 and "profile=minimal" in runs[1]
    assert second["objects"] == first["objects"]


def test_a_failed_generation_is_not_stored(istioctl, tmp_path):
    cache = manifest_cache.ManifestCache(str(tmp_path / "cache"))
    with pytest.raises(install.InstallError):
        install.generate(lambda argv: (1, "", "Error: unknown profile"), str(istioctl), "demoo", cache=cache)
    assert not (tmp_path / "cache").exists()
