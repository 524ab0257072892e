"""Simulate the path of the first packet of a connection through a :class:`~.model.Ruleset`.

Usage::

    tracer = Tracer(ruleset)
    result = tracer.trace({"name": "in", "hook": "prerouting", "protocol": "tcp",
                           "src": "10.0.0.9", "dst": "10.0.0.2", "dport": 80})

Netfilter order per hook: raw -> mangle -> nat -> filter -> security. ``prerouting`` packets
arrive from outside: PREROUTING, then INPUT when the (possibly NATed) destination is local,
otherwise FORWARD and POSTROUTING. ``output`` packets come from a local process: OUTPUT,
POSTROUTING and, when they stay on the host (loopback or a REDIRECT), PREROUTING and INPUT of
the non-NAT tables (NAT is decided once per connection, so nat chains are not run again).

Results (dicts, as iptables_trace returns them): ``steps`` lists every rule that matched (whose
counter the kernel would increase) and the policy of every built-in chain the packet fell off;
``verdict`` gives ``action`` (ACCEPT, DROP, REJECT, REDIRECT, DNAT, TPROXY, ...), ``to_ports``,
``to_destination`` and where the packet ends. ``statistic --mode random`` rules split the trace
into ``branches`` with probabilities; conditions the engine cannot evaluate split it into
branches marked ``unevaluated`` (both outcomes explored), so the answer is never silently wrong.
"""

import bisect
import heapq
import ipaddress
from types import MappingProxyType

from ansible_collections.meshops.istio.plugins.module_utils.iptables.branches import Branch, hostport
from ansible_collections.meshops.istio.plugins.module_utils.iptables.branches import result as branches_result
from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.matcher import (
    MALFORMED,
    Packet,
    compile_condition,
    parse_int,
    parse_mark,
)
from ansible_collections.meshops.istio.plugins.module_utils.iptables.model import no_cyclic_gc
from ansible_collections.meshops.istio.plugins.module_utils.iptables.targets import (
    NOT_MODELLED,
    PASS_THROUGH,
    QUEUES,
    RETURNS,
    VERDICTS,
)

TABLE_ORDER = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "security", "nat"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "mangle", "nat", "filter", "security"),
    "POSTROUTING": ("mangle", "nat"),
}
MAX_BRANCHES = 512
MAX_DEPTH = 64
INDEX_MIN_RULES = 32
_RETURN = "RETURN"


class TraceError(IptablesError):
    """The trace cannot be completed (a jump loop, too many unevaluated branches)."""


class _Compiled:
    __slots__ = ("checks", "note", "probability", "unevaluated")

    def __init__(self, rule):
        self.checks = []
        self.unevaluated = []
        self.probability = None
        statistic = {c.option: c.value for c in rule.matches if c.module == "statistic"}
        for cond in rule.matches:
            if cond.module == "statistic":
                continue
            check = compile_condition(cond)
            if isinstance(check, str):
                if check.startswith(MALFORMED):
                    raise rule.malformed(check)
                self.unevaluated.append(check)
            else:
                self.checks.append(check)
        self.note = None
        if statistic:
            negated = any(c.negated for c in rule.matches if c.module == "statistic")
            mode = statistic.get("mode")
            if mode == "random" and "probability" in statistic:
                try:
                    self.probability = float(statistic["probability"])
                except ValueError as exc:
                    raise rule.malformed("statistic --probability is not a number", exc) from None
                if not 0.0 <= self.probability <= 1.0:
                    raise rule.malformed(f"statistic --probability {statistic['probability']} is not between 0 and 1")
            elif mode == "nth" and (statistic.get("every") or "").isdigit() and int(statistic["every"]) > 0:
                # One packet in N matches; which one depends on the rule's packet counter, unknown
                # here, so a new connection matches with probability 1/N.
                self.probability = 1.0 / int(statistic["every"])
                self.note = (
                    f"statistic --mode nth --every {statistic['every']}: matches one packet in "
                    f"{statistic['every']}, depending on the rule's counter"
                )
            else:
                self.unevaluated.append(f"match statistic --mode {mode} is not evaluated by the engine")
            if self.probability is not None and negated:
                self.probability = 1.0 - self.probability


