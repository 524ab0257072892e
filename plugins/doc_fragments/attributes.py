# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``attributes`` of meshops.istio modules, described once.

Modules list the attributes with ``support`` (and ``details`` where it helps); the descriptions
come from here: ``meshops.istio.attributes`` for every module, plus ``.info_module`` for
read-only modules and ``.k8s_action_group`` for members of ``group/meshops.istio.k8s``.
"""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Whether the module runs in check mode and predicts changes without making them.
  diff_mode:
    description: Whether the module returns, with C(--diff), what it changed or would change.
  platform:
    description: The systems the module runs on.
    platforms: posix
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
    details: Nothing changes, so there is nothing to diff.
"""

    K8S_ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description:
      - Member of the C(meshops.istio.k8s) action group, which extends C(kubernetes.core.k8s). One
        C(module_defaults) entry for C(group/meshops.istio.k8s) sets the connection options (O(kubeconfig),
        O(context), ...) of this module and of every kubernetes.core module at once.
    support: full
    membership:
      - meshops.istio.k8s
"""
