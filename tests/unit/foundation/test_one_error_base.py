"""One base exception for the collection's own errors: every exception class that module_utils
define is a MeshopsError (so errors.run_module turns it into a message, not a bug report), except
the few that never leave module_utils (caught where they are raised: control flow, not errors)."""

import importlib
import inspect
import pathlib

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError

REPO = pathlib.Path(__file__).resolve().parents[3]
MODULE_UTILS = REPO / "plugins" / "module_utils"

# Raised and caught inside module_utils; never reach a module.
CONTROL_FLOW = {
    "network_audit.procfs.ProcessGone",  # a process exited while it was read: skipped, not an error
    "iptables.reader.CommandTimeout",  # turned into a DumpError naming the command by the reader
}


def own_exception_classes():
    for path in sorted(MODULE_UTILS.rglob("*.py")):
        dotted = ".".join(path.relative_to(MODULE_UTILS).with_suffix("").parts)
        module = importlib.import_module(f"ansible_collections.meshops.istio.plugins.module_utils.{dotted}")
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                yield f"{dotted}.{name}", value


def test_every_error_of_the_collection_is_a_meshops_error():
    classes = dict(own_exception_classes())
    assert len(classes) > 15, sorted(classes)  # the walk found them
    assert set(classes) >= CONTROL_FLOW
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, MeshopsError))
    assert outside == sorted(CONTROL_FLOW)
