"""A release-layout Istio bundle made from the lab's istioctl build and the same istio.io/istio
module tree (in the Go module cache), laid out like the official release archive:

    <bundle dir>/istio-<version>/bin/istioctl
    <bundle dir>/istio-<version>/samples/...          (from the module tree)
    <bundle dir>/istio-<version>/manifests/...        (from the module tree, if present)
    <bundle dir>/istio-<version>/tools/istioctl.bash  (generated: `istioctl completion bash`)
    <bundle dir>/istio-<version>/tools/certs/...      (from the module tree, if present)
    <bundle dir>/istio-<version>/manifest.yaml, LICENSE, README.md
    <bundle dir>/istio-<version>-linux-<arch>.tar.gz
    <bundle dir>/istio-<version>-linux-<arch>.tar.gz.sha256   ("<hex>  <file name>")

The archive is reproducible (sorted entries, fixed mtime and owner), so its digest only changes
when the istioctl build or the module tree changes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from lab.cluster import build as labbuild
from lab.cluster import paths
from lab.cluster.errors import LabError

TREE_DIRS = ("samples", "manifests", "tools/certs")
TREE_FILES = ("LICENSE", "README.md")
MTIME = 0


@dataclass
class Bundle:
    version: str
    directory: Path  # holds istio-<version>/, the archive and its .sha256
    root: Path  # istio-<version>/
    archive: Path
    sha256: str

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "directory": str(self.directory),
            "root": str(self.root),
            "archive": str(self.archive),
            "sha256": self.sha256,
            "istioctl": str(self.root / "bin" / "istioctl"),
        }


def arch() -> str:
    return labbuild.go_info()["GOARCH"]


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a read-only module-cache tree, making the copy owner-writable."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(dst / rel, 0o755)
        dirnames.sort()
        for f in sorted(filenames):
            s = Path(dirpath) / f
            d = dst / rel / f
            if s.is_symlink():
                d.symlink_to(os.readlink(s))
                continue
            shutil.copyfile(s, d)
            os.chmod(d, 0o755 if os.access(s, os.X_OK) else 0o644)


def _tar(root: Path, archive: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [root, *sorted(root.rglob("*"))]
        for p in entries:
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(root.parent)))
            info.mtime = MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isfile():
                with open(p, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    with open(archive, "wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=MTIME) as gz:
        gz.write(buf.getvalue())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_bundle(force: bool = False, echo: bool = True) -> Bundle:
    b = labbuild.build("istioctl", echo=echo)
    tree = Path(b.info["Dir"])
    version = labbuild.istio_label(b.version, tree)
    name = f"istio-{version}"
    archive_name = f"{name}-linux-{arch()}.tar.gz"
    directory = paths.bundle_root() / f"{version}-{b.directory.name.rsplit('-', 1)[-1]}"
    done = directory / ".complete"

    def existing() -> Bundle:
        digest = (directory / f"{archive_name}.sha256").read_text().split()[0]
        return Bundle(version, directory, directory / name, directory / archive_name, digest)

    if done.is_file() and not force:
        return existing()
    with labbuild._build_lock():  # one bundle maker at a time; a waiting one reuses the result
        if done.is_file() and not force:
            return existing()
        return _make(b, tree, version, name, archive_name, directory, echo)


def _make(b, tree: Path, version: str, name: str, archive_name: str, directory: Path, echo: bool) -> Bundle:
    tmp = directory.with_name(f".tmp-{directory.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    root = tmp / name
    (root / "bin").mkdir(parents=True)
    shutil.copyfile(b.binaries["istioctl"], root / "bin" / "istioctl")
    os.chmod(root / "bin" / "istioctl", 0o755)
    for d in TREE_DIRS:
        if (tree / d).is_dir():
            _copy_tree(tree / d, root / d)
    for f in TREE_FILES:
        if (tree / f).is_file():
            shutil.copyfile(tree / f, root / f)
            os.chmod(root / f, 0o644)
    (root / "tools").mkdir(exist_ok=True)
    proc = subprocess.run([str(root / "bin" / "istioctl"), "completion", "bash"], capture_output=True, text=True)
    if proc.returncode != 0 or "istioctl" not in proc.stdout:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LabError(f"`istioctl completion bash` failed: {proc.stderr.strip()[:300]}", component="istioctl")
    (root / "tools" / "istioctl.bash").write_text(proc.stdout)
    (root / "manifest.yaml").write_text(
        "# Lab build of istioctl from the Go module istio.io/istio (not an official release).\n"
        f"version: {version}\n"
        f"module: {b.module}@{b.version}\n"
        f"gitRevision: {labbuild.istio_revision(b.version)}\n"
    )
    archive = tmp / archive_name
    _tar(root, archive)
    digest = sha256_file(archive)
    (tmp / f"{archive_name}.sha256").write_text(f"{digest}  {archive_name}\n")
    (tmp / ".complete").write_text(version + "\n")
    if directory.exists():
        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    os.rename(tmp, directory)
    if echo:
        import sys

        print(f"lab bundle: {directory / archive_name} (sha256 {digest})", file=sys.stderr)
    return Bundle(version, directory, directory / name, directory / archive_name, digest)
