# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the meshops.istio iptables modules read rules from.

The matching argument spec is ``SOURCE_ARGSPEC`` in
``plugins/module_utils/iptables/module_support.py``.
"""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  src:
    description:
      - Path, on the target, of a file holding C(iptables-save) output (optionally followed by
        C(ip6tables-save) output), for example a dump saved from another host.
      - Mutually exclusive with O(netns) and O(pid). When none of the three is given, the rules of
        the host's own network namespace are read.
    type: path
  netns:
    description:
      - Read the rules of this network namespace, a name under C(/run/netns) (as C(ip netns list)
        shows it) or a path such as C(/proc/PID/ns/net). The module joins the namespace from a
        thread of its own (C(setns)), so C(nsenter) is not needed.
    type: str
  pid:
    description:
      - Read the rules of the network namespace of this process, for example a sidecar's
        C(pilot-agent) or C(envoy).
    type: int
  backend:
    description:
      - Which iptables back end to read.
      - V(auto) reads both C(iptables-nft-save) and C(iptables-legacy-save) (and their C(ip6tables)
        twins) and warns when both hold rules, since the kernel then runs both sets; the engine then
        uses the nft rules.
      - V(nft) or V(legacy) read only that back end.
      - Ignored with O(src).
    type: str
    choices: [auto, nft, legacy]
    default: auto
notes:
  - Only the C(*-save) commands run, as argument lists with C(LANG=C); the rules are never changed.
  - Reading another network namespace needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN).
requirements:
  - iptables (C(iptables-nft-save) and/or C(iptables-legacy-save)) on the target.
"""
