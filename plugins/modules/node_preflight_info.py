#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_preflight_info
short_description: Check that a node has what Istio's sidecar init needs
version_added: 0.1.0
description:
  - Reads, without changing anything, what a Kubernetes node needs before Istio's sidecar init
    (C(istio-iptables)) can program traffic capture in pod network namespaces, and what no
    upstream tool checks.
  - Finds which iptables back end (C(nft) or C(legacy)) holds rules on the node, reading both
    with C(iptables-*-save) (IPv4 and IPv6), and reports when both are in use at once.
  - Tests that the C(nat) table is usable and that the O(iptables_extensions) load, by restoring a
    throwaway chain with C(iptables-*-restore) inside a new network namespace created with
    C(unshare --net). The node's own ruleset is never touched; the namespace disappears with the
    process.
  - Looks for the commands in O(required_commands), the bash-completion main script and the
    Python version the module runs with.
  - Returns every finding and a list of problems (check, detail, fix); it never fails because
    of a missing prerequisite, so a caller can collect the problems of all nodes first. The
    C(meshops.istio.preflight) role runs it on every node and fails once with all problems.
  - Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to read the rules and create the namespace.
author:
  - meshops.istio developers (@meshops)
options:
  iptables_extensions:
    description:
      - The iptables match and target extensions to test in the C(nat) table.
      - C(owner) exempts the proxy's own traffic (UID 1337), C(multiport) excludes ports, and
        C(REDIRECT) captures traffic to the proxy.
    type: list
    elements: str
    choices: [owner, multiport, REDIRECT]
    default: [owner, multiport, REDIRECT]
  required_commands:
    description:
      - Commands that must be found in C(PATH) or C(/sbin), C(/usr/sbin), C(/usr/local/sbin).
      - C(unshare) is always looked up as well, because the probes need it.
    type: list
    elements: str
    default: [iptables, iptables-save, iptables-restore, nsenter]
  bash_completion_path:
    description:
      - The main script of the bash-completion package, which the C(istioctl) completion needs.
    type: path
    default: /usr/share/bash-completion/bash_completion
  min_python_version:
    description:
      - Oldest Python version accepted on the node, as a dotted version.
    type: str
    default: "3.9"
  probe:
    description:
      - Whether to test the C(nat) table and the extensions in a throwaway network namespace.
      - When V(false), RV(iptables.nat_table) and RV(iptables.extensions) are V(null).
    type: bool
    default: true
extends_documentation_fragment:
  - meshops.istio.attributes
  - meshops.istio.attributes.info_module
attributes:
  platform:
    support: full
    details: Linux nodes with iptables and util-linux.
notes:
  - The probes need C(unshare) from util-linux and the kernel support of the tested extensions;
    on a node without kernel modules, only what is built in loads.
seealso:
  - name: Istio traffic capture (istio-iptables)
    description: The rules the sidecar init writes, which these probes mirror.
    link: https://istio.io/latest/docs/ops/deployment/application-requirements/
requirements:
  - iptables (C(iptables-nft-*) and/or C(iptables-legacy-*)) and util-linux on the node
"""

EXAMPLES = r"""
- name: Check the node
  meshops.istio.node_preflight_info:
  become: true
  register: node_preflight

- name: Show which iptables back end the sidecar init will use
  ansible.builtin.debug:
    msg: "{{ node_preflight.iptables.backend }}"

- name: Fail with every problem found
  ansible.builtin.fail:
    msg: "{{ node_preflight.problems | map(attribute='check') | list }}"
  when: node_preflight.problems | length > 0

- name: Only look for commands and bash-completion, no namespace probes
  meshops.istio.node_preflight_info:
    probe: false
    required_commands: [iptables-save, nsenter]
  become: true
"""

RETURN = r"""
problems:
  description:
    - Everything missing on the node; empty when the node is ready.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: Name of the failed check.
      type: str
      sample: iptables extension owner
    detail:
      description: What was found.
      type: str
      sample: "nft: a rule using owner does not load: iptables-restore: line 3 failed"
    fix:
      description: How to fix it.
      type: str
      sample: "modprobe xt_owner (nft back end: also nft_compat) and persist it in /etc/modules-load.d/"
  sample: []
python:
  description: The Python the module ran with.
  returned: always
  type: dict
  contains:
    version:
      description: Its version.
      type: str
      sample: 3.11.2
commands:
  description: Path of each looked-up command, V(null) when it is missing.
  returned: always
  type: dict
  sample: {"iptables-save": "/usr/sbin/iptables-save", "nsenter": "/usr/bin/nsenter"}
bash_completion:
  description: Whether the bash-completion main script exists.
  returned: always
  type: dict
  contains:
    path:
      description: The script looked for.
      type: str
      sample: /usr/share/bash-completion/bash_completion
    present:
      description: Whether it exists.
      type: bool
      sample: true
iptables:
  description: What the iptables back ends hold and whether the probes loaded.
  returned: always
  type: dict
  contains:
    backend:
      description:
        - The back end istio-iptables will use; the one that holds rules, else the one the
          C(iptables) command selects. V(null) when no back end is installed.
      type: str
      sample: nft
    default_backend:
      description: The back end the C(iptables) command selects (update-alternatives).
      type: str
      sample: nft
    version:
      description: First line of C(iptables --version).
      type: str
      sample: iptables v1.8.9 (nf_tables)
    installed_backends:
      description: Back ends whose save and restore commands are installed.
      type: list
      elements: str
      sample: [nft, legacy]
    backends_in_use:
      description: Back ends that hold rules or user chains on the node (IPv4 or IPv6).
      type: list
      elements: str
      sample: [nft]
    nat_table:
      description: Whether a chain could be created in the nat table; V(null) when not probed.
      type: bool
      sample: true
    extensions:
      description: Per extension, whether a rule using it loaded; V(null) when not probed.
      type: dict
      sample: {"owner": true, "multiport": true, "REDIRECT": true}
    backends:
      description:
        - Per back end (C(nft), C(legacy)) the detail - C(installed), C(save_command),
          C(restore_command), C(rules), C(user_chains), C(tables), C(in_use), C(read_error),
          C(warnings) and C(probes) (per probe C(ok) and C(error)).
      type: dict
      sample:
        nft:
          installed: true
          rules: 12
          user_chains: 3
          in_use: true
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
from ansible_collections.meshops.istio.plugins.module_utils.preflight.checks import (
    EXTENSION_RULES,
    NodeProbe,
    check_min_python_version,
    evaluate,
)


def run(module):
    params = module.params
    check_min_python_version(params["min_python_version"])
    environ = {"LANG": "C", "LC_ALL": "C"}

    def run_command(argv, data=None):
        return module.run_command(argv, data=data, environ_update=environ)

    probe = NodeProbe(
        run=run_command,
        which=module.get_bin_path,
        exists=os.path.exists,
    )
    observations = probe.gather(
        extensions=params["iptables_extensions"],
        required_commands=params["required_commands"],
        bash_completion_path=params["bash_completion_path"],
        python_version=platform.python_version(),
        probe=params["probe"],
    )
    return evaluate(observations, params["min_python_version"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            iptables_extensions=dict(
                type="list", elements="str", choices=sorted(EXTENSION_RULES), default=["owner", "multiport", "REDIRECT"]
            ),
            required_commands=dict(
                type="list", elements="str", default=["iptables", "iptables-save", "iptables-restore", "nsenter"]
            ),
            bash_completion_path=dict(type="path", default="/usr/share/bash-completion/bash_completion"),
            min_python_version=dict(type="str", default="3.9"),
            probe=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    report = run_module(module, lambda: run(module), "node_preflight_info")
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
