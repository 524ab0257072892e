"""The samples' workload images: Bookinfo's services built from their sources in the istio module
tree with their own runtimes, and the tutorial's nginx and tomcat from Debian's packages.

Each image is a Debian root (``catalog.debian_root``) with the runtime the service needs and a
layer of the service's files, under the exact name the manifests use. What each contains and what
differs from the upstream images is written down in ``lab/images/SAMPLES.md``.

Dependencies come from the package registries through their own clients, pinned: productpage's
from its upstream ``requirements.txt`` (versions and hashes), ratings' from our
``samples/ratings/package-lock.json``, reviews' build and Open Liberty from
``samples/reviews/pom.xml``. Downloads and builds print progress every 30 s.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from lab.cluster import build as labbuild
from lab.cluster.errors import LabError
from lab.images import archive, catalog
from lab.images.catalog import Image

HERE = Path(__file__).resolve().parent / "samples"
BOOKINFO_HUB = "registry.istio.io/release"
BOOKINFO_TAG = "1.20.3"  # what the module tree's samples/bookinfo/platform/kube/bookinfo.yaml names

# The roots: what every sample root has (CA certificates, curl for checks from inside, passwd for
# the istio-proxy user the roots carry) and each service's runtime from Debian bookworm.
SAMPLE_BASE = ("ca-certificates", "curl", "passwd")
# gevent's greenlet is C++: libstdc++6 (not in the lab's shared root)
PRODUCTPAGE_PACKAGES = (*SAMPLE_BASE, "python3", "libstdc++6")
DETAILS_PACKAGES = (*SAMPLE_BASE, "ruby", "ruby-webrick")
RATINGS_PACKAGES = (*SAMPLE_BASE, "nodejs")
REVIEWS_PACKAGES = (*SAMPLE_BASE, "openjdk-17-jre-headless")
NGINX_PACKAGES = (*SAMPLE_BASE, "nginx")
# tomcat10 wants systemd's sysusers and tmpfiles; the standalone packages provide them alone
TOMCAT_PACKAGES = (
    *SAMPLE_BASE, "openjdk-17-jre-headless", "tomcat10", "systemd-standalone-sysusers", "systemd-standalone-tmpfiles"
)  # fmt: skip

# productpage runs on Debian's python3 (bookworm: CPython 3.11); wheels for that.
PYTHON_TARGET = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
                 "--abi", "none", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                 "--platform", "manylinux_2_28_x86_64", "--platform", "any"]  # fmt: skip
# requirements.txt pins these with hashes of their sdists only: no wheel exists on the index, so
# they are downloaded as sdists (hash-checked) and made into wheels here (all pure Python)
PRODUCTPAGE_SDIST_ONLY = ("flask-bootstrap", "json2html", "visitor")
SITE_PACKAGES = "/usr/local/lib/python3.11/dist-packages"
# upstream's CMD, gunicorn run as a module of Debian's python3 (no console scripts in the image)
PRODUCTPAGE_CMD = ["python3", "-m", "gunicorn", "-b", "[::]:9080", "productpage:app", "-w", "8", "--keep-alive", "2",
                   "-k", "gevent"]  # fmt: skip  # on Debian's sys.path, outside dpkg's

LIBERTY = "/opt/ol/wlp"  # where upstream's Open Liberty image has it
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


def bookinfo_src() -> Path:
    """``samples/bookinfo/src`` of the istio module the lab's istioctl pins."""
    return labbuild.module_dir("istio") / "samples" / "bookinfo" / "src"


# ---- helpers


def _tree_digest(root: Path, skip: tuple[str, ...] = ()) -> bytes:
    """One digest of every file under ``root`` (relative path, mode's exec bit and content)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in skip:
            continue
        h.update(f"{rel}\0{os.access(path, os.X_OK)}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest().encode()


def _tree_files(src: Path, dest: str, skip: tuple[str, ...] = ()) -> list[archive.File]:
    """The regular files under ``src`` as files under ``dest`` in the image (symlinks followed;
    top-level names in ``skip`` left out), executable where they are here."""
    files = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if rel.split("/")[0] in skip or not path.is_file():
            continue
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        files.append(archive.File(f"{dest}/{rel}", source=path, mode=mode))
    return files


def _run(cmd: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    """Run a step with its output in a log in ``cwd``, saying every 30 s what it is doing."""
    log_path = cwd / f"{_slug(what)}.log"
    with open(log_path, "w") as log:
        proc = labbuild.run_with_progress(cmd, cwd, log, log_path, what, True, env or dict(os.environ))
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").strip()[-1200:]
        raise LabError(f"{what} failed (exit {proc.returncode}): {tail}", component="images")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")


def _tool_version(cmd: list[str]) -> bytes:
    if not shutil.which(cmd[0]):
        raise LabError(f"{cmd[0]} is not installed; it builds a sample image", component="images")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip().splitlines()[0].encode()


def _recipe(parts: Callable[[], list[bytes]]) -> Callable[[], list[bytes]]:
    """``parts`` and this file: a change of a recipe (command, environment, files) rebuilds."""
    return lambda: [*parts(), hashlib.sha256(Path(__file__).read_bytes()).hexdigest().encode()]


def _root_key(packages: tuple[str, ...]) -> bytes:
    return " ".join(packages).encode()


def _name(service: str) -> str:
    return f"{BOOKINFO_HUB}/examples-bookinfo-{service}:{BOOKINFO_TAG}"


# ---- productpage: Python, its requirements.txt from PyPI, on Debian's python3


def _requirement_blocks(text: str) -> dict[str, str]:
    """``name -> the requirement with its hash lines`` of a pip-compile'd requirements file."""
    blocks = {}
    for match in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+(?: \\\n(?:[ \t]+--hash=\S+(?: \\)?\n?)+)", text, re.M):
        blocks[match.group(1).lower()] = match.group(0).rstrip(" \\\n") + "\n"
    return blocks


