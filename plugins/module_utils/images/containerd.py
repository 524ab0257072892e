# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node's containerd holds, read and changed through ``ctr``.

``run(argv)`` is injected (``AnsibleModule.run_command`` in the module, ``subprocess`` in tests)
and returns ``(rc, stdout, stderr)``. Only ``images ls``, ``content get`` and ``images import``
are used: nothing else of the node's containerd is touched.
"""

from __future__ import annotations

import json

from ansible_collections.meshops.istio.plugins.module_utils.images.archive import INDEX_TYPES, MANIFEST_TYPES
from ansible_collections.meshops.istio.plugins.module_utils.images.errors import ContainerdError

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "k8s.io"


class Containerd:
    def __init__(self, run, ctr="ctr", address=DEFAULT_ADDRESS, namespace=DEFAULT_NAMESPACE):
        self._run = run
        self.ctr = ctr
        self.address = address
        self.namespace = namespace

    def _ctr(self, *args):
        argv = [self.ctr, "--address", self.address, "--namespace", self.namespace, *args]
        rc, out, err = self._run(argv)
        return rc, out, err, argv

    def _check(self, *args):
        rc, out, err, argv = self._ctr(*args)
        if rc != 0:
            raise ContainerdError(
                f"{' '.join(argv)} failed (rc={rc}): {(err or out).strip()[:2000]}; "
                f"is containerd running at {self.address} (namespace {self.namespace})?"
            )
        return out

    def images(self):
        """``{name: (media type, target digest)}`` of every image in the namespace."""
        out = self._check("images", "ls")
        found = {}
        for line in out.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                found[fields[0]] = (fields[1], fields[2])
        return found

    def image_id(self, media_type, digest):
        """The image ID of a target: its config digest for a manifest, its own digest for an index;
        ``None`` when the manifest is not in the content store (the image needs importing again)."""
        if media_type in INDEX_TYPES:
            return digest
        if media_type not in MANIFEST_TYPES:
            return None
        rc, out, _err, _argv = self._ctr("content", "get", digest)
        if rc != 0:
            return None
        try:
            return json.loads(out)["config"]["digest"]
        except (ValueError, KeyError, TypeError):
            return None

    def image_ids(self, names):
        """``{name: image ID or None}`` for ``names``."""
        present = self.images()
        ids = {}
        for name in names:
            target = present.get(name)
            ids[name] = self.image_id(*target) if target else None
        return ids

    def import_archive(self, path):
        self._check("images", "import", path)
