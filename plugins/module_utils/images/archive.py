# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and validate an image archive: a docker-archive (``docker save``: ``manifest.json``, image
configs, layer tars) or an OCI image layout in a tar (``oci-layout``, ``index.json``, ``blobs/``).

Validation happens before anything is imported anywhere: every blob the archive's index refers to
must be there, blobs named by their digest must hash to it (OCI), a docker-archive's layers must
hash to the ``diff_ids`` of their image config, and every image must carry a name. An archive that
holds an ``oci-layout`` file is read as OCI even when it also has a ``manifest.json``, as
containerd does.

The identity of an image is its **image ID**: the digest of its config for a single-platform
image (what ``crictl images`` and the kubelet show), the digest of its index for a multi-platform
one.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import tarfile
import zlib
from dataclasses import dataclass, field

from ansible_collections.meshops.istio.plugins.module_utils.images.errors import (
    ImageArchiveError,
    ImageReferenceError,
)
from ansible_collections.meshops.istio.plugins.module_utils.images.reference import (
    is_full_reference,
    normalize,
    validate_full,
)

FORMAT_DOCKER = "docker-archive"
FORMAT_OCI = "oci"

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_OCI_REF_NAME = "org.opencontainers.image.ref.name"

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)

_CHUNK = 1 << 20
_JSON_FILES = ("manifest.json", "index.json", "oci-layout")
_SMALL_JSON = 4 << 20
_END_MARKER = 1024
_OTHER_COMPRESSION = ((b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
_HEX_NAME_RE = re.compile(r"(?:^|/)([a-f0-9]{64})(?:\.json)?$")
_SHA256_RE = re.compile(r"^sha256:([a-f0-9]{64})$")
_CORRUPT_FIX = "the file is truncated or corrupt: copy or download it again and compare its sha256 with the source"


@dataclass
class ArchiveImage:
    """One named image of an archive."""

    name: str  # as containerd names it after the import
    image_id: str  # sha256:<config digest> (single platform) or sha256:<index digest>
    media_type: str  # of the image's target: a manifest or an index
    target_digest: str = ""  # the manifest or index digest, when the archive fixes it (OCI)

    def to_dict(self):
        return {
            "name": self.name,
            "image_id": self.image_id,
            "media_type": self.media_type,
            "target_digest": self.target_digest or None,
        }


@dataclass
class Archive:
    path: str
    format: str
    images: list = field(default_factory=list)

    def by_name(self):
        return {image.name: image.image_id for image in self.images}


@dataclass
class _Member:
    size: int
    sha256: str
    gzip: bool


def _normal(name):
    name = posixpath.normpath(name.lstrip("/"))
    return "" if name == "." else name


class _Contents:
    """What one pass over the tar learned: the small JSON index files, and size, sha256 and
    compression of every regular file. Symlinks (docker save dedups layers with them) resolve."""

    def __init__(self, path):
        self.path = path
        self.members = {}
        self.json_files = {}
        self.symlinks = {}
        self._scan()

    def _open_mode(self):
        # containerd reads plain and gzip (and zstd) archives; tarfile reads plain, gzip, bzip2
        # and xz: accept what both read.
        with open(self.path, "rb") as handle:
            magic = handle.read(6)
        if magic[:2] == b"\x1f\x8b":
            return "r:gz"
        for prefix, kind in _OTHER_COMPRESSION:
            if magic.startswith(prefix):
                raise ImageArchiveError(
                    self.path, f"is compressed with {kind}", "decompress it, or compress it with gzip instead"
                )
        return "r:"

    def _scan(self):
        try:
            with tarfile.open(self.path, mode=self._open_mode()) as tar:
                for info in tar:
                    name = _normal(info.name)
                    if info.issym():
                        self.symlinks[name] = _normal(posixpath.join(posixpath.dirname(name), info.linkname))
                    elif info.islnk():
                        self.symlinks[name] = _normal(info.linkname)
                    elif info.isfile():
                        self._read_member(tar, info, name)
                # tarfile takes a file cut between two members for a shorter archive; every tar
                # writer ends an archive with two zero blocks, so their absence means it was cut.
                tar.fileobj.seek(tar.offset)
                if tar.fileobj.read(_END_MARKER).rstrip(b"\0") or tar.fileobj.tell() - tar.offset < _END_MARKER:
                    raise ImageArchiveError(
                        self.path, "ends without the end-of-archive marker of a tar (it was cut short)", _CORRUPT_FIX
                    )
        except FileNotFoundError as e:
            raise ImageArchiveError(self.path, "does not exist", "check the path") from e
        except IsADirectoryError as e:
            raise ImageArchiveError(
                self.path, "is a directory", "give the archive as one tar file (e.g. podman save -o x.tar)"
            ) from e
        except PermissionError as e:
            raise ImageArchiveError(self.path, f"cannot be read ({e.strerror})", "run with become") from e
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise ImageArchiveError(self.path, f"is not a readable tar archive ({e})", _CORRUPT_FIX) from e
        if not self.members:
            raise ImageArchiveError(self.path, "holds no files", "save the image again (docker save or podman save)")

    def _read_member(self, tar, info, name):
        handle = tar.extractfile(info)
        digest = hashlib.sha256()
        first = b""
        # index files, manifests and configs are small JSON documents: keep them for parsing
        keep = name in _JSON_FILES or info.size <= _SMALL_JSON
        kept = []
        read = 0
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            if not first:
                first = chunk[:2]
            digest.update(chunk)
            read += len(chunk)
            if keep:
                kept.append(chunk)
        if read != info.size:
            raise ImageArchiveError(
                self.path, f"member {name} ends after {read} of its {info.size} bytes", _CORRUPT_FIX
            )
        self.members[name] = _Member(size=info.size, sha256=digest.hexdigest(), gzip=first == b"\x1f\x8b")
        if keep and (name in _JSON_FILES or (first[:1] and first[:1] in b"{[ \t\r\n")):
            self.json_files[name] = b"".join(kept)

    def resolve(self, name):
        name = _normal(name)
        seen = set()
        while name in self.symlinks and name not in seen:
            seen.add(name)
            name = self.symlinks[name]
        return name if name in self.members else None

    def load_json(self, name, what):
        raw = self.json_files.get(name)
        if raw is None:
            raise ImageArchiveError(self.path, f"{what} {name} is not a JSON document", _CORRUPT_FIX)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ImageArchiveError(self.path, f"{what} {name} is not valid JSON ({e})", _CORRUPT_FIX) from e

    def uncompressed_sha256(self, name):
        """The sha256 of a member's content after gunzip (a docker-archive layer's diff_id)."""
        with tarfile.open(self.path, mode=self._open_mode()) as tar:
            handle = tar.extractfile(tar.getmember(self._member_name(tar, name)))
            digest = hashlib.sha256()
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    digest.update(inflate.decompress(chunk))
                digest.update(inflate.flush())
            except zlib.error as e:
                raise ImageArchiveError(self.path, f"layer {name} is not valid gzip ({e})", _CORRUPT_FIX) from e
            return digest.hexdigest()

    @staticmethod
    def _member_name(tar, name):
        for info in tar.getmembers():
            if _normal(info.name) == name:
                return info.name
        raise KeyError(name)


def read_archive(path):
    """Read and validate the archive at ``path``; return an :class:`Archive` or raise
    :class:`ImageArchiveError`."""
    contents = _Contents(path)
    if "oci-layout" in contents.members:
        images = _read_oci(contents)
        fmt = FORMAT_OCI
    elif "manifest.json" in contents.members:
        images = _read_docker(contents)
        fmt = FORMAT_DOCKER
    else:
        raise ImageArchiveError(
            path,
            "has neither manifest.json (docker-archive) nor oci-layout (OCI layout)",
            "save the image with docker save, podman save or skopeo copy to docker-archive: or oci-archive:",
        )
    if not images:
        raise ImageArchiveError(path, "lists no image", "save the image again")
    _check_unique_names(path, images)
    return Archive(path=path, format=fmt, images=images)


def _check_unique_names(path, images):
    seen = {}
    for image in images:
        other = seen.setdefault(image.name, image.image_id)
        if other != image.image_id:
            raise ImageArchiveError(
                path,
                f"names two different images {image.name} ({other} and {image.image_id})",
                "save each name once",
            )


# ---------------------------------------------------------------------------------------------
# docker-archive


def _read_docker(contents):
    path = contents.path
    manifest = contents.load_json("manifest.json", "the index")
    if not isinstance(manifest, list):
        raise ImageArchiveError(path, "manifest.json is not a list of images", _CORRUPT_FIX)
    images = []
    for position, entry in enumerate(manifest, 1):
        where = f"image {position} of manifest.json"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ImageArchiveError(path, f"{where} has no Config", _CORRUPT_FIX)
        config_name = contents.resolve(entry["Config"])
        if config_name is None:
            raise ImageArchiveError(path, f"{where}: its config {entry['Config']} is missing", _CORRUPT_FIX)
        config_sha = contents.members[config_name].sha256
        named = _HEX_NAME_RE.search(entry["Config"])
        if named and named.group(1) != config_sha:
            raise ImageArchiveError(
                path,
                f"{where}: config {entry['Config']} has sha256 {config_sha}, not the digest in its name",
                _CORRUPT_FIX,
            )
        config = contents.load_json(config_name, "image config")
        _check_docker_layers(contents, where, entry, config)
        tags = entry.get("RepoTags") or []
        if not tags:
            raise ImageArchiveError(
                path,
                f"{where} (image ID sha256:{config_sha}) has no name (RepoTags is empty)",
                "save it by name, e.g. docker save -o archive.tar registry/repository:tag",
            )
        for tag in tags:
            try:
                name = normalize(tag)
            except ImageReferenceError as e:
                raise ImageArchiveError(path, f"{where}: {e}", "save it under a valid name") from e
            images.append(
                ArchiveImage(
                    name=name,
                    image_id=f"sha256:{config_sha}",
                    media_type="application/vnd.docker.distribution.manifest.v2+json",
                )
            )
    return images


def _check_docker_layers(contents, where, entry, config):
    path = contents.path
    layers = entry.get("Layers")
    if not isinstance(layers, list):
        raise ImageArchiveError(path, f"{where} has no Layers list", _CORRUPT_FIX)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        raise ImageArchiveError(
            path,
            f"{where}: its config lists {len(diff_ids) if isinstance(diff_ids, list) else 'no'} layer "
            f"digests (rootfs.diff_ids) for {len(layers)} layers",
            _CORRUPT_FIX,
        )
    for layer, diff_id in zip(layers, diff_ids):
        name = contents.resolve(layer) if isinstance(layer, str) else None
        if name is None:
            raise ImageArchiveError(path, f"{where}: layer {layer} is missing", _CORRUPT_FIX)
        member = contents.members[name]
        actual = contents.uncompressed_sha256(name) if member.gzip else member.sha256
        if f"sha256:{actual}" != diff_id:
            raise ImageArchiveError(
                path,
                f"{where}: layer {layer} has sha256 {actual}, its config expects {diff_id}",
                _CORRUPT_FIX,
            )


# ---------------------------------------------------------------------------------------------
# OCI image layout


def _read_oci(contents):
    path = contents.path
    layout = contents.load_json("oci-layout", "the layout file")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise ImageArchiveError(
            path, "oci-layout does not declare imageLayoutVersion 1.0.0", "save it as an OCI image layout 1.0.0"
        )
    if "index.json" not in contents.members:
        raise ImageArchiveError(path, "is an OCI layout without index.json", _CORRUPT_FIX)
    index = contents.load_json("index.json", "the index")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise ImageArchiveError(path, "index.json has no manifests list", _CORRUPT_FIX)
    images = []
    for position, descriptor in enumerate(manifests, 1):
        where = f"image {position} of index.json"
        media_type, digest, image_id = _check_oci_target(contents, where, descriptor)
        name = _oci_name(path, where, descriptor.get("annotations") or {}, image_id)
        images.append(ArchiveImage(name=name, image_id=image_id, media_type=media_type, target_digest=digest))
    return images


def _oci_name(path, where, annotations, image_id):
    name = annotations.get(ANNOTATION_CONTAINERD_NAME) or ""
    if not name:
        ref_name = annotations.get(ANNOTATION_OCI_REF_NAME) or ""
        if ref_name and not is_full_reference(ref_name):
            raise ImageArchiveError(
                path,
                f"{where} ({image_id}) is named only by the tag {ref_name!r}",
                f"annotate it with {ANNOTATION_CONTAINERD_NAME} or a full {ANNOTATION_OCI_REF_NAME} "
                "(registry/repository:tag), e.g. skopeo copy ... oci-archive:archive.tar:registry/repository:tag",
            )
        name = ref_name
    if not name:
        raise ImageArchiveError(
            path,
            f"{where} ({image_id}) has no name",
            f"annotate it with {ANNOTATION_CONTAINERD_NAME} or {ANNOTATION_OCI_REF_NAME} "
            "(registry/repository:tag), e.g. podman save --format oci-archive registry/repository:tag",
        )
    try:
        return validate_full(name)
    except ImageReferenceError as e:
        raise ImageArchiveError(path, f"{where}: {e}", "name it with a valid reference") from e


def _check_oci_target(contents, where, descriptor):
    """Verify the manifest or index a top-level descriptor points to, with everything under it;
    return (media type, digest, image ID)."""
    media_type = descriptor.get("mediaType") if isinstance(descriptor, dict) else None
    if media_type in MANIFEST_TYPES:
        manifest = _oci_blob_json(contents, where, descriptor)
        config = manifest.get("config") if isinstance(manifest, dict) else None
        if not isinstance(config, dict):
            raise ImageArchiveError(contents.path, f"{where}: its manifest has no config", _CORRUPT_FIX)
        _oci_blob(contents, f"{where}: config", config)
        for layer in manifest.get("layers") or []:
            _oci_blob(contents, f"{where}: layer", layer)
        return media_type, descriptor["digest"], config["digest"]
    if media_type in INDEX_TYPES:
        index = _oci_blob_json(contents, where, descriptor)
        for child in (index.get("manifests") if isinstance(index, dict) else None) or []:
            _check_oci_target(contents, f"{where}, platform manifest", child)
        return media_type, descriptor["digest"], descriptor["digest"]
    raise ImageArchiveError(
        contents.path,
        f"{where} has media type {media_type!r}, neither an image manifest nor an index",
        _CORRUPT_FIX,
    )


def _oci_blob(contents, where, descriptor):
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    match = _SHA256_RE.match(digest or "")
    if not match:
        raise ImageArchiveError(
            contents.path, f"{where} has digest {digest!r}, not sha256:<64 hex>", "only sha256 digests are supported"
        )
    name = contents.resolve(f"blobs/sha256/{match.group(1)}")
    if name is None:
        raise ImageArchiveError(contents.path, f"{where}: blob {digest} is missing", _CORRUPT_FIX)
    member = contents.members[name]
    if member.sha256 != match.group(1):
        raise ImageArchiveError(
            contents.path, f"{where}: blob {digest} has sha256 {member.sha256}, not its name", _CORRUPT_FIX
        )
    if isinstance(descriptor.get("size"), int) and descriptor["size"] != member.size:
        raise ImageArchiveError(
            contents.path,
            f"{where}: blob {digest} has {member.size} bytes, its descriptor says {descriptor['size']}",
            _CORRUPT_FIX,
        )
    return name


def _oci_blob_json(contents, where, descriptor):
    name = _oci_blob(contents, where, descriptor)
    return contents.load_json(name, f"{where}: blob")