def _productpage_site(work: Path) -> Path:
    """productpage's requirements, installed for the image's python3 into ``work/site``."""
    blocks = _requirement_blocks((bookinfo_src() / "productpage" / "requirements.txt").read_text())
    binary = work / "binary.txt"
    binary.write_text("".join(b for n, b in blocks.items() if n not in PRODUCTPAGE_SDIST_ONLY))
    sdist = work / "sdist.txt"
    sdist.write_text("".join(blocks[n] for n in PRODUCTPAGE_SDIST_ONLY))
    wheels, sdists = work / "wheels", work / "sdists"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "download", "--no-deps", "--require-hashes", "--only-binary=:all:", *PYTHON_TARGET,
          "--dest", str(wheels), "-r", str(binary)], work, "pip download (productpage wheels)")  # fmt: skip
    _run([*pip, "download", "--no-deps", "--require-hashes", "--no-binary=:all:", "--dest", str(sdists),
          "-r", str(sdist)], work, "pip download (productpage sdists)")  # fmt: skip
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), *map(str, sorted(sdists.iterdir()))],
         work, "pip wheel (productpage sdists)")  # fmt: skip
    pins = [re.match(r"\S+==\S+", b).group(0) for b in blocks.values()]
    site = work / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--find-links", str(wheels), "--only-binary=:all:",
          *PYTHON_TARGET, "--no-compile", "--target", str(site), *pins], work, "pip install (productpage)")  # fmt: skip
    return site


def _productpage_key() -> list[bytes]:
    src = bookinfo_src() / "productpage"
    return [
        _root_key(PRODUCTPAGE_PACKAGES),
        (src / "requirements.txt").read_bytes(),
        (src / "productpage.py").read_bytes(),
        _tree_digest(src / "templates"),
        _tree_digest(src / "static"),
        " ".join([*PYTHON_TARGET, *PRODUCTPAGE_SDIST_ONLY, SITE_PACKAGES]).encode(),
    ]


def _make_productpage(work: Path):
    src = bookinfo_src() / "productpage"
    # bin/ has console scripts with this machine's interpreter; gunicorn runs as python3 -m
    site = archive.files_layer(_tree_files(_productpage_site(work), SITE_PACKAGES, skip=("bin",)))
    app = archive.files_layer(
        [
            archive.File("/opt/microservices/productpage.py", source=src / "productpage.py"),
            archive.File("/opt/microservices/requirements.txt", source=src / "requirements.txt"),
            *_tree_files(src / "templates", "/opt/microservices/templates"),
            *_tree_files(src / "static", "/opt/microservices/static"),
        ]
    )
    config = archive.ImageConfig(
        cmd=PRODUCTPAGE_CMD,
        env=[f"PATH={archive.DEFAULT_PATH}", "FLOOD_FACTOR=0"],
        user="1000",
        workdir="/opt/microservices",
    )
    return [catalog.debian_root(PRODUCTPAGE_PACKAGES), site, app], config


# ---- details: Ruby, Debian's ruby and ruby-webrick (the Gemfile's one gem)


def _details_key() -> list[bytes]:
    return [_root_key(DETAILS_PACKAGES), (bookinfo_src() / "details" / "details.rb").read_bytes()]


def _make_details(work: Path):
    app = archive.files_layer(
        [archive.File("/opt/microservices/details.rb", source=bookinfo_src() / "details" / "details.rb")]
    )
    config = archive.ImageConfig(
        cmd=["ruby", "details.rb", "9080"],
        env=[f"PATH={archive.DEFAULT_PATH}", "SERVICE_VERSION=v1", "ENABLE_EXTERNAL_BOOK_SERVICE=false"],
        user="1000",
        workdir="/opt/microservices",
    )
    return [catalog.debian_root(DETAILS_PACKAGES), app], config


