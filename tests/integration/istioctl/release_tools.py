"""Release-layout helpers for the istioctl role tests (pytest and the molecule scenario).

* the lab's real bundle comes from ``lab/labctl bundle --json`` (istioctl built from istio.io/istio);
* ``relabel`` packs that same real bundle again under a second version label of the same length
  (``1.31.0-lab.eed52ebb`` -> ``1.31.0-relabelled00``), for upgrade tests. It is a RELABELLED COPY:
  the real istioctl with its version label bytes rewritten (the label is a string the Go linker
  put into the binary), so it runs as the real one does and reports the second version;
  ``patch_binary=False`` keeps the binary as it is, which makes an archive whose binary reports
  another version than its label (a case the role must refuse);
* ``bad_archive`` packs a small release tree with one defect each (a symlinked binary, a link
  leading out of the tree, a setuid file, no binary, a wrong top directory), and ``truncated``
  cuts a real archive in half; each comes with a matching ``.sha256``, so only the role's own
  checks can refuse them;
* ``publish`` lays releases out as the official download site does:
  ``<root>/<version>/istio-<version>-linux-<arch>.tar.gz`` and its ``.sha256``.

As a script: ``release_tools.py mirror-tree OUT_DIR`` writes the mirror tree used by the molecule
scenario (real + relabelled under OUT_DIR, the relabelled copy with a wrong .sha256 under
OUT_DIR/corrupt) and OUT_DIR/releases.json describing them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Release:
    version: str
    archive: Path
    sha256: str
    relabelled: bool = False

    @property
    def filename(self) -> str:
        return self.archive.name

    def as_dict(self) -> dict:
        return {**asdict(self), "archive": str(self.archive), "filename": self.filename}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lab_release(timeout: int = 3600) -> Release:
    """The lab's real release bundle; builds it (and istioctl) when it is not cached yet."""
    proc = subprocess.run(
        [str(REPO / "lab" / "labctl"), "bundle", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"lab/labctl bundle failed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    info = json.loads(proc.stdout)
    return Release(info["version"], Path(info["archive"]), info["sha256"])


def relabelled_version(version: str) -> str:
    """A second label of the same length as ``version`` (so that it can replace the label inside
    the binary): the pre-release becomes "relabelled" (padded or cut), e.g. 1.31.0-lab.eed52ebb ->
    1.31.0-relabelled00."""
    core, dash, rest = version.partition("-")
    pre, plus, build = rest.partition("+")
    if not dash or len(pre) < 4:
        raise ValueError(f"cannot relabel {version!r}: it needs a pre-release of 4 characters or more")
    label = ("relabelled" + "0" * len(pre))[: len(pre)]
    return f"{core}-{label}{plus}{build}"


def _patched_binary(data: bytes, old: str, new: str) -> bytes:
    if len(old) != len(new):
        raise ValueError(f"labels {old!r} and {new!r} differ in length")
    if len(old) < 10 or data.count(old.encode()) == 0:
        raise ValueError(f"the version label {old!r} is too short or not in the binary; cannot relabel it")
    return data.replace(old.encode(), new.encode())


def relabel(real: Release, version: str, workdir: Path, patch_binary: bool = True, name: str = "") -> Release:
    """Pack the real bundle again under another version label; with ``patch_binary`` the binary
    reports that label too, otherwise it still reports the real version."""
    src_top = f"istio-{real.version}"
    suffix = real.filename[len(src_top) :]  # "-linux-<arch>.tar.gz"
    dst = (workdir / name if name else workdir) / f"istio-{version}{suffix}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with (
        tarfile.open(real.archive, "r:gz") as tin,
        gzip.open(dst, "wb", compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tout,
    ):
        for member in tin:
            name_ = member.name
            if name_ != src_top and not name_.startswith(src_top + "/"):
                raise ValueError(f"{real.archive}: unexpected entry {name_} outside {src_top}/")
            member.name = f"istio-{version}" + name_[len(src_top) :]
            # a long name came in a PAX header, which would win over the new name when written
            member.pax_headers.pop("path", None)
            member.pax_headers.pop("linkpath", None)
            if member.islnk():
                member.linkname = f"istio-{version}" + member.linkname[len(src_top) :]
            data = tin.extractfile(member) if member.isfile() else None
            if data is not None and patch_binary and name_ == f"{src_top}/bin/istioctl":
                data = io.BytesIO(_patched_binary(data.read(), real.version, version))
            tout.addfile(member, data)
    return Release(version, dst, sha256_file(dst), relabelled=True)


def _entry(name: str, kind: str = "file", data: bytes = b"", mode: int = 0o644, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = mode, 1700000000
    if kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif kind == "symlink":
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    else:
        info.size = len(data)
    return info


# One defect each; the binary, where there is one, is a small script (never run: the role must
# refuse the archive before it runs anything from it).
BAD_ARCHIVES = {
    "binary-symlink-absolute": [("bin/istioctl", "symlink", "/usr/bin/true")],
    "binary-symlink-relative-out": [("bin/istioctl", "symlink", "../../../../../usr/bin/true")],
    "binary-symlink-inside": [("bin/istioctl", "symlink", "../tools/istioctl"), ("tools/istioctl", "exec", "")],
    "bin-directory-symlink": [("bin", "symlink", "/usr/bin")],
    "link-out-elsewhere": [("bin/istioctl", "exec", ""), ("manifests/profiles", "symlink", "/etc")],
    "setuid-binary": [("bin/istioctl", "setuid", "")],
    "world-writable-file": [("bin/istioctl", "exec", ""), ("tools/hook.sh", "writable", "")],
    "no-binary": [("tools/istioctl.bash", "file", "")],
    "binary-is-a-directory": [("bin/istioctl/", "dir", "")],
    "binary-does-not-run": [("bin/istioctl", "script", "exit 3")],
    "binary-prints-no-version": [("bin/istioctl", "script", "echo hello")],
}
# The archive's entries lie below another top directory than istio-<version>/.
WRONG_TOP = "wrong-top-directory"


def bad_archive(kind: str, version: str, workdir: Path, arch: str = "amd64") -> Release:
    """A release archive for ``version`` with the defect ``kind`` (BAD_ARCHIVES or WRONG_TOP)."""
    top = "istio-0.0.1-other" if kind == WRONG_TOP else f"istio-{version}"
    entries = [("bin/istioctl", "exec", "")] if kind == WRONG_TOP else BAD_ARCHIVES[kind]
    dst = workdir / kind / f"istio-{version}-linux-{arch}.tar.gz"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dst, "w:gz", format=tarfile.PAX_FORMAT) as tout:
        dirs = {top, f"{top}/bin", f"{top}/tools", f"{top}/manifests"}
        for d in sorted(dirs):
            if not any(f"{top}/{name.rstrip('/')}" == d for name, *_rest in entries):
                tout.addfile(_entry(d, "dir"))
        for name, what, arg in entries:
            path = f"{top}/{name.rstrip('/')}"
            if what == "symlink":
                tout.addfile(_entry(path, "symlink", target=arg))
            elif what == "dir":
                tout.addfile(_entry(path, "dir"))
            else:
                body = f"#!/bin/sh\n{arg or 'exit 0'}\n".encode()
                mode = {"setuid": 0o4755, "writable": 0o666, "file": 0o644}.get(what, 0o755)
                tout.addfile(_entry(path, data=body, mode=mode), io.BytesIO(body))
    return Release(version, dst, sha256_file(dst), relabelled=True)


def truncated(real: Release, version: str, workdir: Path) -> Release:
    """The first half of a real (relabelled) archive, published with its own digest."""
    whole = relabel(real, version, workdir, name="whole")
    dst = workdir / "truncated" / whole.filename
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = whole.archive.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return Release(version, dst, sha256_file(dst), relabelled=True)


def write_sha256(release: Release) -> None:
    """<archive>.sha256 next to the archive, as istioctl_archive_src expects."""
    Path(f"{release.archive}.sha256").write_text(f"{release.sha256}  {release.filename}\n")


def publish(release: Release, root: Path, sha256: str | None = None) -> None:
    """<root>/<version>/<archive> and <archive>.sha256 ("<hex>  <name>", as sha256sum writes)."""
    d = root / release.version
    d.mkdir(parents=True, exist_ok=True)
    target = d / release.filename
    if not target.exists():
        try:
            os.link(release.archive, target)
        except OSError:
            shutil.copyfile(release.archive, target)
    (d / f"{release.filename}.sha256").write_text(f"{sha256 or release.sha256}  {release.filename}\n")


WRONG_SHA256 = hashlib.sha256(b"not the archive").hexdigest()


def mirror_tree(out: Path) -> dict[str, Release]:
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    work.mkdir(exist_ok=True)
    real = lab_release()
    relabelled = relabel(real, relabelled_version(real.version), work)
    publish(real, out)
    publish(relabelled, out)
    publish(relabelled, out / "corrupt", sha256=WRONG_SHA256)
    releases = {"real": real, "relabelled": relabelled}
    (out / "releases.json").write_text(json.dumps({k: v.as_dict() for k, v in releases.items()}, indent=2) + "\n")
    return releases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mt = sub.add_parser("mirror-tree", help="write the mirror tree and releases.json into OUT_DIR")
    mt.add_argument("out", type=Path)
    args = parser.parse_args()
    try:
        releases = mirror_tree(args.out)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"release_tools: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: v.as_dict() for k, v in releases.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
