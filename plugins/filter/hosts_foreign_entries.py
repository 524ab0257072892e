# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: hosts_foreign_entries
short_description: (internal) Find hosts-file lines outside a managed block that map given names
version_added: 0.1.0
author: meshops.istio developers
description:
  - Internal to the C(meshops.istio.hosts_entries) role,
    not a public interface; it may change or go in any release.
  - Reads the text of a hosts file and returns, in file order, every line outside the
    block written by M(ansible.builtin.blockinfile) with O(marker) that maps one of O(names).
  - Comment lines and text after C(#) are ignored; names compare case-insensitively.
options:
  _input:
    description: The content of the hosts file.
    type: string
    required: true
  names:
    description: The host names the managed block maps.
    type: list
    elements: string
    required: true
  marker:
    description: The blockinfile marker template, with C({mark}).
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Lines elsewhere in /etc/hosts for our names
  ansible.builtin.set_fact:
    foreign: "{{ hosts_text | meshops.istio.hosts_foreign_entries(['jiuxi.com'], '# {mark} meshops.istio') }}"
"""

RETURN = r"""
_value:
  description:
    - One dict per foreign line with keys C(line), C(address), C(names) (the managed names on
      it), C(replacement) (the line without them, or null when nothing is left) and
      C(position) (C(before), C(after) or C(none), where the line is relative to the block),
      and the C(regexp), C(replace), C(before) and C(after) arguments of
      M(ansible.builtin.replace) that rewrite exactly that line.
  type: list
  elements: dict
"""

from ansible_collections.meshops.istio.plugins.module_utils.mesh.hosts import find_foreign_entries


class FilterModule:
    def filters(self):
        return {"hosts_foreign_entries": find_foreign_entries}
