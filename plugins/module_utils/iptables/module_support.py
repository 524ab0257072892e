"""Glue shared by the iptables modules: the common source argspec and the command runner.

No Ansible imports: the module object is used through ``run_command`` and ``get_bin_path``.
The options are documented in ``plugins/doc_fragments/iptables_source.py``.
"""

from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import ENV, read_rules

SOURCE_ARGSPEC = {
    "src": {"type": "path"},
    "netns": {"type": "str"},
    "pid": {"type": "int"},
    "backend": {"type": "str", "default": "auto", "choices": ["auto", "nft", "legacy"]},
}
SOURCE_MUTUALLY_EXCLUSIVE = [["src", "netns", "pid"]]


def module_runner(module):
    """runner(argv) -> (rc, stdout, stderr) through AnsibleModule.run_command, LANG=C, no shell."""

    def run(argv):
        return module.run_command(argv, environ_update=dict(ENV), check_rc=False)

    return run


def module_which(module):
    def which(name):
        return module.get_bin_path(name, required=False)

    return which


def read_from_module(module, families=("ipv4", "ipv6")):
    params = module.params
    return read_rules(
        src=params.get("src"),
        netns=params.get("netns"),
        pid=params.get("pid"),
        backend=params.get("backend") or "auto",
        families=families,
        runner=module_runner(module),
        which=module_which(module),
    )
