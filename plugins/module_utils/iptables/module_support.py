"""Glue shared by the iptables modules: the common source argspec, reading through the module's
runner (:func:`.reader.module_runner`) and the one ``main()`` the three modules share (:func:`run_source_module`).

No Ansible imports: the module class is passed in, and used through its
``run_command_environ_update``, ``get_bin_path``, ``warn``, ``fail_json`` and ``exit_json``. The
options are documented in ``plugins/doc_fragments/iptables_source.py``.
"""

import contextlib
import gc

from ansible_collections.meshops.istio.plugins.module_utils.errors import run_module
from ansible_collections.meshops.istio.plugins.module_utils.iptables.reader import module_runner, module_which
from ansible_collections.meshops.istio.plugins.module_utils.iptables.source import read_rules

SOURCE_ARGSPEC = {
    "src": {"type": "path"},
    "netns": {"type": "str"},
    "pid": {"type": "int"},
    "backend": {"type": "str", "default": "auto", "choices": ["auto", "nft", "legacy"]},
}
SOURCE_MUTUALLY_EXCLUSIVE = [["src", "netns", "pid"]]


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


def run_source_module(module_class, extra_spec, run, module_name):
    """The main() of iptables_info, iptables_trace and sidecar_iptables_audit.

    Builds the argument spec (the source options plus ``extra_spec``), calls ``run(module)`` ->
    ``(result, warnings)`` while no cyclic garbage collection runs, hands the warnings to Ansible,
    and turns the engine's errors (``IptablesError``, a ``MeshopsError``) into ``fail_json`` naming
    the input. Anything else is a bug in the collection and says so, with the traceback as
    ``exception`` (shown at -vvv): ``errors.run_module``.
    """
    argument_spec = dict(SOURCE_ARGSPEC)
    argument_spec.update(extra_spec)
    module = module_class(
        argument_spec=argument_spec, mutually_exclusive=SOURCE_MUTUALLY_EXCLUSIVE, supports_check_mode=True
    )

    def work():
        with short_lived_process():
            return run(module)

    result, warnings = run_module(module, work, module_name)
    for warning in warnings:
        module.warn(warning)
    result.setdefault("changed", False)
    module.exit_json(**result)
