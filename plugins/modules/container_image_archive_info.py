#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_image_archive_info
short_description: Read and validate a container image archive (docker-archive or OCI layout tar)
version_added: 0.1.0
description:
  - Reads an image archive written by C(docker save), C(podman save) (docker-archive or
    C(--format oci-archive)), C(skopeo copy ... docker-archive:) or C(oci-archive:), or
    C(ctr images export), and returns the images it holds, with the names containerd gives them
    on import and their image IDs.
  - Validates the archive before anything uses it. Every blob the index refers to must be
    present, OCI blobs must hash to the digest they are named by and have the size their
    descriptor gives, docker-archive layers must hash to the C(rootfs.diff_ids) of their image
    config, the tar must be complete, and every image must carry a full name. A broken archive
    fails with a message that names it, the problem and the fix.
  - Optionally checks the sha256 of the whole file against O(sha256).
  - Never changes anything. The role C(meshops.istio.images) runs it on the controller before it
    copies an archive anywhere.
author:
  - meshops.istio developers (@meshops)
options:
  path:
    description: The archive (a tar file, optionally gzip-compressed).
    type: path
    required: true
  sha256:
    description:
      - The sha256 the archive file must have (64 hex digits, optionally prefixed with V(sha256:)).
        A different file fails before its contents are read.
    type: str
extends_documentation_fragment:
  - meshops.istio.attributes
  - meshops.istio.attributes.info_module
attributes:
  platform:
    support: full
seealso:
  - module: meshops.istio.container_image_archive
"""

EXAMPLES = r"""
- name: Read the images of an archive on the controller
  meshops.istio.container_image_archive_info:
    path: /srv/images/istio-1.31.tar
    sha256: 3f4c0e1b0d7a5c6e2f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e
  delegate_to: localhost
  run_once: true
  register: archive

- name: Show the image names and IDs
  ansible.builtin.debug:
    msg: "{{ archive.images | items2dict(key_name='name', value_name='image_id') }}"
"""

RETURN = r"""
format:
  description: V(docker-archive) or V(oci).
  returned: always
  type: str
  sample: docker-archive
sha256:
  description: The sha256 of the archive file.
  returned: always
  type: str
  sample: 3f4c0e1b0d7a5c6e2f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e
images:
  description: The named images of the archive, in archive order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description:
        - The name containerd gives the image on import (docker-archive tags normalised, e.g.
          C(nginx) becomes C(docker.io/library/nginx:latest); OCI names as written).
      type: str
      sample: docker.io/istio/proxyv2:1.31.0
    image_id:
      description:
        - The image ID, C(sha256:) and the digest of the image config (what C(crictl images)
          shows); for a multi-platform image, the digest of its index.
      type: str
      sample: sha256:9b3c1e0f2d4a6b8c0e1f3a5b7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e
    media_type:
      description: The media type of the image's manifest or index.
      type: str
    target_digest:
      description: The digest of the manifest or index (OCI archives); V(null) for a docker-archive,
        whose manifest containerd writes on import.
      type: str
  sample:
    - name: docker.io/library/nginx:latest
      image_id: sha256:9b3c1e0f2d4a6b8c0e1f3a5b7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e
      media_type: application/vnd.docker.distribution.manifest.v2+json
      target_digest: null
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
from ansible_collections.meshops.istio.plugins.module_utils.images.archive import read_archive
from ansible_collections.meshops.istio.plugins.module_utils.images.module_support import (
    check_file_sha256,
    normal_sha256,
)


def run(module):
    path = module.params["path"]
    expected = normal_sha256(module, "sha256")
    actual = check_file_sha256(path, expected)
    archive = read_archive(path)
    return {
        "changed": False,
        "format": archive.format,
        "sha256": actual,
        "images": [image.to_dict() for image in archive.images],
    }


def main():
    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}, "sha256": {"type": "str"}},
        supports_check_mode=True,
    )
    module.exit_json(**run_module(module, lambda: run(module), "container_image_archive_info"))


if __name__ == "__main__":
    main()
