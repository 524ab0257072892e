"""Release-layout helpers for the istioctl role tests (pytest and the molecule scenario).

* the lab's real bundle comes from ``lab/labctl bundle --json`` (istioctl built from istio.io/istio);
* ``relabel`` packs that same real bundle again under a second version label,
  ``<real version>.relabelled`` (``-relabelled`` when it has no pre-release), for upgrade tests.
  It is a RELABELLED COPY: its binary is the same real istioctl and prints the real version,
  so tests check its directory and symlink only;
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
    """The label of the relabelled copy: one more pre-release identifier, "relabelled"."""
    core, plus, build = version.partition("+")
    core += ".relabelled" if "-" in core else "-relabelled"
    return core + plus + build


def relabel(real: Release, version: str, workdir: Path) -> Release:
    """Pack the real bundle again under another version label (same real binary inside)."""
    src_top = f"istio-{real.version}"
    suffix = real.filename[len(src_top) :]  # "-linux-<arch>.tar.gz"
    dst = workdir / f"istio-{version}{suffix}"
    with (
        tarfile.open(real.archive, "r:gz") as tin,
        gzip.open(dst, "wb", compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tout,
    ):
        for member in tin:
            name = member.name
            if name != src_top and not name.startswith(src_top + "/"):
                raise ValueError(f"{real.archive}: unexpected entry {name} outside {src_top}/")
            member.name = f"istio-{version}" + name[len(src_top) :]
            if member.islnk():
                member.linkname = f"istio-{version}" + member.linkname[len(src_top) :]
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
    return Release(version, dst, sha256_file(dst), relabelled=True)


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
