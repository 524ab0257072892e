# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AnsibleModule for the cluster-facing modules: the shared options and the secret handling."""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.istio.plugins.module_utils.k8s.args import k8s_argument_spec, request_timeout_problem
from ansible_collections.meshops.istio.plugins.module_utils.k8s.secrets import connection_url_secrets, revealable


def k8s_module(module_options, **kwargs):
    """An AnsibleModule with ``module_options`` plus the connection and request options.

    The whole kubeconfig is no_log while the module starts (so the target's log never has it);
    afterwards only its credentials stay masked in what the module returns. A password inside a
    URL (``host``, ``proxy``, the kubeconfig's ``proxy-url``) is masked too.
    """
    module = AnsibleModule(argument_spec=k8s_argument_spec(**module_options), **kwargs)
    module.no_log_values.difference_update(revealable(module.params))
    module.no_log_values.update(connection_url_secrets(module.params))
    problem = request_timeout_problem(module.params)
    if problem:
        module.fail_json(msg=problem)
    return module
