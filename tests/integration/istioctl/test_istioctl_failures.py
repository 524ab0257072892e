"""Failure paths of the istioctl role: each one a readable error and an untouched node.

Real node containers and a real HTTP mirror container (podman); the mirror's second port sends
half of every archive and closes the connection. The tests that fail before installing
anything share one container (pristine_node), each proving that it left the node as it found it.
"""

from __future__ import annotations

import re

import pytest

from .release_tools import BAD_ARCHIVES, WRONG_TOP, bad_archive, relabel, truncated, write_sha256

pytestmark = pytest.mark.podman


FAST_RETRY = {"istioctl_download_retries": 3, "istioctl_download_delay": 1, "istioctl_download_timeout": 20}


def assert_failed_untouched(result, node, before, *needles):
    assert result.rc != 0, result.output[-4000:]
    for needle in needles:
        assert re.search(needle, result.output), f"{needle!r} not in output:\n{result.output[-4000:]}"
    assert node.snapshot() == before


def test_checksum_mismatch_keeps_previous_version(node, mirror):
    real, relabelled = mirror.releases["real"], mirror.releases["relabelled"]
    r = node.play({"istioctl_version": real.version, "istioctl_mirror_url": mirror.url()})
    assert r.rc == 0, r.output[-4000:]
    before = node.snapshot()
    r = node.play(
        {"istioctl_version": relabelled.version, "istioctl_mirror_url": mirror.url(prefix="/corrupt"), **FAST_RETRY}
    )
    wrong = (mirror.root / "corrupt" / relabelled.version / f"{relabelled.filename}.sha256").read_text().split()[0]
    assert_failed_untouched(
        r, node, before, "sha256 mismatch", f"expected {wrong}", f"got {relabelled.sha256}", "nothing was installed"
    )
    assert node.link_target() == f"/opt/istio/{real.version}/bin/istioctl"
    assert real.version in node.sh("istioctl version --remote=false").stdout
    # the corrupt download is not left in the controller cache, neither whole nor partial
    assert list((node.workdir / "cache").glob(f"{relabelled.filename}*")) == []


def test_pinned_checksum_mismatch(pristine_node, mirror):
    real = mirror.releases["real"]
    before = pristine_node.snapshot()
    pinned = "0" * 64
    r = pristine_node.play(
        {
            "istioctl_version": real.version,
            "istioctl_mirror_url": mirror.url(),
            "istioctl_checksums": {real.version: {"amd64": pinned}},
        }
    )
    assert_failed_untouched(
        r,
        pristine_node,
        before,
        "sha256 mismatch",
        f"expected {pinned}",
        f"got {real.sha256}",
        re.escape(f"istioctl_checksums['{real.version}']['amd64']"),
    )


def test_mirror_404_retries_then_fails(pristine_node, mirror):
    before = pristine_node.snapshot()
    hits = mirror.hits()
    r = pristine_node.play(
        {
            "istioctl_version": "9.9.9",
            "istioctl_checksums": {"9.9.9": {"amd64": "a" * 64}},
            "istioctl_mirror_url": mirror.url(),
            **FAST_RETRY,
        }
    )
    assert_failed_untouched(
        r,
        pristine_node,
        before,
        r"Could not download http://\S+/9\.9\.9/istio-9\.9\.9-linux-amd64\.tar\.gz"
        r" after 3 attempts",
        "404",
        "Nothing was installed",
    )
    key = "8080 /9.9.9/istio-9.9.9-linux-amd64.tar.gz"
    assert mirror.hits().get(key, 0) - hits.get(key, 0) == 3


def test_connection_dropped_half_way_retries_then_fails(pristine_node, mirror):
    real = mirror.releases["real"]
    before = pristine_node.snapshot()
    hits = mirror.hits()
    r = pristine_node.play(
        {"istioctl_version": real.version, "istioctl_mirror_url": mirror.url(port=8081), **FAST_RETRY}
    )
    assert_failed_untouched(
        r,
        pristine_node,
        before,
        "Could not download .* after 3 attempts",
        "(?i)incomplete read",
        "Nothing was installed",
    )
    key = f"8081 /{real.version}/{real.filename}"
    assert mirror.hits().get(key, 0) - hits.get(key, 0) == 3
    assert list((pristine_node.workdir / "cache").glob(f"{real.filename}*")) == []


