"""The parser and the tracer agree on the targets: every target the parser accepts has a tracer
handler, and the tracer handles no target the parser would take for a chain name."""

from ansible_collections.meshops.istio.plugins.module_utils.iptables import parser, targets
from ansible_collections.meshops.istio.plugins.module_utils.iptables.tracer import Tracer


def test_every_known_target_has_a_handler_and_every_handler_a_known_target():
    handled = set(Tracer.TARGET_HANDLERS)
    assert set(parser.KNOWN_TARGETS) - handled == set(), "targets the parser knows but the tracer does not"
    assert handled - set(parser.KNOWN_TARGETS) == set(), "handlers for targets the parser takes for chains"


def test_no_target_is_in_two_groups():
    groups = (
        targets.VERDICTS,
        targets.QUEUES,
        targets.RETURNS,
        targets.NAT,
        targets.TPROXY,
        targets.MARKS,
        targets.PASS_THROUGH,
        targets.NOT_MODELLED,
    )
    names = [name for group in groups for name in group]
    assert len(names) == len(set(names)) == len(targets.KNOWN_TARGETS)
