# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: ip_address
short_description: (internal) Test whether a string is a plain IPv4 or IPv6 address
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.hosts_entries) role (its input checks),
    not a public interface; it may change or go in any release.
  - True for an IPv4 address in dotted-quad form or an IPv6 address (any valid notation).
  - False for prefixes (C(10.0.0.0/8)), zone indexes (C(fe80::1%eth0)), host names and
    surrounding white space.
options:
  _input:
    description: The address to test.
    type: string
    required: true
"""

EXAMPLES = r"""
- name: The hosts block needs an address
  ansible.builtin.assert:
    that: hosts_entries_address is meshops.istio.ip_address
"""

RETURN = r"""
_value:
  description: Whether the input is an IPv4 or IPv6 address.
  type: boolean
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.hosts import ip_version


def ip_address(value):
    return ip_version(value) in (4, 6)


class TestModule:
    def tests(self):
        return {"ip_address": ip_address}