@pytest.mark.parametrize("version", ["1.24", "latest", "v1.24.2", "1.24.2 ; rm -rf /"])
def test_invalid_version(pristine_node, mirror, version):
    before = pristine_node.snapshot()
    r = pristine_node.play({"istioctl_version": version, "istioctl_mirror_url": mirror.url()})
    assert_failed_untouched(
        r,
        pristine_node,
        before,
        re.escape(f"istioctl_version '{version}' is not a release version"),
        "Set istioctl_version to\\s+X.Y.Z",
    )


def test_unsupported_arch_detected(node, mirror):
    """The host reports i686 (python runs under `setarch i686`): no archive exists for it."""
    node.sh(
        "printf '#!/bin/sh\\nexec setarch i686 /usr/bin/python3 \"$@\"\\n' > /root/python3-i686 "
        "&& chmod +x /root/python3-i686"
    )
    before = node.snapshot()
    r = node.play(
        {"istioctl_version": mirror.releases["real"].version, "istioctl_mirror_url": mirror.url()},
        interpreter="/root/python3-i686",
    )
    assert_failed_untouched(r, node, before, "has architecture 'i[36]86'", "only amd64 and arm64")


def test_unsupported_arch_set(pristine_node, mirror):
    before = pristine_node.snapshot()
    r = pristine_node.play(
        {
            "istioctl_version": mirror.releases["real"].version,
            "istioctl_arch": "s390x",
            "istioctl_mirror_url": mirror.url(),
        }
    )
    assert_failed_untouched(r, pristine_node, before, "istioctl_arch", "s390x")


def test_refuses_what_it_did_not_install_and_repairs_its_own(node, mirror):
    """A foreign file at the link path or a foreign version directory stops the role before any
    change; a version directory of its own that lost its binary is installed again."""
    real = mirror.releases["real"]
    home = f"/opt/istio/{real.version}"
    settings = {"istioctl_version": real.version, "istioctl_mirror_url": mirror.url()}

    node.sh("mkdir -p /usr/local/bin && printf 'site script\\n' > /usr/local/bin/istioctl")
    before = node.snapshot()
    r = node.play(settings)
    assert_failed_untouched(r, node, before, "/usr/local/bin/istioctl exists and was not installed by this role")
    node.sh("rm /usr/local/bin/istioctl")

    node.sh(f"mkdir -p {home}/bin && printf 'site script\\n' > {home}/bin/istioctl")
    before = node.snapshot()
    r = node.play(settings)
    assert_failed_untouched(r, node, before, re.escape(home), "carries no", "istioctl_install_root")
    node.sh(f"rm -r {home}")

    r = node.play(settings)
    assert r.rc == 0, r.output[-4000:]
    node.sh(f"rm {home}/bin/istioctl")
    r = node.play(settings)
    assert r.rc == 0, r.output[-4000:]
    assert r.changed(node.name) > 0
    assert real.version in node.sh("istioctl version --remote=false").stdout
    r = node.play(settings)
    assert r.rc == 0 and r.changed(node.name) == 0, r.output[-4000:]


# --- The archive's binary is not trusted (issue "Bad input and faults", class istioctl) ---------
# Each archive comes with a matching .sha256 next to it (istioctl_archive_src), so the digest
# check passes and only the role's own checks of what the archive holds can refuse it. After
# every refusal the node is exactly as before (snapshot) and the first version stays active.

