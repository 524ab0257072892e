"""Glue shared by the iptables modules: the common source argspec and the command runner.

No Ansible imports: the module object is used through ``run_command`` and ``get_bin_path``.
The options are documented in ``plugins/doc_fragments/iptables_source.py``.
"""

import contextlib
import gc

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


@contextlib.contextmanager
def short_lived_process():
    """For a module run (a process that exits right after): no cyclic garbage collection while
    the rules are read, parsed and judged, and the objects made frozen afterwards, so the
    collector never walks hundreds of thousands of rule objects (about 0.1 s per pass at 100k
    rules). Not for long-lived processes: frozen objects are never collected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
