# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain exceptions of the image archive code. Modules turn them into fail_json."""

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError


class ImagesError(MeshopsError):
    """Base class of every error the images package raises."""


class ImageArchiveError(ImagesError):
    """An archive that cannot be read, is corrupt, or does not hold what it claims.

    The message names the archive, what is wrong and what to do about it.
    """

    def __init__(self, archive, problem, fix=None):
        self.archive = archive
        self.problem = problem
        self.fix = fix
        message = f"image archive {archive}: {problem}"
        if fix:
            message += f"; {fix}"
        super().__init__(message)


class ImageReferenceError(ImagesError):
    """An image name that is not a valid reference."""


class ContainerdError(ImagesError):
    """containerd could not be reached, or ctr failed."""
