# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: istioctl_reported_version
short_description: "Internal to the istioctl role: the version an istioctl binary reports"
version_added: 0.1.0
author: meshops.istio developers
description:
  - B(Internal) to the M(meshops.istio.istioctl) role, and may change without notice;
    it is not part of the collection's public interface.
  - Reads the output of C(istioctl version --remote=false -o json) and returns the client
    version, C(clientVersion.version). Output that is not that JSON is read as text, as older
    releases print it (C(client version 1.24.2) with a colon after C(version), or a line holding
    only the version).
  - Returns an empty string when the output names no version.
options:
  _input:
    description: The standard output of C(istioctl version --remote=false -o json).
    type: string
    required: true
"""

EXAMPLES = r"""
- name: The version the unpacked binary reports (internal to meshops.istio.istioctl)
  ansible.builtin.set_fact:
    reported: "{{ version_run.stdout | meshops.istio.istioctl_reported_version }}"
"""

RETURN = r"""
_value:
  description: The version the binary reports, as it prints it, or an empty string.
  type: string
"""

import json
import re

_TEXT = re.compile(r"^\s*(?:client version:\s*)?(\S+)\s*$", re.IGNORECASE)
_VERSION_LIKE = re.compile(r"^v?[0-9]+\.[0-9]+")


def reported_version(output):
    if not isinstance(output, str):
        return ""
    try:
        data = json.loads(output)
    except ValueError:
        data = None
    if isinstance(data, dict):
        client = data.get("clientVersion")
        version = client.get("version") if isinstance(client, dict) else None
        return version if isinstance(version, str) else ""
    lines = [line for line in output.splitlines() if line.strip()]
    for line in lines:
        match = _TEXT.match(line)
        if match and _VERSION_LIKE.match(match.group(1)) and (len(lines) == 1 or "client" in line.lower()):
            return match.group(1)
    return ""


class FilterModule:
    def filters(self):
        return {"istioctl_reported_version": reported_version}
