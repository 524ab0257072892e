# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: dns_name
short_description: (internal) Test whether a string is a valid DNS host name that /etc/hosts can map
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.hosts_entries) role (its input checks),
    not a public interface; it may change or go in any release.
  - True for a host name made of labels of letters, digits and inner hyphens (1 to 63
    characters each, 253 in all), optionally ending in a dot.
  - False for wildcards, white space, empty labels, and names whose last label is numeric
    (they look like IP addresses).
options:
  _input:
    description: The name to test.
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Refuse names /etc/hosts cannot carry
  ansible.builtin.assert:
    that: item is meshops.istio.dns_name
  loop: "{{ hosts_entries_names }}"
"""

RETURN = r"""
_value:
  description: Whether the input is a valid DNS host name.
  type: boolean
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.hosts import is_dns_name


class TestModule:
    def tests(self):
        return {"dns_name": is_dns_name}
