"""Write small, real image archives for the tests: a docker-archive (what ``docker save`` writes)
and an OCI image layout tar (what ``podman save --format oci-archive`` writes), each with one tiny
layer. ``mutate`` callbacks let a test break them in one precise way before they are written."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def config_json(diff_ids: list[str], marker: str) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/hello"], "Labels": {"test.marker": marker}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def write_tar(path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


@dataclass
class Built:
    path: str
    image_id: str  # sha256:<config digest>
    manifest_digest: str = ""  # OCI only


def docker_archive(path, tags, marker="one", gzip_layer=False, mutate=None) -> Built:
    """A docker-archive of one image named ``tags`` (RepoTags). ``mutate(members, manifest)`` may
    change the members (name -> bytes) and the manifest.json list before they are written."""
    layer = layer_tar({"hello": f"hello from {marker}\n".encode()})
    diff_id = f"sha256:{sha256(layer)}"
    stored = gzip.compress(layer, mtime=0) if gzip_layer else layer
    config = config_json([diff_id], marker)
    config_name = f"{sha256(config)}.json"
    layer_name = f"{sha256(layer)}/layer.tar"
    members = {config_name: config, layer_name: stored}
    manifest = [{"Config": config_name, "RepoTags": list(tags), "Layers": [layer_name]}]
    if mutate:
        mutate(members, manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    write_tar(path, members)
    return Built(path=str(path), image_id=f"sha256:{sha256(config)}")


def oci_archive(path, annotations, marker="one", mutate=None, index_wrapped=False) -> Built:
    """An OCI layout tar of one image, its top-level descriptor annotated with ``annotations``.
    ``mutate(members, index)`` may change blobs (``blobs/sha256/<hex>`` -> bytes) and index.json.
    ``index_wrapped`` puts the manifest under an image index (a multi-platform image)."""
    layer = gzip.compress(layer_tar({"hello": f"hello from {marker}\n".encode()}), mtime=0)
    diff_id = f"sha256:{sha256(gzip.decompress(layer))}"
    config = config_json([diff_id], marker)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{sha256(config)}",
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{sha256(layer)}",
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    blobs = {sha256(b): b for b in (layer, config, manifest)}
    top = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": f"sha256:{sha256(manifest)}",
        "size": len(manifest),
    }
    if index_wrapped:
        inner = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{**top, "platform": {"architecture": "amd64", "os": "linux"}}],
            }
        ).encode()
        blobs[sha256(inner)] = inner
        top = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": f"sha256:{sha256(inner)}",
            "size": len(inner),
        }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    if annotations is not None:
        index["manifests"].append({**top, "annotations": dict(annotations)} if annotations else dict(top))
    members = {f"blobs/sha256/{hexd}": data for hexd, data in blobs.items()}
    if mutate:
        mutate(members, index)
    members = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), **members}
    members["index.json"] = json.dumps(index).encode()
    write_tar(path, members)
    image_id = top["digest"] if index_wrapped else f"sha256:{sha256(config)}"
    return Built(path=str(path), image_id=image_id, manifest_digest=top["digest"])
