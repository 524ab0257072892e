# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers the image modules share: sha256 options and the file checksum."""

from __future__ import annotations

import hashlib
import re

from ansible_collections.meshops.istio.plugins.module_utils.images.errors import ImageArchiveError

_SHA256_OPTION_RE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


def normal_sha256(module, option):
    """The lower-case hex of a sha256 option (``sha256:`` prefix allowed), or None when unset."""
    value = module.params.get(option)
    if value is None:
        return None
    match = _SHA256_OPTION_RE.match(value.strip())
    if not match:
        module.fail_json(msg=f"{option} must be 64 hex digits (optionally prefixed with sha256:), got {value!r}")
    return match.group(1).lower()


def file_sha256(path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError as e:
        raise ImageArchiveError(path, "does not exist", "check the path") from e
    except IsADirectoryError as e:
        raise ImageArchiveError(path, "is a directory", "give the archive as one tar file") from e
    except OSError as e:
        raise ImageArchiveError(path, f"cannot be read ({e.strerror})", "check its permissions") from e
    return digest.hexdigest()


def check_file_sha256(path, expected):
    """The sha256 of ``path``; raise :class:`ImageArchiveError` when ``expected`` is given and differs."""
    actual = file_sha256(path)
    if expected and actual != expected:
        raise ImageArchiveError(
            path,
            f"has sha256 {actual}, expected {expected} (a different or damaged file)",
            "copy or download the archive again, or correct the expected sha256",
        )
    return actual