def _index_key(rule):
    """An exact, non-negated destination address, else an exact destination port, else None."""
    matches = rule.matches
    for cond in matches:
        if cond.module == "ip" and cond.option == "destination" and not cond.negated:
            address, _sep, prefix = cond.value.partition("/")
            try:
                address = ipaddress.ip_address(address)
            except ValueError:
                return None
            if prefix in ("", "32" if address.version == 4 else "128"):
                return ("d", address)
            break
    proto = None
    for cond in matches:
        if cond.module == "ip" and cond.option == "protocol" and not cond.negated:
            proto = cond.value.lower()
    for cond in matches:
        if (
            cond.module == proto
            and cond.option in ("dport", "destination-port")
            and not cond.negated
            and cond.value.isdigit()
        ):
            return ("p", proto, int(cond.value))
    return None


def _compiled(rule):
    compiled = rule._compiled
    if compiled is None:
        compiled = rule._compiled = _Compiled(rule)
    return compiled


class _ChainIndex:
    """Candidate rules of a long chain for a packet: rules keyed by the packet's exact destination
    address or port, merged in order with the rules that carry no such key."""

    def __init__(self, chain):
        self.keyed = {}
        self.always = []
        self._merged = {}
        for position, rule in enumerate(chain.rules):
            key = _index_key(rule)
            if key is None:
                self.always.append(position)
            else:
                self.keyed.setdefault(key, []).append(position)

    def candidates(self, pkt, start):
        keys = (("d", pkt.dst), ("p", pkt.proto, pkt.dport))
        # Merged once per packet key: a walk resumes in the same chain after every jump that
        # returns, and merging again each time was quadratic in the chain's length.
        merged = self._merged.get(keys)
        if merged is None:
            lists = [self.always]
            for key in keys:
                hit = self.keyed.get(key)
                if hit:
                    lists.append(hit)
            merged = self.always if len(lists) == 1 else list(heapq.merge(*lists))
            self._merged[keys] = merged
        if start:
            return merged[bisect.bisect_left(merged, start) :]
        return merged


def _split_hostport(text, family):
    """'10.0.0.1:80' -> ('10.0.0.1', 80); '[fd00::1]:80' -> ('fd00::1', 80); ranges: first value."""
    if text is None:
        return None, None
    host, port = text, None
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif family == "ipv4" or text.count(":") == 1:
        host, _sep, port = text.partition(":")
        port = port or None
    host = host.split("-")[0] if host else None
    if port:
        port = int(port.split("-")[0])
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range (0-65535)")
    return host or None, port


def _run_walk(walk):
    """Run a walk generator and every sub-walk it yields, depth first, on an explicit stack."""
    stack = [walk]
    while stack:
        try:
            stack.append(next(stack[-1]))
        except StopIteration:
            stack.pop()


