"""Builds from Go modules: cache reuse, a changed pin gives a new build, clear build errors,
and the release-layout bundle made from the same istio.io/istio module."""

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from lab.cluster import build as labbuild
from lab.cluster import paths
from lab.cluster.bundle import make_bundle
from lab.cluster.errors import LabError

pytestmark = pytest.mark.lab


def test_every_binary_is_built_and_reports_its_pinned_version():
    builds = labbuild.build_all(echo=False)
    kube = builds["kube"]
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        out = subprocess.run(
            [str(kube.binaries[name]), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        assert out.stdout.strip() == f"Kubernetes {kube.version}", name
    etcd = subprocess.run(
        [str(builds["etcd"].binaries["etcd"]), "--version"], capture_output=True, text=True, check=False
    )
    assert f"etcd Version: {builds['etcd'].version.lstrip('v')}" in etcd.stdout
    istioctl = subprocess.run(
        [str(builds["istioctl"].binaries["istioctl"]), "version", "--remote=false", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    label = labbuild.istio_label(builds["istioctl"].version, Path(builds["istioctl"].info["Dir"]))
    assert json.loads(istioctl.stdout)["clientVersion"]["version"] == label
    assert re.fullmatch(r"\d+\.\d+\.\d+-lab\.[0-9a-z]{8,9}", label)
    # cached outside the checkout
    for b in builds.values():
        assert paths.REPO_ROOT not in b.directory.parents
        assert b.directory.parent == paths.bin_root()


def test_a_cached_build_is_reused():
    first = labbuild.build("kwok", echo=False)
    t = time.monotonic()
    again = labbuild.build("kwok", echo=False)
    assert again.cached and again.directory == first.directory
    assert time.monotonic() - t < 20


def _component_copy(tmp_path, name, gomod_edit):
    """A copy of one of our Go component modules with its go.mod edited, as a Component."""
    d = tmp_path / "go" / name
    shutil.copytree(labbuild.COMPONENTS[name].go_dir, d)
    (d / "go.mod").write_text(gomod_edit((d / "go.mod").read_text()))
    return tmp_path / "go"


def test_a_changed_pin_gives_a_new_cache_key(tmp_path, monkeypatch):
    comp = labbuild.COMPONENTS["kwok"]
    current_dir = labbuild.plan(comp)[1]
    go_dir = _component_copy(
        tmp_path, "kwok", lambda t: t.replace("sigs.k8s.io/kwok v0.8.0", "sigs.k8s.io/kwok v0.7.0")
    )
    monkeypatch.setattr(paths, "GO_DIR", go_dir)
    version, other_dir = labbuild.plan(comp)[:2]
    assert version == "v0.7.0"
    assert other_dir != current_dir and "v0.7.0" in other_dir
    # ... so that pin is not served from the cache of the other one
    assert labbuild.cached_build("kwok") is None or labbuild.cached_build("kwok").version == "v0.7.0"


def test_a_module_version_that_is_not_served_fails_naming_the_module(tmp_path, monkeypatch):
    go_dir = _component_copy(
        tmp_path, "kwok", lambda t: t.replace("sigs.k8s.io/kwok v0.8.0", "sigs.k8s.io/kwok v0.0.99")
    )
    monkeypatch.setattr(paths, "GO_DIR", go_dir)
    with pytest.raises(LabError) as err:
        labbuild.build("kwok", echo=False)
    msg = str(err.value)
    assert "sigs.k8s.io/kwok@v0.0.99" in msg
    assert "not served" in msg or "unknown version" in msg


def test_a_compile_error_fails_naming_the_binary_with_the_compiler_output(tmp_path, monkeypatch):
    d = tmp_path / "go" / "broken"
    d.mkdir(parents=True)
    (d / "go.mod").write_text("module lab.test/broken\n\ngo 1.26.0\n\nrequire sigs.k8s.io/kwok v0.8.0\n")
    shutil.copyfile(labbuild.COMPONENTS["kwok"].go_dir / "go.sum", d / "go.sum")
    (d / "main.go").write_text("package main\n\nfunc main() { undefined_thing() }\n")
    comp = labbuild.Component(name="broken", module="sigs.k8s.io/kwok", binaries={"broken-tool": "."})
    monkeypatch.setattr(paths, "GO_DIR", tmp_path / "go")
    monkeypatch.setitem(labbuild.COMPONENTS, "broken", comp)
    monkeypatch.setenv("MESHOPS_LAB_HOME", str(tmp_path / "home"))
    with pytest.raises(LabError) as err:
        labbuild.build("broken", echo=False)
    msg = str(err.value)
    assert msg.startswith("broken-tool: building broken-tool from sigs.k8s.io/kwok@v0.8.0 failed")
    assert "compile error" in msg and "undefined: undefined_thing" in msg
    assert not any((tmp_path / "home" / "bin").glob("broken-*/broken-tool"))


def test_release_layout_bundle(tmp_path):
    b = make_bundle(echo=False)
    root = b.root
    assert root.name == f"istio-{b.version}"
    assert (root / "bin" / "istioctl").is_file()
    assert (root / "samples" / "bookinfo" / "platform" / "kube" / "bookinfo.yaml").is_file()
    assert (root / "manifests" / "profiles" / "demo.yaml").is_file()
    completion = (root / "tools" / "istioctl.bash").read_text()
    assert "istioctl" in completion and "complete" in completion
    archive = b.directory / f"istio-{b.version}-linux-amd64.tar.gz"
    assert b.archive == archive
    line = (b.directory / f"{archive.name}.sha256").read_text()
    assert re.fullmatch(rf"[0-9a-f]{{64}}  {re.escape(archive.name)}\n", line)
    assert line.split()[0] == hashlib.sha256(archive.read_bytes()).hexdigest() == b.sha256
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path, filter="data")
    top = f"istio-{b.version}"
    assert {
        f"{top}/bin/istioctl",
        f"{top}/tools/istioctl.bash",
        f"{top}/samples/bookinfo/platform/kube/bookinfo.yaml",
    } <= names
    assert all(n == top or n.startswith(top + "/") for n in names)
    out = subprocess.run(
        [str(tmp_path / top / "bin" / "istioctl"), "version", "--remote=false", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(out.stdout)["clientVersion"]["version"] == b.version
    # made again: same archive (cached, and reproducible)
    assert make_bundle(echo=False).sha256 == b.sha256
