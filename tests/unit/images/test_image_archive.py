"""images/archive.py: reading docker-archive and OCI layout tarballs, and refusing every kind of
broken archive with a message that names the archive, the problem and the fix."""

from __future__ import annotations

import gzip
import json
import tarfile

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.images.archive import (
    FORMAT_DOCKER,
    FORMAT_OCI,
    read_archive,
)
from ansible_collections.meshops.istio.plugins.module_utils.images.errors import ImageArchiveError
from tests.image_archives import docker_archive, oci_archive, sha256, write_tar

OCI_NAME = {"io.containerd.image.name": "registry.example/team/app:1.0"}


# ---------------------------------------------------------------------------------------------
# good archives


def test_docker_archive_names_are_normalised_and_id_is_config_digest(tmp_path):
    built = docker_archive(tmp_path / "a.tar", ["nginx", "registry.example:5000/team/app:v2"])
    archive = read_archive(built.path)
    assert archive.format == FORMAT_DOCKER
    assert archive.by_name() == {
        "docker.io/library/nginx:latest": built.image_id,
        "registry.example:5000/team/app:v2": built.image_id,
    }


def test_docker_archive_with_gzip_layer(tmp_path):
    built = docker_archive(tmp_path / "a.tar", ["app:1"], gzip_layer=True)
    assert read_archive(built.path).by_name() == {"docker.io/library/app:1": built.image_id}


def test_docker_archive_with_symlinked_layer(tmp_path):
    def link(members, manifest):
        layer_name = manifest[0]["Layers"][0]
        members["blobs/real-layer.tar"] = members.pop(layer_name)
        manifest[0]["Layers"] = ["linked/layer.tar"]

    path = tmp_path / "a.tar"
    built = docker_archive(path, ["app:1"], mutate=link)
    # rewrite with the symlink that docker save uses to deduplicate layers
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    write_tar(path, members, symlinks={"linked/layer.tar": "../blobs/real-layer.tar"})
    assert read_archive(built.path).by_name() == {"docker.io/library/app:1": built.image_id}


@pytest.mark.parametrize(
    ("annotations", "name"),
    [
        (OCI_NAME, "registry.example/team/app:1.0"),
        ({"org.opencontainers.image.ref.name": "localhost/app:2"}, "localhost/app:2"),
        (
            {"io.containerd.image.name": "docker.io/library/app:3", "org.opencontainers.image.ref.name": "3"},
            "docker.io/library/app:3",
        ),
    ],
    ids=["containerd-name", "full-ref-name", "containerd-name-wins-over-tag"],
)
def test_oci_names(tmp_path, annotations, name):
    built = oci_archive(tmp_path / "o.tar", annotations)
    archive = read_archive(built.path)
    assert archive.format == FORMAT_OCI
    assert archive.by_name() == {name: built.image_id}
    assert archive.images[0].target_digest == built.manifest_digest


def test_oci_multi_platform_index_is_identified_by_its_digest(tmp_path):
    built = oci_archive(tmp_path / "o.tar", OCI_NAME, index_wrapped=True)
    archive = read_archive(built.path)
    assert archive.images[0].image_id == built.manifest_digest
    assert archive.images[0].media_type == "application/vnd.oci.image.index.v1+json"


def test_oci_wins_when_archive_has_both_layouts(tmp_path):
    def add_docker_manifest(members, index):
        members["manifest.json"] = b"this would not parse"

    built = oci_archive(tmp_path / "o.tar", OCI_NAME, mutate=add_docker_manifest)
    assert read_archive(built.path).format == FORMAT_OCI


def test_gzip_compressed_archive_is_read(tmp_path):
    built = docker_archive(tmp_path / "a.tar", ["app:1"])
    with open(built.path, "rb") as raw, open(tmp_path / "a.tar.gz", "wb") as out:
        out.write(gzip.compress(raw.read()))
    assert read_archive(str(tmp_path / "a.tar.gz")).by_name() == {"docker.io/library/app:1": built.image_id}


# ---------------------------------------------------------------------------------------------
# broken archives: (id, builder, expected words of the message)


def _truncate(path, keep):
    # cut inside the members' data, not in the zero padding that ends a tar
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
        end = last.offset_data + last.size
    path.write_bytes(path.read_bytes()[: int(end * keep)])