class Tracer:
    """Trace packets through one ruleset (one family, one backend)."""

    def __init__(self, ruleset, local_addresses=None):
        self.ruleset = ruleset
        self.local_addresses = local_addresses
        self._indexes = {}

    # -- chain walking ----------------------------------------------------------------------
    def _candidates(self, chain, pkt, start):
        if len(chain.rules) < INDEX_MIN_RULES:
            return range(start, len(chain.rules))
        index = self._indexes.get(id(chain))
        if index is None:
            with no_cyclic_gc():  # the index parses thousands of rules' matches
                index = self._indexes[id(chain)] = _ChainIndex(chain)
        return index.candidates(pkt, start)

    def _evaluate(self, rule, pkt):
        compiled = _compiled(rule)
        unknown = False
        for check in compiled.checks:
            result = check(pkt)
            if result is False:
                return False, compiled
            if result is None:
                unknown = True
        if unknown or compiled.unevaluated:
            return None, compiled
        return True, compiled

    # The walk is written as generators run by _run_walk: a jump is a ``yield`` of the sub-walk,
    # not a Python call, so a chain with thousands of jumps (the kernel accepts it) never reaches
    # the interpreter's recursion limit.
    def _walk(self, branch, table, chain_name, depth, results):
        if depth > MAX_DEPTH:
            raise TraceError(
                f"packet {branch.pkt.name}: jumps nest deeper than {MAX_DEPTH} chains "
                f"at {table}/{chain_name} (a loop between chains?)"
            )
        chain = self.ruleset.chain(table, chain_name)
        if chain is None:
            results.append((branch, _RETURN))
            return
        yield self._walk_from(branch, chain, 0, depth, results)

    def _walk_from(self, branch, chain, start, depth, results):
        # The branch where a split rule matched is explored first, the "did not match" branch
        # after it, so branches come out in rule order (endpoint 1, 2, 3 of a service).
        deferred = []
        yield self._walk_rules(branch, chain, start, depth, results, deferred)
        for other, position in deferred:
            yield self._walk_from(other, chain, position, depth, results)

    def _walk_rules(self, branch, chain, start, depth, results, deferred):
        rules = chain.rules
        pkt = branch.pkt
        for position in self._candidates(chain, pkt, start):
            rule = rules[position]
            matched, compiled = self._evaluate(rule, pkt)
            if matched is False:
                continue
            if matched is None:
                reasons = list(compiled.unevaluated)
                if not reasons:
                    reasons = [
                        "a condition depends on a packet field that was not given "
                        "(uid, gid, interface or local address)"
                    ]
                other = self._fork(branch)
                other.assumptions.append(
                    {
                        "rule": rule.text,
                        "table": rule.table,
                        "chain": rule.chain,
                        "rule_number": rule.number,
                        "assumed": "no match",
                        "reason": "; ".join(reasons),
                    }
                )
                other.unevaluated.append(rule.text)
                deferred.append((other, position + 1))
                branch.assumptions.append(
                    {
                        "rule": rule.text,
                        "table": rule.table,
                        "chain": rule.chain,
                        "rule_number": rule.number,
                        "assumed": "match",
                        "reason": "; ".join(reasons),
                    }
                )
                branch.unevaluated.append(rule.text)
            probability = compiled.probability
            if probability is not None and probability < 1.0:
                if probability > 0.0:
                    other = self._fork(branch)
                    other.probability *= 1.0 - probability
                    if compiled.note:
                        for target, assumed in ((other, "no match"), (branch, "match")):
                            target.assumptions.append(
                                {
                                    "rule": rule.text,
                                    "table": rule.table,
                                    "chain": rule.chain,
                                    "rule_number": rule.number,
                                    "assumed": assumed,
                                    "reason": compiled.note,
                                }
                            )
                    deferred.append((other, position + 1))
                    branch.probability *= probability
                else:
                    continue
            if rule.target is not None and self.ruleset.chain(rule.table, rule.target) is not None:
                self._step(branch, rule, ("goto " if rule.goto else "jump ") + rule.target)
                sub = []
                yield self._walk(branch, rule.table, rule.target, depth + 1, sub)
                for sub_branch, outcome in sub:
                    if outcome == _RETURN and not rule.goto:
                        yield self._walk_from(sub_branch, chain, position + 1, depth, results)
                    else:
                        results.append((sub_branch, outcome))
                return
            try:
                left = self._apply(branch, rule, results)
            except (ValueError, TypeError) as exc:
                raise rule.malformed(f"cannot apply target {rule.target}", exc) from None
            if left:
                return
        results.append((branch, _RETURN))

    def _fork(self, branch):
        self._branch_count += 1
        if self._branch_count > MAX_BRANCHES:
            raise TraceError(
                f"packet {branch.pkt.name}: more than {MAX_BRANCHES} branches; give the "
                "packet's uid, gid, interfaces or local_addresses so fewer rules are unevaluated"
            )
        return branch.fork()

    def _step(self, branch, rule, action, **extra):
        step = {
            "table": rule.table,
            "chain": rule.chain,
            "rule_number": rule.number,
            "rule": rule.text,
            "action": action,
        }
        step.update(extra)
        branch.steps.append(step)

    def _apply(self, branch, rule, results):
        """Apply a matched rule whose target is not a user chain; return True when the branch
        left this chain (results filled)."""
        if rule.target is None:
            self._step(branch, rule, "count")
            return False
        # A target the parser accepted but no handler knows (a -j to a chain-like name that is not
        # defined) is treated as unmodelled: said, never silently followed.
        handler = self.TARGET_HANDLERS.get(rule.target, Tracer._not_modelled)
        return handler(self, branch, rule, results)

    # -- target handlers: (branch, rule, results) -> True when the branch left the chain --------
    def _return(self, branch, rule, results):
        self._step(branch, rule, "RETURN")
        results.append((branch, _RETURN))
        return True

    def _end_with_verdict(self, branch, rule, results):
        self._step(branch, rule, rule.target)
        branch.verdict_rule = rule
        results.append((branch, rule.target))
        return True

    def _queue(self, branch, rule, results):
        self._step(branch, rule, rule.target, unevaluated=True)
        branch.unevaluated.append(rule.text)
        branch.verdict_rule = rule
        results.append((branch, rule.target))
        return True

    def _redirect(self, branch, rule, results):
        pkt = branch.pkt
        opts = dict(rule.target_options)
        ports = opts.get("to-ports") or opts.get("to-port")
        if pkt.hook == "output" and not pkt.dnat:
            pkt.dst = ipaddress.ip_address("::1" if pkt.family == "ipv6" else "127.0.0.1")
            pkt.out_interface = "lo"
        if ports:
            pkt.dport = int(ports.split("-")[0].split(":")[0])
        pkt.dnat = True
        branch.nat.append(("REDIRECT", {"to_ports": pkt.dport}))
        self._step(branch, rule, "REDIRECT")
        branch.verdict_rule = rule
        results.append((branch, "NAT"))
        return True

    @staticmethod
    def _rewrites_destination(rule):
        # DNAT and NETMAP rewrite the destination in the nat table before routing; NETMAP in
        # POSTROUTING rewrites the source; DNAT elsewhere is not modelled.
        return rule.table == "nat" and rule.chain != "POSTROUTING"

    def _dnat(self, branch, rule, results):
        if not self._rewrites_destination(rule):
            return self._not_modelled(branch, rule, results)
        return self._destination_nat(branch, rule, results)

    def _netmap(self, branch, rule, results):
        if self._rewrites_destination(rule):
            return self._destination_nat(branch, rule, results)
        return self._snat(branch, rule, results)

    def _destination_nat(self, branch, rule, results):
        pkt = branch.pkt
        opts = dict(rule.target_options)
        host, port = _split_hostport(opts.get("to-destination") or opts.get("to"), pkt.family)
        if host:
            if rule.target == "NETMAP":
                net = ipaddress.ip_network(host if "/" in (opts.get("to") or "") else opts.get("to"), strict=False)
                offset = int(pkt.dst) & int(net.hostmask)
                pkt.dst = ipaddress.ip_address(int(net.network_address) | offset)
            else:
                pkt.dst = ipaddress.ip_address(host)
            if pkt.hook == "output":
                pkt.out_interface = "lo" if pkt.is_local(pkt.dst) else None
        if port is not None:
            pkt.dport = port
        pkt.dnat = True
        branch.nat.append(("DNAT", {"to_destination": hostport(pkt)}))
        self._step(branch, rule, rule.target)
        branch.verdict_rule = rule
        results.append((branch, "NAT"))
        return True

    def _snat(self, branch, rule, results):
        pkt = branch.pkt
        host, port = _split_hostport(dict(rule.target_options).get("to-source"), pkt.family)
        if host:
            pkt.src = ipaddress.ip_address(host)
        if port is not None:
            pkt.sport = port
        pkt.snat = True
        branch.nat.append((rule.target, {"to_source": host or "address of the outgoing interface"}))
        self._step(branch, rule, rule.target)
        results.append((branch, "NAT"))
        return True

    def _tproxy(self, branch, rule, results):
        pkt = branch.pkt
        opts = dict(rule.target_options)
        port = opts.get("on-port")
        mark = opts.get("tproxy-mark")
        if mark:
            value, mask = parse_mark(mark)
            pkt.mark = (pkt.mark & ~mask) ^ value
        if port:
            pkt.dport = int(port)
        if opts.get("on-ip") and opts["on-ip"] not in ("0.0.0.0", "::"):
            pkt.dst = ipaddress.ip_address(opts["on-ip"])
        branch.nat.append(("TPROXY", {"to_ports": pkt.dport}))
        branch.assumptions.append(
            {
                "rule": rule.text,
                "table": rule.table,
                "chain": rule.chain,
                "rule_number": rule.number,
                "assumed": f"a transparent socket listens on port {pkt.dport} (else the kernel drops the packet)",
            }
        )
        self._step(branch, rule, "TPROXY")
        branch.verdict_rule = rule
        results.append((branch, "TPROXY"))
        return True

    def _set_mark(self, branch, rule, results):
        pkt = branch.pkt
        pkt.mark = self._mark(pkt.mark, dict(rule.target_options))
        self._step(branch, rule, "MARK", mark=hex(pkt.mark))
        return False

    def _connmark(self, branch, rule, results):
        pkt = branch.pkt
        opts = dict(rule.target_options)
        if "save-mark" in opts:
            nfmask = parse_int(opts.get("nfmask") or opts.get("mask") or "0xffffffff")
            ctmask = parse_int(opts.get("ctmask") or opts.get("mask") or "0xffffffff")
            pkt.connmark = (pkt.connmark & ~ctmask) ^ (pkt.mark & nfmask)
        elif "restore-mark" in opts:
            nfmask = parse_int(opts.get("nfmask") or opts.get("mask") or "0xffffffff")
            ctmask = parse_int(opts.get("ctmask") or opts.get("mask") or "0xffffffff")
            pkt.mark = (pkt.mark & ~nfmask) ^ (pkt.connmark & ctmask)
        else:
            pkt.connmark = self._mark(pkt.connmark, opts)
        self._step(branch, rule, "CONNMARK", mark=hex(pkt.mark), connmark=hex(pkt.connmark))
        return False

    def _pass_through(self, branch, rule, results):
        self._step(branch, rule, rule.target)
        return False

    def _not_modelled(self, branch, rule, results):
        # Say so and assume the target lets the packet go on.
        self._step(branch, rule, rule.target, unevaluated=True)
        branch.unevaluated.append(rule.text)
        branch.assumptions.append(
            {
                "rule": rule.text,
                "table": rule.table,
                "chain": rule.chain,
                "rule_number": rule.number,
                "assumed": f"target {rule.target} does not end the traversal",
            }
        )
        return False

    # Every target of targets.KNOWN_TARGETS has its handler (tests/unit/iptables/test_targets.py).
    TARGET_HANDLERS = MappingProxyType(
        {
            **dict.fromkeys(RETURNS, _return),
            **dict.fromkeys(VERDICTS, _end_with_verdict),
            **dict.fromkeys(QUEUES, _queue),
            "REDIRECT": _redirect,
            "DNAT": _dnat,
            "NETMAP": _netmap,
            "SNAT": _snat,
            "MASQUERADE": _snat,
            "TPROXY": _tproxy,
            "MARK": _set_mark,
            "CONNMARK": _connmark,
            **dict.fromkeys(PASS_THROUGH, _pass_through),
            **dict.fromkeys(NOT_MODELLED, _not_modelled),
        }
    )

    @staticmethod
    def _mark(current, opts):
        for key in ("set-xmark", "set-mark"):
            if key in opts:
                value, mask = parse_mark(opts[key])
                if key == "set-xmark":
                    return (current & ~mask & 0xFFFFFFFF) ^ value
                return (current & ~mask & 0xFFFFFFFF) | value
        if "or-mark" in opts:
            return current | parse_int(opts["or-mark"])
        if "and-mark" in opts:
            return current & parse_int(opts["and-mark"])
        if "xor-mark" in opts:
            return current ^ parse_int(opts["xor-mark"])
        return current

    # -- the hook pipeline --------------------------------------------------------------------
    def _run_builtin(self, branch, table, chain_name):
        """Run one built-in chain; returns [(branch, outcome)], outcome ACCEPT/DROP/REJECT/NAT/..."""
        chain = self.ruleset.chain(table, chain_name)
        if chain is None:
            return [(branch, "ACCEPT")]
        results = []
        _run_walk(self._walk_from(branch, chain, 0, 0, results))
        out = []
        for b, outcome in results:
            if outcome == _RETURN:
                policy = chain.policy or "ACCEPT"
                b.steps.append(
                    {
                        "table": table,
                        "chain": chain_name,
                        "rule_number": None,
                        "rule": f":{chain_name} {policy}",
                        "action": f"policy {policy}",
                    }
                )
                if policy == "DROP":
                    b.verdict_rule = None
                out.append((b, policy))
            else:
                out.append((b, outcome))
        return out

    def _run_stages(self, branches, stages):
        for table, chain_name in stages:
            nxt = []
            for branch in branches:
                if branch.final is not None:
                    nxt.append(branch)
                    continue
                for b, outcome in self._run_builtin(branch, table, chain_name):
                    if outcome in ("DROP", "REJECT", "QUEUE", "NFQUEUE"):
                        b.final = outcome
                    nxt.append(b)
            branches = nxt
        return branches

    @staticmethod
    def _stages(hook_chain, skip_nat=False):
        return [(t, hook_chain) for t in TABLE_ORDER[hook_chain] if not (skip_nat and t == "nat")]

    def trace(self, spec):
        pkt = spec if isinstance(spec, Packet) else Packet(spec, self.local_addresses)
        self._branch_count = 1
        self._packet_dict = pkt.to_dict()
        start = Branch(pkt.copy())
        pkt = start.pkt
        if pkt.hook == "output":
            if pkt.out_interface is None and pkt.is_local(pkt.dst):
                pkt.out_interface = "lo"
            if not pkt.local_known and not pkt.is_loopback(pkt.dst):
                start.assumptions.append(
                    {"assumed": f"{pkt.dst} is not an address of this host (no local_addresses given)"}
                )
            branches = self._run_stages([start], self._stages("OUTPUT"))
            branches = self._run_stages(branches, self._stages("POSTROUTING"))
            done = []
            for b in branches:
                if b.final is None and b.pkt.is_local(b.pkt.dst):
                    b.pkt.in_interface = "lo"
                    looped = self._run_stages([b], self._stages("PREROUTING", skip_nat=True))
                    looped = self._run_stages(looped, self._stages("INPUT", skip_nat=True))
                    for lb in looped:
                        if lb.final is None:
                            lb.final = "LOCAL"
                    done.extend(looped)
                else:
                    if b.final is None:
                        b.final = "SENT"
                    done.append(b)
            branches = done
        else:
            if not pkt.local_known:
                start.assumptions.append(
                    {"assumed": f"{pkt.dst} is an address of this host (no local_addresses given)"}
                )
            branches = self._run_stages([start], self._stages("PREROUTING"))
            done = []
            for b in branches:
                if b.final is not None:
                    done.append(b)
                    continue
                tproxied = any(nat[0] == "TPROXY" for nat in b.nat)
                local = True if tproxied else b.pkt.is_local(b.pkt.dst)
                if local is None:
                    local = False
                    b.assumptions.append({"assumed": f"{b.pkt.dst} is not an address of this host: forwarded"})
                if local:
                    out = self._run_stages([b], self._stages("INPUT"))
                    for ob in out:
                        if ob.final is None:
                            ob.final = "LOCAL"
                else:
                    out = self._run_stages([b], self._stages("FORWARD"))
                    out = self._run_stages(out, self._stages("POSTROUTING"))
                    for ob in out:
                        if ob.final is None:
                            ob.final = "FORWARDED"
                done.extend(out)
            branches = done
        return branches_result(pkt, self._packet_dict, branches, self._verdict)

    def _verdict(self, branch):
        pkt = branch.pkt
        verdict = {"action": "ACCEPT", "to_ports": None, "to_destination": None}
        if branch.final in ("DROP", "REJECT", "QUEUE", "NFQUEUE"):
            verdict["action"] = branch.final
        else:
            for kind, details in branch.nat:
                if kind in ("REDIRECT", "DNAT", "TPROXY"):
                    verdict["action"] = kind
                    verdict.update(details)
                elif kind in ("SNAT", "MASQUERADE"):
                    verdict.setdefault("to_source", details["to_source"])
                    if verdict["action"] == "ACCEPT":
                        verdict["action"] = kind
            if verdict["action"] in ("REDIRECT", "TPROXY"):
                verdict["to_ports"] = pkt.dport
            if verdict["action"] in ("REDIRECT", "DNAT", "TPROXY"):
                verdict["to_destination"] = hostport(pkt)
        verdict["destination"] = hostport(pkt)
        verdict["delivered"] = {"LOCAL": "local", "SENT": "sent", "FORWARDED": "forwarded"}.get(branch.final, "dropped")
        if verdict["delivered"] == "local":
            verdict["local_port"] = pkt.dport
        rule = branch.verdict_rule
        verdict["rule"] = rule.text if rule is not None else None
        verdict["mark"] = hex(pkt.mark)
        return verdict