# ---- ratings: Node.js, Debian's nodejs and the npm packages of our lock of its package.json


def _ratings_key() -> list[bytes]:
    src = bookinfo_src() / "ratings"
    return [
        _root_key(RATINGS_PACKAGES),
        (src / "package.json").read_bytes(),
        (src / "ratings.js").read_bytes(),
        (HERE / "ratings" / "package-lock.json").read_bytes(),
    ]


def _make_ratings(work: Path):
    src = bookinfo_src() / "ratings"
    npm_dir = work / "ratings"
    npm_dir.mkdir()
    shutil.copyfile(src / "package.json", npm_dir / "package.json")
    shutil.copyfile(HERE / "ratings" / "package-lock.json", npm_dir / "package-lock.json")
    # every dependency is plain JavaScript: nothing to compile, no install scripts to run
    _run(["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], npm_dir, "npm ci (ratings)")
    app = archive.files_layer(
        [
            archive.File("/opt/microservices/package.json", source=src / "package.json"),
            archive.File("/opt/microservices/ratings.js", source=src / "ratings.js"),
            *_tree_files(npm_dir / "node_modules", "/opt/microservices/node_modules", skip=(".bin",)),
        ]
    )
    config = archive.ImageConfig(
        cmd=["node", "/opt/microservices/ratings.js", "9080"],
        env=[f"PATH={archive.DEFAULT_PATH}", "SERVICE_VERSION=v1"],
        user="1000",
        workdir="/opt/microservices",
    )
    return [catalog.debian_root(RATINGS_PACKAGES), app], config


# ---- reviews: Java, the WAR built with Maven, on Open Liberty from Maven Central


def _reviews_key() -> list[bytes]:
    return [
        _root_key(REVIEWS_PACKAGES),
        _tree_digest(bookinfo_src() / "reviews" / "reviews-application" / "src" / "main"),
        _reviews_server_xml().read_bytes(),
        (HERE / "reviews" / "pom.xml").read_bytes(),
        _tool_version(["javac", "-version"]),
    ]


@functools.cache
def _reviews_build() -> Path:
    """Open Liberty with only the features reviews' server.xml names and the reviews WAR in it
    (``reviews.zip``), built once for the three versions and kept by content key.

    Maven builds the WAR and fetches the full Open Liberty runtime (343 MB zip); ``server package
    --include=minify`` starts that server once and keeps what it uses (about 38 MB), as upstream's
    kernel-slim image plus ``featureUtility installServerFeatures`` does."""
    key = hashlib.sha256(b"\0".join(_reviews_key())).hexdigest()[:16]
    root = catalog.images_root()
    dest = root / f"reviews-build-{key}"
    if (dest / "reviews.zip").is_file():
        return dest
    work = root / f".reviews-build-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _run(["mvn", "--batch-mode", "--no-transfer-progress", "-f", str(HERE / "reviews" / "pom.xml"),
              f"-Dbookinfo.reviews={bookinfo_src() / 'reviews'}", f"-Dbuild.dir={work / 'maven'}", "package"],
             work, "maven (reviews WAR, Open Liberty)")  # fmt: skip
        _unzip(work / "maven" / "liberty" / "openliberty-runtime.zip", work)
        server = work / "wlp" / "usr" / "servers" / "defaultServer"
        (server / "apps").mkdir(parents=True)
        shutil.copyfile(_reviews_server_xml(), server / "server.xml")
        shutil.copyfile(work / "maven" / "reviews-application-1.0.war", server / "apps" / "reviews-application-1.0.war")
        env = {**os.environ, "JAVA_HOME": JAVA_HOME}
        _run([str(work / "wlp" / "bin" / "server"), "package", "defaultServer", f"--archive={work / 'reviews.zip'}",
              "--include=minify"], work, "Open Liberty minify (reviews)", env)  # fmt: skip
        dest_tmp = root / f".reviews-done-{key}"
        dest_tmp.mkdir()
        (work / "reviews.zip").rename(dest_tmp / "reviews.zip")
        for old in root.glob("reviews-build-*"):
            shutil.rmtree(old, ignore_errors=True)
        dest_tmp.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _reviews_server_xml() -> Path:
    return bookinfo_src() / "reviews" / "reviews-wlpcfg" / "servers" / "LibertyProjectServer" / "server.xml"


def _unzip(zip_path: Path, dest: Path) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            out = Path(zf.extract(info, dest))
            if not info.is_dir() and (info.external_attr >> 16) & 0o111:
                out.chmod(0o755)