def _docker(mutate=None, tags=("app:1",), **kw):
    return lambda p: docker_archive(p, list(tags), mutate=mutate, **kw)


_DEFAULT = object()


def _oci(mutate=None, annotations=_DEFAULT, **kw):
    return lambda p: oci_archive(p, OCI_NAME if annotations is _DEFAULT else annotations, mutate=mutate, **kw)


def _drop_layer(members, manifest):
    del members[manifest[0]["Layers"][0]]


def _flip_layer(members, manifest):
    name = manifest[0]["Layers"][0]
    members[name] = members[name].replace(b"hello from", b"HELLO FROM")


def _drop_config(members, manifest):
    del members[manifest[0]["Config"]]


def _config_renamed(members, manifest):
    # a config whose file name claims another digest
    data = members.pop(manifest[0]["Config"])
    members["0" * 64 + ".json"] = data
    manifest[0]["Config"] = "0" * 64 + ".json"


def _extra_diff_id(members, manifest):
    name = manifest[0]["Config"]
    config = json.loads(members.pop(name))
    config["rootfs"]["diff_ids"].append("sha256:" + "1" * 64)
    data = json.dumps(config).encode()
    members[f"{sha256(data)}.json"] = data
    manifest[0]["Config"] = f"{sha256(data)}.json"


def _manifest_not_list(members, manifest):
    manifest.clear()
    manifest.append("not an object")


def _blob(members, which):
    # the OCI blob holding the layer (gzip), the config or the manifest
    for name, data in members.items():
        if which == "layer" and data[:2] == b"\x1f\x8b":
            return name
        if which == "config" and b'"rootfs"' in data:
            return name
        if which == "manifest" and b'"layers"' in data:
            return name
    raise AssertionError(which)


def _oci_drop(which):
    def mutate(members, index):
        del members[_blob(members, which)]

    return mutate


def _oci_corrupt(which):
    def mutate(members, index):
        name = _blob(members, which)
        members[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])

    return mutate


def _oci_wrong_size(members, index):
    index["manifests"][0]["size"] += 1


def _oci_sha512(members, index):
    index["manifests"][0]["digest"] = "sha512:" + "a" * 128


def _oci_bad_media_type(members, index):
    index["manifests"][0]["mediaType"] = "application/octet-stream"


def _oci_layout_version(members, index):
    members["oci-layout"] = b'{"imageLayoutVersion": "2.0.0"}'


def _oci_no_index(members, index):
    index["manifests"] = "nope"


BROKEN = [
    ("docker-missing-layer", _docker(_drop_layer), ["layer", "is missing"]),
    ("docker-layer-digest-mismatch", _docker(_flip_layer), ["layer", "its config expects"]),
    ("docker-missing-config", _docker(_drop_config), ["config", "is missing"]),
    ("docker-config-name-mismatch", _docker(_config_renamed), ["not the digest in its name"]),
    ("docker-diff-ids-count", _docker(_extra_diff_id), ["2 layer digests", "for 1 layers"]),
    ("docker-no-repotags", _docker(tags=()), ["has no name", "docker save"]),
    ("docker-uppercase-name", _docker(tags=("App:1",)), ["lower case"]),
    ("docker-invalid-name", _docker(tags=("app:bad tag",)), ["not a valid image reference"]),
    ("docker-manifest-not-objects", _docker(_manifest_not_list), ["has no Config"]),
    ("oci-missing-layer", _oci(_oci_drop("layer")), ["blob", "is missing"]),
    ("oci-missing-config", _oci(_oci_drop("config")), ["config", "is missing"]),
    ("oci-missing-manifest", _oci(_oci_drop("manifest")), ["is missing"]),
    ("oci-layer-digest-mismatch", _oci(_oci_corrupt("layer")), ["not its name"]),
    ("oci-config-digest-mismatch", _oci(_oci_corrupt("config")), ["not its name"]),
    ("oci-size-mismatch", _oci(_oci_wrong_size), ["bytes, its descriptor says"]),
    ("oci-not-sha256", _oci(_oci_sha512), ["only sha256"]),
    ("oci-unknown-media-type", _oci(_oci_bad_media_type), ["neither an image manifest nor an index"]),
    ("oci-layout-version", _oci(_oci_layout_version), ["imageLayoutVersion 1.0.0"]),
    ("oci-manifests-not-list", _oci(_oci_no_index), ["no manifests list"]),
    ("oci-no-name", _oci(annotations={}), ["has no name", "io.containerd.image.name"]),
    ("oci-tag-only-name", _oci(annotations={"org.opencontainers.image.ref.name": "1.0"}), ["only by the tag '1.0'"]),
    ("oci-no-images", _oci(annotations=None), ["lists no image"]),
]