BAD_ARCHIVE_MESSAGES = {
    "binary-symlink-absolute": "bin/istioctl is a symlink to /usr/bin/true",
    "binary-symlink-relative-out": "bin/istioctl is a symlink to ../../../../../usr/bin/true",
    "binary-symlink-inside": "bin/istioctl is a symlink to ../tools/istioctl",
    "bin-directory-symlink": "it holds no istio-[^ ]+/bin/istioctl",
    "link-out-elsewhere": "links lead out of the release: manifests/profiles -> /etc",
    "setuid-binary": "setuid, setgid or world-writable: bin/istioctl",
    "world-writable-file": "setuid, setgid or world-writable: tools/hook.sh",
    "no-binary": "it holds no istio-[^ ]+/bin/istioctl",
    "binary-is-a-directory": "bin/istioctl is not a regular executable file",
    "binary-does-not-run": "does not run on",
    "binary-prints-no-version": "reports version\\s+nothing readable",
    "wrong-top-directory": "is not the release istio-[^ ]+: entries outside",
}


def _archive_src(release):
    write_sha256(release)
    return str(release.archive)


def test_archives_whose_contents_cannot_be_trusted_install_nothing(node, mirror, tmp_path):
    real, relabelled = mirror.releases["real"], mirror.releases["relabelled"]
    r = node.play({"istioctl_version": real.version, "istioctl_mirror_url": mirror.url()})
    assert r.rc == 0, r.output[-4000:]
    before = node.snapshot()
    version = relabelled.version  # a version label the node does not have yet

    cases = {kind: bad_archive(kind, version, tmp_path) for kind in [*BAD_ARCHIVES, WRONG_TOP]}
    # the real binary under another label: it reports the real version, not the requested one
    cases["binary-reports-another-version"] = relabel(real, version, tmp_path, patch_binary=False, name="mislabelled")
    cases["truncated"] = truncated(real, version, tmp_path)
    messages = {
        **BAD_ARCHIVE_MESSAGES,
        "binary-reports-another-version": (
            f'reports version\\s+"{re.escape(real.version)}",\\s+not\\s+"{re.escape(version)}"'
        ),
        "truncated": "is not a complete gzip-compressed tar archive",
    }
    assert set(cases) == set(messages)
    for kind, release in cases.items():
        r = node.play({"istioctl_version": version, "istioctl_archive_src": _archive_src(release)})
        assert_failed_untouched(r, node, before, messages[kind], "(?i)nothing was installed")
        assert "unzip" not in r.output, (kind, r.output[-4000:])
        assert node.link_target() == f"/opt/istio/{real.version}/bin/istioctl", kind
        assert real.version in node.sh("istioctl version --remote=false").stdout
    # the relabelled copy whose binary does report its label installs
    good = relabelled
    r = node.play({"istioctl_version": version, "istioctl_archive_src": _archive_src(good)})
    assert r.rc == 0, r.output[-4000:]
    assert version in node.sh("istioctl version --remote=false").stdout


def test_absent_removes_a_link_into_a_version_whose_binary_is_a_link(node, mirror):
    """A node installed by an older release of the role from a hostile archive: the version
    directory's bin/istioctl is a symlink leading out. present installs the version again (it
    does not trust that binary) and absent leaves no dangling link."""
    real = mirror.releases["real"]
    settings = {"istioctl_version": real.version, "istioctl_mirror_url": mirror.url()}
    r = node.play(settings)
    assert r.rc == 0, r.output[-4000:]
    home = f"/opt/istio/{real.version}"
    node.sh(f"mv {home}/bin/istioctl /root/istioctl.real && ln -s /usr/bin/true {home}/bin/istioctl")
    r = node.play(settings)
    assert r.rc == 0 and r.changed(node.name) > 0, r.output[-4000:]
    assert node.sh(f"test -f {home}/bin/istioctl && ! test -L {home}/bin/istioctl", check=False).returncode == 0
    assert real.version in node.sh("istioctl version --remote=false").stdout

    node.sh(f"rm {home}/bin/istioctl && ln -s /usr/bin/true {home}/bin/istioctl")
    r = node.play({"istioctl_state": "absent"})
    assert r.rc == 0, r.output[-4000:]
    assert node.sh("test -e /usr/local/bin/istioctl || test -L /usr/local/bin/istioctl", check=False).returncode == 1
    assert node.sh("test -e /opt/istio", check=False).returncode == 1
