"""Write a docker-archive (what ``docker save`` / ``podman save`` produce and ``ctr images import``
reads): ``manifest.json``, one JSON image config and uncompressed layer tars.

Layers are written reproducibly (sorted entries, mtime 0, owner root unless given), so the same
inputs give the same bytes and the same image ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class File:
    """One file of a layer: ``data`` (bytes) or ``source`` (a path on this machine)."""

    path: str  # inside the image, absolute
    data: bytes | None = None
    source: Path | None = None
    mode: int = 0o644


@dataclass
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [f"PATH={DEFAULT_PATH}"])
    user: str = ""
    workdir: str = ""


def files_layer(files: list[File]) -> bytes:
    """A layer tar of ``files`` and their parent directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for f in sorted(files, key=lambda f: f.path):
            parts = f.path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            data = f.data if f.data is not None else Path(f.source).read_bytes()
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), f.mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(dest: Path, name: str, layers: list[Path | bytes], config: ImageConfig) -> str:
    """Write the archive of image ``name`` (``registry/repo:tag``) to ``dest``; return its image ID
    (``sha256:`` + the digest of the config, as ``ctr``/``crictl`` show it)."""
    blobs: list[tuple[str, Path | bytes]] = []
    diff_ids = []
    for layer in layers:
        digest = _sha(layer) if isinstance(layer, bytes) else _file_sha(layer)
        diff_ids.append(f"sha256:{digest}")
        blobs.append((f"{digest}/layer.tar", layer))
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            k: v
            for k, v in (
                ("Entrypoint", config.entrypoint),
                ("Cmd", config.cmd),
                ("Env", config.env),
                ("User", config.user),
                ("WorkingDir", config.workdir),
            )
            if v
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "meshops.istio lab image builder"}],
    }
    cfg_bytes = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
    cfg_digest = _sha(cfg_bytes)
    manifest = [{"Config": f"{cfg_digest}.json", "RepoTags": [name], "Layers": [b[0] for b in blobs]}]
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "manifest.json", json.dumps(manifest).encode())
        _add(tar, f"{cfg_digest}.json", cfg_bytes)
        for arcname, layer in blobs:
            if isinstance(layer, bytes):
                _add(tar, arcname, layer)
            else:
                info = tarfile.TarInfo(arcname)
                info.size, info.mode = Path(layer).stat().st_size, 0o644
                with open(layer, "rb") as fh:
                    tar.addfile(info, fh)
    tmp.replace(dest)
    return f"sha256:{cfg_digest}"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