def _liberty_files(zip_path: Path) -> list[archive.File]:
    """The files of a Liberty server package under LIBERTY (the zip's top directory is ``wlp/``),
    without the work area the minify run left."""
    files = []
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith("wlp/") or "/workarea/" in info.filename:
                continue
            executable = bool((info.external_attr >> 16) & 0o111)
            data = zf.read(info)
            files.append(archive.File(f"{LIBERTY}/{info.filename[4:]}", data=data, mode=0o755 if executable else 0o644))
    return files


def _make_reviews(version: str, ratings: bool, star_color: str):
    def make(work: Path):
        liberty = archive.files_layer(_liberty_files(_reviews_build() / "reviews.zip"))
        env = [
            f"PATH={archive.DEFAULT_PATH}",
            f"JAVA_HOME={JAVA_HOME}",
            # the image's files are root's: Liberty writes its logs and work area here instead
            "WLP_OUTPUT_DIR=/tmp/wlp-output",
            f"SERVICE_VERSION={version}",
            f"ENABLE_RATINGS={str(ratings).lower()}",
            f"STAR_COLOR={star_color}",
        ]
        config = archive.ImageConfig(cmd=[f"{LIBERTY}/bin/server", "run", "defaultServer"], env=env, user="1001")
        return [catalog.debian_root(REVIEWS_PACKAGES), liberty], config

    return make


# ---- the tutorial's nginx and tomcat: Debian's packages under the names the tutorial uses

# upstream nginx image's default.conf: port 80 (IPv4 only), /usr/share/nginx/html, logs to the
# container's output
NGINX_SITE = b"""server {
    listen       80;
    server_name  localhost;
    access_log   /dev/stdout;
    error_log    /dev/stderr;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"""


def _make_nginx(work: Path):
    # replaces Debian's default site (a symlink to sites-available/default in the root)
    site = archive.files_layer([archive.File("/etc/nginx/sites-enabled/default", data=NGINX_SITE)])
    config = archive.ImageConfig(cmd=["nginx", "-g", "daemon off;"])
    return [catalog.debian_root(NGINX_PACKAGES), site], config


def _make_tomcat(work: Path):
    env = [
        f"PATH={archive.DEFAULT_PATH}",
        f"JAVA_HOME={JAVA_HOME}",
        "CATALINA_HOME=/usr/share/tomcat10",
        "CATALINA_BASE=/var/lib/tomcat10",
        "CATALINA_TMPDIR=/tmp",
    ]
    config = archive.ImageConfig(cmd=["/usr/share/tomcat10/bin/catalina.sh", "run"], env=env, user="tomcat")
    return [catalog.debian_root(TOMCAT_PACKAGES)], config


def sample_images() -> list[Image]:
    """The samples' images, by the names Bookinfo's YAML and the samples role use."""
    src = "from samples/bookinfo/src of the lab's istio module"
    reviews_about = "Bookinfo reviews {v} ({w}): the WAR built with Maven " + src + ", on Open Liberty 24.0.0.12 " \
        "(Maven Central) and Debian's OpenJDK 17"  # fmt: skip
    return [
        Image(
            _name("productpage-v1"),
            _recipe(_productpage_key),
            _make_productpage,
            f"Bookinfo productpage {src}: Debian's python3 (3.11), requirements.txt's pins from PyPI, gunicorn",
        ),
        Image(
            _name("details-v1"),
            _recipe(_details_key),
            _make_details,
            f"Bookinfo details {src}: Debian's ruby and ruby-webrick (RubyGems is not reachable)",
        ),
        Image(
            _name("ratings-v1"),
            _recipe(_ratings_key),
            _make_ratings,
            f"Bookinfo ratings {src}: Debian's nodejs, npm packages of lab/images/samples/ratings/package-lock.json",
        ),
        *(
            Image(
                _name(f"reviews-{v}"),
                _recipe(_reviews_key),
                _make_reviews(v, ratings, color),
                reviews_about.format(v=v, w=w),
            )
            for v, ratings, color, w in (
                ("v1", False, "black", "no ratings"),
                ("v2", True, "black", "black stars"),
                ("v3", True, "red", "red stars"),
            )
        ),
        Image(
            "docker.io/library/nginx:1.14-alpine",
            _recipe(lambda: [_root_key(NGINX_PACKAGES)]),
            _make_nginx,
            "stand-in for the tutorial's nginx:1.14-alpine: Debian's nginx 1.22 with upstream's default site "
            "(port 80, 'Welcome to nginx!')",
        ),
        Image(
            "docker.io/kubeguide/tomcat-app:v1",
            _recipe(lambda: [_root_key(TOMCAT_PACKAGES)]),
            _make_tomcat,
            "stand-in for the tutorial's kubeguide/tomcat-app:v1: Debian's Tomcat 10 and OpenJDK 17, "
            "its default ROOT page on 8080",
        ),
    ]