@pytest.mark.parametrize(("case_id", "build", "words"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_archive_is_refused(tmp_path, case_id, build, words):
    path = tmp_path / "broken.tar"
    build(path)
    with pytest.raises(ImageArchiveError) as excinfo:
        read_archive(str(path))
    message = str(excinfo.value)
    assert message.startswith(f"image archive {path}: ")
    for word in words:
        assert word in message
    assert excinfo.value.fix, "every refusal says what to do"


def test_oci_no_images_when_index_empty(tmp_path):
    # oci_archive(annotations=None) writes an index without manifests
    path = tmp_path / "o.tar"
    oci_archive(path, None)
    with tarfile.open(path) as tar:
        assert json.loads(tar.extractfile("index.json").read())["manifests"] == []


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95], ids=["30pct", "60pct", "95pct"])
@pytest.mark.parametrize("kind", ["docker", "oci"])
def test_truncated_archive_is_refused(tmp_path, keep, kind):
    path = tmp_path / "t.tar"
    (_docker() if kind == "docker" else _oci())(path)
    _truncate(path, keep)
    with pytest.raises(ImageArchiveError, match=r"truncated or corrupt"):
        read_archive(str(path))


def test_truncated_gzip_archive_is_refused(tmp_path):
    docker_archive(tmp_path / "a.tar", ["app:1"])
    data = gzip.compress((tmp_path / "a.tar").read_bytes())
    (tmp_path / "a.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageArchiveError, match="truncated or corrupt"):
        read_archive(str(tmp_path / "a.tar.gz"))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"this is not a tar file at all\n" * 100, "not a readable tar archive"),
        (b"", "not a readable tar archive|holds no files"),
    ],
    ids=["text", "empty"],
)
def test_not_a_tar(tmp_path, content, words):
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with pytest.raises(ImageArchiveError, match=words):
        read_archive(str(path))


@pytest.mark.parametrize(("compress", "kind"), [("bz2", "bzip2"), ("lzma", "xz")])
def test_compression_containerd_cannot_read(tmp_path, compress, kind):
    docker_archive(tmp_path / "a.tar", ["app:1"])
    module = __import__(compress)
    path = tmp_path / "a.tar.x"
    path.write_bytes(module.compress((tmp_path / "a.tar").read_bytes()))
    with pytest.raises(ImageArchiveError, match=f"is compressed with {kind}; decompress it"):
        read_archive(str(path))


def test_tar_without_any_index(tmp_path):
    path = tmp_path / "x.tar"
    write_tar(path, {"README": b"hello"})
    with pytest.raises(ImageArchiveError, match=r"neither manifest\.json .* nor oci-layout"):
        read_archive(str(path))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageArchiveError, match="does not exist"):
        read_archive(str(tmp_path / "nope.tar"))
    with pytest.raises(ImageArchiveError, match="is a directory"):
        read_archive(str(tmp_path))


def test_two_images_under_one_name(tmp_path):
    def second_image(members, manifest):
        other = tmp_path / "other.tar"
        built = docker_archive(other, ["app:1"], marker="two")
        with tarfile.open(built.path) as tar:
            extra = json.loads(tar.extractfile("manifest.json").read())
            for m in tar.getmembers():
                if m.name != "manifest.json":
                    members[m.name] = tar.extractfile(m).read()
        manifest.extend(extra)

    path = tmp_path / "a.tar"
    docker_archive(path, ["app:1"], mutate=second_image)
    with pytest.raises(ImageArchiveError, match=r"names two different images docker\.io/library/app:1"):
        read_archive(str(path))
