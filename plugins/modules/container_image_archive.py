#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_image_archive
short_description: Load the images of an image archive into a node's containerd, by image ID
version_added: 0.1.0
description:
  - Makes a node's containerd hold the images of an image archive (docker-archive or OCI layout
    tar, see M(meshops.istio.container_image_archive_info)) under their names, for air-gapped
    nodes without a registry.
  - Idempotent by image ID. It compares, for every name in the archive, the image ID the archive
    holds (the digest of the image config; of the index for a multi-platform image) with the one
    containerd has under that name, and imports the archive with C(ctr images import) only when
    a name is absent or holds another image. A second run changes nothing.
  - The archive is validated before anything is imported; a corrupt, truncated or mismatched
    archive fails with a message that names it and the fix.
  - Touches nothing else. It runs only C(ctr images ls), C(ctr content get) and C(ctr images
    import) in O(namespace). Images of other names are left as they are.
  - containerd only. CRI-O and podman nodes (C(podman load)) are not supported yet.
author:
  - meshops.istio developers (@meshops)
options:
  path:
    description:
      - The archive on the node (a tar file, optionally gzip-compressed).
      - Required to import. With O(images) it is only read when something needs importing, or in
        check mode when it exists; the role C(meshops.istio.images) copies it to the node only
        then.
    type: path
  images:
    description:
      - The images the archive holds, as RV(meshops.istio.container_image_archive_info#module:images)
        returns them (each with C(name) and C(image_id); other keys are ignored).
      - Lets the module compare the node without the archive. When the archive is read too, it
        must hold exactly these images, else the module fails (a mismatched archive).
    type: list
    elements: dict
  ctr:
    description: The C(ctr) binary, a name looked up on PATH or an absolute path.
    type: str
    default: ctr
  address:
    description: The containerd socket.
    type: path
    default: /run/containerd/containerd.sock
  namespace:
    description:
      - The containerd namespace. The kubelet (CRI) uses V(k8s.io); images elsewhere are
        invisible to Kubernetes.
    type: str
    default: k8s.io
extends_documentation_fragment:
  - meshops.istio.attributes
attributes:
  check_mode:
    support: full
    details: It reads containerd (and the archive when it exists) and reports what an import would change.
  diff_mode:
    support: full
    details: The image ID of every name of the archive, before and after.
  platform:
    support: full
notes:
  - Needs access to the containerd socket (usually root, C(become=true)).
seealso:
  - module: meshops.istio.container_image_archive_info
"""

EXAMPLES = r"""
- name: Load the Istio images into the node's containerd
  meshops.istio.container_image_archive:
    path: /var/tmp/istio-images.tar
  become: true

- name: Ask whether the node lacks any image of an archive, without the archive
  meshops.istio.container_image_archive:
    images: "{{ archive.images }}"  # from meshops.istio.container_image_archive_info
  check_mode: true
  become: true
  register: node_images

- name: Load into a containerd at another socket and namespace
  meshops.istio.container_image_archive:
    path: /var/tmp/tools.tar
    ctr: /opt/containerd/bin/ctr
    address: /run/k3s/containerd/containerd.sock
    namespace: default
  become: true
"""

RETURN = r"""
images:
  description: Every name of the archive with the image ID it should hold and held before.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The image name as containerd stores it.
      type: str
    image_id:
      description: The image ID of the archive's image.
      type: str
    before:
      description: The image ID containerd held under the name before, V(null) when none.
      type: str
    changed:
      description: Whether the import changed (or would change) this name.
      type: bool
  sample:
    - name: docker.io/istio/pilot:1.31.0
      image_id: sha256:9b3c1e0f2d4a6b8c0e1f3a5b7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e
      before: null
      changed: true
missing:
  description: The names that were absent or held another image (imported, or to import in check mode).
  returned: always
  type: list
  elements: str
  sample: [docker.io/istio/pilot:1.31.0]
format:
  description: V(docker-archive) or V(oci); V(null) when the archive was not read.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
from ansible_collections.meshops.istio.plugins.module_utils.images.archive import read_archive
from ansible_collections.meshops.istio.plugins.module_utils.images.containerd import (
    DEFAULT_ADDRESS,
    DEFAULT_NAMESPACE,
    Containerd,
)
from ansible_collections.meshops.istio.plugins.module_utils.images.errors import (
    ContainerdError,
    ImageArchiveError,
)
from ansible_collections.meshops.istio.plugins.module_utils.images.plan import plan


def _ctr_binary(module):
    ctr = module.params["ctr"]
    if "/" in ctr:
        if not (os.path.isfile(ctr) and os.access(ctr, os.X_OK)):
            module.fail_json(msg=f"ctr: {ctr} is not an executable file; give the path of containerd's ctr")
        return ctr
    return module.get_bin_path(ctr, required=True, opt_dirs=["/usr/local/bin", "/usr/bin", "/usr/local/sbin"])


def _expected_images(module):
    expected = {}
    for position, image in enumerate(module.params["images"] or [], 1):
        name, image_id = image.get("name"), image.get("image_id")
        if not isinstance(name, str) or not isinstance(image_id, str) or not name or not image_id:
            module.fail_json(
                msg=f"images[{position}] needs a name and an image_id (as container_image_archive_info returns them)"
            )
        expected[name] = image_id
    return expected


def _check_matches(archive, expected):
    held = archive.by_name()
    if expected and held != expected:
        raise ImageArchiveError(
            archive.path,
            f"holds {held} but the images option expects {expected} (a mismatched archive)",
            "copy the archive the images were read from, or read this one with container_image_archive_info",
        )


def run(module):
    path = module.params["path"]
    address = module.params["address"]
    expected = _expected_images(module)

    archive = None
    if path and (not expected or os.path.exists(path)):
        archive = read_archive(path)
        _check_matches(archive, expected)
    wanted = archive.by_name() if archive else expected

    if not os.path.exists(address):
        raise ContainerdError(f"containerd socket {address} does not exist; start containerd or set address")
    containerd = Containerd(
        lambda argv: module.run_command(argv, environ_update={"LANG": "C", "LC_ALL": "C"}),
        ctr=_ctr_binary(module),
        address=address,
        namespace=module.params["namespace"],
    )
    prediction = plan(wanted, containerd.image_ids(wanted))
    result = {
        "changed": prediction.changed,
        "images": prediction.images(),
        "missing": prediction.missing,
        "format": archive.format if archive else None,
    }
    if module._diff:
        result["diff"] = prediction.diff(f"containerd {address} namespace {module.params['namespace']}")
    if not prediction.changed or module.check_mode:
        return result
    if archive is None:
        module.fail_json(msg=f"path is required to import {', '.join(prediction.missing)}", **result)

    containerd.import_archive(path)
    after = containerd.image_ids(wanted)
    wrong = {name: after.get(name) for name, image_id in wanted.items() if after.get(name) != image_id}
    if wrong:
        instead = {name: wanted[name] for name in wrong}
        raise ContainerdError(
            f"after importing {path}, containerd (namespace {containerd.namespace}) holds {wrong} instead of {instead}"
        )
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path"},
            "images": {"type": "list", "elements": "dict"},
            "ctr": {"type": "str", "default": "ctr"},
            "address": {"type": "path", "default": DEFAULT_ADDRESS},
            "namespace": {"type": "str", "default": DEFAULT_NAMESPACE},
        },
        required_one_of=[["path", "images"]],
        supports_check_mode=True,
    )
    module.exit_json(**run_module(module, lambda: run(module), "container_image_archive"))


if __name__ == "__main__":
    main()
