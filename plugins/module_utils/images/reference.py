# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image names the way containerd stores them.

A docker-archive's ``RepoTags`` are normalised as containerd's importer does (Docker's
``ParseDockerRef``): ``nginx`` becomes ``docker.io/library/nginx:latest``. Names an OCI layout gives
in its annotations are stored by containerd exactly as written, so they are only validated.
"""

from __future__ import annotations

import re

from ansible_collections.meshops.istio.plugins.module_utils.images.errors import ImageReferenceError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

# The grammar of github.com/distribution/reference (lower-case path components, tag, digest).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)


def is_full_reference(name):
    """Whether containerd takes ``name`` (an OCI ref-name annotation) as a whole image name rather
    than as a tag to prefix: it does when the name holds a ``/``, ``:`` or ``@``."""
    return any(c in name for c in "/:@")


def _split_domain(name):
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        return DEFAULT_DOMAIN, name
    return first, rest


def _split_tag_digest(reference):
    before, _at, digest = reference.partition("@")
    slash = before.rfind("/")
    colon = before.rfind(":")
    if colon > slash:
        return before[:colon], before[colon + 1 :], digest
    return before, "", digest


def normalize(reference):
    """``reference`` as containerd names an image it imports from a docker-archive's RepoTags."""
    if not reference or reference != reference.strip():
        raise ImageReferenceError(f"image name {reference!r} is empty or has surrounding spaces")
    name, tag, digest = _split_tag_digest(reference)
    domain, path = _split_domain(name)
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if path.lower() != path:
        raise ImageReferenceError(f"image name {reference!r}: the repository must be lower case")
    full = f"{domain}/{path}@{digest}" if digest else f"{domain}/{path}:{tag or DEFAULT_TAG}"
    if not _REFERENCE_RE.match(full):
        raise ImageReferenceError(
            f"image name {reference!r} is not a valid image reference (expected [registry/]repository[:tag])"
        )
    return full


def validate_full(reference):
    """Raise unless ``reference`` is a valid reference as containerd stores it (no normalising)."""
    if not _REFERENCE_RE.match(reference or ""):
        raise ImageReferenceError(
            f"image name {reference!r} is not a valid image reference (expected registry/repository:tag)"
        )
    return reference
