#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: network_audit_report
short_description: Write network audit reports on the controller
version_added: 0.1.0
description:
  - Writes what M(meshops.istio.network_audit_info) returned for one node - C(NODE.json) (the
    report, see C(docs/network-audit-schema.md)), C(NODE.md) (packet paths, counters, findings
    for a person) and the raw dumps under C(NODE/dumps/) - or, with O(reports), the cluster
    summary C(summary.json) and C(summary.md). With V(html) in O(formats), C(NODE.html) adds a
    diagram (inline SVG) of every packet path.
  - Runs on the controller (an action plugin); nothing is sent to the managed host.
  - Returns C(changed=true) when a file's content differs from what is on disk (a second identical
    run is unchanged). In check mode nothing is written and RV(changed_files) predicts what would be.
  - A O(node) (or a key of O(reports)) that cannot be a plain file name - with C(/), C(\), control
    characters or a leading dot - is refused before anything is written; nothing is ever written
    outside O(dest).
author:
  - meshops.istio developers (@meshops)
options:
  dest:
    description: Report directory on the controller; created when missing.
    type: path
    required: true
  node:
    description:
      - Name of the node the report is about (file names use it); a name that cannot be a plain
        file name is refused, and so is C(summary), the name of the cluster summary's files.
      - Required with O(report); mutually exclusive with O(reports).
    type: str
  report:
    description: The RV(meshops.istio.network_audit_info#module:network_audit) dict of that node.
    type: dict
  dumps:
    description: The RV(meshops.istio.network_audit_info#module:dumps) dict of that node.
    type: dict
    default: {}
  reports:
    description:
      - Reports of all nodes keyed by node name; writes the cluster summary instead of a node report.
    type: dict
  formats:
    description: Which files to write.
    type: list
    elements: str
    choices: [json, markdown, html]
    default: [json, markdown]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Nothing is written in check mode; RV(changed_files) lists the files that would change.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - A directory that cannot be written fails the task with a message naming it.
"""

EXAMPLES = r"""
- name: Audit the node
  meshops.istio.network_audit_info:
  become: true
  register: audit

- name: Write its report on the controller
  meshops.istio.network_audit_report:
    dest: "{{ playbook_dir }}/reports"
    node: "{{ inventory_hostname }}"
    report: "{{ audit.network_audit }}"
    dumps: "{{ audit.dumps }}"

- name: Write the cluster summary once
  meshops.istio.network_audit_report:
    dest: "{{ playbook_dir }}/reports"
    reports: >-
      {{ dict(ansible_play_hosts | zip(ansible_play_hosts
         | map('extract', hostvars, ['audit', 'network_audit']))) }}
  run_once: true
"""

RETURN = r"""
files:
  description: Paths of every report file of this call on the controller.
  returned: success
  type: list
  elements: str
changed_files:
  description: The files whose content changed (in check mode, would change).
  returned: success
  type: list
  elements: str
dest:
  description: The report directory (absolute).
  returned: success
  type: str
summary:
  description: The cluster summary (only with O(reports)).
  returned: when O(reports) is given
  type: dict
"""

# This module has no code: it is implemented by the action plugin plugins/action/network_audit_report.py,
# which runs on the controller.
