"""Trace the first packet of a connection through one nftables table (kube-proxy's).

The same packet description and result shape as the iptables tracer (``steps``, ``verdict``,
``branches`` with probabilities, ``unevaluated``, ``assumptions``), for the expressions kube-proxy
writes: payload/meta/ct/fib matches, named and anonymous sets, verdict maps keyed by
concatenations (``ip daddr . meta l4proto . th dport vmap @service-ips``), ``numgen random mod N``
(each endpoint 1/N), jump/goto/return, ``mark set``, ``dnat``, ``masquerade``, accept/drop/reject.
An expression it does not know is not guessed: the rule is explored both ways and listed in
``unevaluated``. The walk runs on an explicit stack (no recursion per jump).

Base chains of the table run in priority order per hook: ``prerouting`` (then ``input`` when the
destination is local, else ``forward`` and ``postrouting``) or ``output`` (then ``postrouting``).
"""

import ipaddress

from ansible_collections.meshops.istio.plugins.module_utils.iptables.branches import Branch, hostport
from ansible_collections.meshops.istio.plugins.module_utils.iptables.branches import result as branches_result
from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.matcher import PROTOCOLS, Packet
from ansible_collections.meshops.istio.plugins.module_utils.nftables.ruleset import render

MAX_DEPTH = 64
MAX_BRANCHES = 512
_UNKNOWN = object()


class NftTraceError(IptablesError):
    """The trace cannot be completed (a jump loop, too many branches)."""


def _address(text):
    return ipaddress.ip_address(text)


class NftTracer:
    """Trace packets through one table of an :class:`~.ruleset.NftRuleset`."""

    def __init__(self, table, local_addresses=None):
        self.table = table
        self.local_addresses = local_addresses
        self._index = {}  # named set/map -> (exact values, other elements), built on first use

    # -- values -----------------------------------------------------------------------------
    def _value(self, expr, pkt):
        """The packet's value for a left-hand expression, or _UNKNOWN."""
        if isinstance(expr, dict):
            if "payload" in expr:
                field = expr["payload"].get("field")
                proto = expr["payload"].get("protocol")
                if field == "daddr" and proto in ("ip", "ip6"):
                    return pkt.dst
                if field == "saddr" and proto in ("ip", "ip6"):
                    return pkt.src
                if field == "dport" and proto in ("th", "tcp", "udp", "sctp"):
                    if proto != "th" and proto != pkt.proto:
                        return None
                    return pkt.dport
                if field == "sport" and proto in ("th", "tcp", "udp", "sctp"):
                    return pkt.sport
                return _UNKNOWN
            if "meta" in expr:
                key = expr["meta"].get("key")
                if key == "l4proto":
                    return pkt.proto
                if key == "mark":
                    return pkt.mark
                if key == "iifname":
                    return pkt.in_interface if pkt.in_interface is not None else _UNKNOWN
                if key == "oifname":
                    return pkt.out_interface if pkt.out_interface is not None else _UNKNOWN
                return _UNKNOWN
            if "ct" in expr and expr["ct"].get("key") == "state":
                return "new"
            if "fib" in expr:
                fib = expr["fib"]
                if fib.get("result") == "type" and fib.get("flags") in (["saddr"], ["daddr"]):
                    addr = pkt.src if fib["flags"] == ["saddr"] else pkt.dst
                    local = pkt.is_local(addr)
                    return _UNKNOWN if local is None else ("local" if local else "unicast")
                return _UNKNOWN
            if "concat" in expr:
                parts = [self._value(e, pkt) for e in expr["concat"]]
                return _UNKNOWN if any(p is _UNKNOWN for p in parts) else tuple(parts)
            for op in ("&", "|", "^"):
                if op in expr:
                    left, right = expr[op]
                    value = self._value(left, pkt)
                    if value is _UNKNOWN or not isinstance(right, int):
                        return _UNKNOWN
                    return {"&": value & right, "|": value | right, "^": value ^ right}[op]
        return _UNKNOWN

    @staticmethod
    def _equal(value, right):
        """Whether a packet value equals one element (address, prefix, range, protocol, port)."""
        if isinstance(right, dict):
            if "prefix" in right:
                net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}", strict=False)
                return isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and value in net
            if "range" in right:
                low, high = right["range"]
                if isinstance(value, int):
                    return int(low) <= value <= int(high)
                return _address(low) <= value <= _address(high)
            if "concat" in right:
                items = right["concat"]
                return (
                    isinstance(value, tuple)
                    and len(value) == len(items)
                    and all(NftTracer._equal(v, r) for v, r in zip(value, items))
                )
            return False
        if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return value == _address(right)
        if isinstance(value, str) and isinstance(right, int):
            return PROTOCOLS.get(value) == right
        if isinstance(value, int) and isinstance(right, str) and right in PROTOCOLS:
            return False
        return value == right

    def _members(self, right):
        """Elements of a set reference, an anonymous set or one value."""
        if isinstance(right, str) and right.startswith("@"):
            name = right[1:]
            if name in self.table.sets:
                return self.table.sets[name]
            if name in self.table.maps:
                return [key for key, _v in self.table.maps[name]]
            raise IptablesError(f"{self.table.name}: set {name} is referenced but not in the rule set")
        if isinstance(right, dict) and "set" in right:
            items = right["set"]
            return items if isinstance(items, list) else [items]
        if isinstance(right, list):
            return right
        return [right]

    @staticmethod
    def _exact(element):
        """A hashable form of a plain element (address, protocol, port, or their concatenation),
        or None for prefixes, ranges and anything else that needs a comparison."""
        if isinstance(element, dict):
            if "concat" in element:
                parts = [NftTracer._exact(e) for e in element["concat"]]
                return None if any(p is None for p in parts) else tuple(parts)
            return None
        if isinstance(element, str):
            try:
                return _address(element)
            except ValueError:
                return element
        return element

    def _indexed(self, name, elements):
        """(exact -> position, [(position, element)] of the others) for a named set or map."""
        index = self._index.get(name)
        if index is None:
            exact, others = {}, []
            for position, element in enumerate(elements):
                key = self._exact(element if not isinstance(element, list) else {"concat": element})
                if key is None:
                    others.append((position, element))
                else:
                    exact.setdefault(key, position)
            index = self._index[name] = (exact, others)
        return index

    def _find(self, name, elements, value):
        """Position of the first element of a named set/map that ``value`` equals, or None."""
        exact, others = self._indexed(name, elements)
        hits = [exact[value]] if value in exact else []
        hits += [p for p, e in others if self._equal(value, e)]
        return min(hits) if hits else None

    def _match(self, body, pkt):
        value = self._value(body.get("left"), pkt)
        if value is _UNKNOWN:
            return None
        if value is None:
            return False
        op = body.get("op")
        right = body.get("right")
        if isinstance(body.get("left"), dict) and "ct" in body["left"]:
            states = right if isinstance(right, list) else [right]
            hit = "new" in states
        elif isinstance(right, str) and right.startswith("@"):
            name = right[1:]
            elements = self.table.sets.get(name)
            if elements is None:
                elements = [key for key, _v in self.table.maps.get(name, [])] if name in self.table.maps else None
            if elements is None:
                raise IptablesError(f"{self.table.name}: set {name} is referenced but not in the rule set")
            hit = self._find(name, elements, value) is not None
        else:
            hit = any(self._equal(value, element) for element in self._members(right))
        if op in ("==", "in"):
            return hit
        if op == "!=":
            return not hit
        return None

    def _lookup(self, data, key):
        """The verdict a verdict map gives ``key``, or None."""
        if isinstance(data, str) and data[1:] in self.table.maps:
            pairs = self.table.maps[data[1:]]
            position = self._find(data, [k for k, _v in pairs] if data not in self._index else (), key)
            return pairs[position][1] if position is not None else None
        elements = None
        if isinstance(data, dict) and "set" in data:
            elements = [(pair[0], pair[1]) for pair in data["set"]]
        if elements is None:
            raise IptablesError(f"{self.table.name}: verdict map {data} is referenced but not in the rule set")
        for element, verdict in elements:
            if self._equal(key, element if not isinstance(element, (list, tuple)) else {"concat": element}):
                return verdict
        return None

    # -- the walk ---------------------------------------------------------------------------
    def _step(self, branch, rule, action):
        branch.steps.append(
            {
                "table": self.table.name,
                "chain": rule.chain,
                "rule_number": rule.number,
                "rule": rule.text,
                "action": action,
            }
        )

    def _run_chain(self, start_branch, chain):
        """Run one base chain; returns [(branch, outcome)] with outcome accept/drop/reject."""
        done = []
        # work items: (branch, frames); frames is the call stack [(chain, next rule index)].
        work = [(start_branch, [(chain, 0)])]
        while work:
            branch, frames = work.pop()
            outcome = None
            while frames and outcome is None:
                current, index = frames.pop()
                if index >= len(current.rules):
                    if not frames:
                        outcome = (current.policy or "accept").lower()
                        branch.steps.append(
                            {
                                "table": self.table.name,
                                "chain": current.name,
                                "rule_number": None,
                                "rule": f"policy {outcome}",
                                "action": f"policy {outcome}",
                            }
                        )
                    continue
                rule = current.rules[index]
                frames.append((current, index + 1))
                result = self._rule(branch, rule, frames, work)
                if result is not None:
                    outcome = result
            done.append((branch, outcome or "accept"))
        return done

    def _fork(self, branch):
        self._branch_count += 1
        if self._branch_count > MAX_BRANCHES:
            raise NftTraceError(f"packet {branch.pkt.name}: more than {MAX_BRANCHES} branches")
        return branch.fork()

    def _goto(self, branch, target, frames, push):
        chain = self.table.chain(target)
        if chain is None:
            raise IptablesError(f"{self.table.name}: chain {target} is referenced but not in the rule set")
        if len(frames) >= MAX_DEPTH:
            raise NftTraceError(f"packet {branch.pkt.name}: jumps nest deeper than {MAX_DEPTH} chains at {target}")
        if not push:
            frames.pop()  # goto: the current chain is not returned to
        frames.append((chain, 0))

    def _verdict(self, branch, rule, verdict, frames):
        """Apply a verdict dict; returns a final outcome or None to go on."""
        ((kind, body),) = verdict.items()
        if kind in ("jump", "goto"):
            self._step(branch, rule, f"{kind} {body['target']}")
            self._goto(branch, body["target"], frames, push=kind == "jump")
            return "next"
        if kind == "return":
            self._step(branch, rule, "return")
            frames.pop()
            return "next"
        if kind in ("accept", "drop"):
            self._step(branch, rule, kind)
            return kind
        if kind == "continue":
            return None
        return None

    def _rule(self, branch, rule, frames, work):
        """Evaluate one rule; returns a base-chain outcome (accept/drop/reject) or None."""
        pkt = branch.pkt
        for expr in rule.expr:
            if not isinstance(expr, dict) or len(expr) != 1:
                continue
            ((kind, body),) = expr.items()
            if kind == "match":
                matched = self._match(body, pkt)
                if matched is False:
                    return None
                if matched is None:
                    other = self._fork(branch)
                    other.unevaluated.append(rule.text)
                    other.assumptions.append({"rule": rule.text, "chain": rule.chain, "assumed": "no match"})
                    work.append((other, list(frames)))
                    branch.unevaluated.append(rule.text)
                    branch.assumptions.append({"rule": rule.text, "chain": rule.chain, "assumed": "match"})
                continue
            if kind == "counter" or kind == "comment" or kind == "log":
                continue
            if kind == "mangle" and body.get("key") == {"meta": {"key": "mark"}}:
                value = self._value(body.get("value"), pkt) if isinstance(body.get("value"), dict) else body["value"]
                if value is not _UNKNOWN:
                    pkt.mark = int(value) & 0xFFFFFFFF
                self._step(branch, rule, f"mark set {hex(pkt.mark)}")
                continue
            if kind in ("jump", "goto", "return", "accept", "drop"):
                result = self._verdict(branch, rule, expr, frames)
                return None if result == "next" else result
            if kind == "reject":
                self._step(branch, rule, "reject")
                return "reject"
            if kind == "vmap":
                key_expr = body.get("key")
                if isinstance(key_expr, dict) and "numgen" in key_expr:
                    return self._numgen(branch, rule, key_expr["numgen"], body.get("data"), frames, work)
                key = self._value(key_expr, pkt)
                if key is _UNKNOWN:
                    branch.unevaluated.append(rule.text)
                    return None
                verdict = self._lookup(body.get("data"), key)
                if verdict is None:
                    return None  # no element: the rule does not match
                result = self._verdict(branch, rule, verdict, frames)
                return None if result == "next" else result
            if kind == "dnat":
                addr, port = body.get("addr"), body.get("port")
                if addr is not None:
                    pkt.dst = _address(addr)
                if port is not None:
                    pkt.dport = int(port)
                pkt.dnat = True
                branch.nat.append(("DNAT", {"to_destination": hostport(pkt)}))
                self._step(branch, rule, "dnat")
                return "accept"  # a nat statement ends the chain for this hook
            if kind == "masquerade":
                pkt.snat = True
                branch.nat.append(("MASQUERADE", {"to_source": "address of the outgoing interface"}))
                self._step(branch, rule, "masquerade")
                return "accept"
            # An expression the engine does not evaluate: say so, let the packet go on.
            branch.unevaluated.append(rule.text)
            branch.assumptions.append(
                {"rule": rule.text, "chain": rule.chain, "assumed": f"{render(expr)} does not end the traversal"}
            )
        if rule.expr and all(isinstance(e, dict) and ("match" in e or "counter" in e) for e in rule.expr):
            self._step(branch, rule, "count")
        return None

    def _numgen(self, branch, rule, numgen, data, frames, work):
        modulus = int(numgen.get("mod") or 1)
        offset = int(numgen.get("offset") or 0)
        choices = []
        for value in range(offset, offset + modulus):
            verdict = self._lookup(data, value)
            if verdict is not None:
                choices.append(verdict)
        if not choices:
            return None
        share = 1.0 / modulus
        forks = [branch] + [self._fork(branch) for _choice in choices[1:]]
        for target in forks:
            target.probability *= share
        # The first choice continues here; the others wait on the work stack with their own frames.
        for target, verdict in reversed(list(zip(forks[1:], choices[1:]))):
            other_frames = list(frames)
            self._verdict(target, rule, verdict, other_frames)
            work.append((target, other_frames))
        result = self._verdict(branch, rule, choices[0], frames)
        return None if result == "next" else result

    # -- hooks ------------------------------------------------------------------------------
    def _base_chains(self, hook):
        by_hook = self._index.get(("hooks",))
        if by_hook is None:
            by_hook = {}
            for chain in self.table.chains.values():
                if chain.hook is not None:
                    by_hook.setdefault(chain.hook, []).append(chain)
            for chains in by_hook.values():
                chains.sort(key=lambda c: c.prio if isinstance(c.prio, int) else 0)
            self._index[("hooks",)] = by_hook
        return by_hook.get(hook, [])

    def _run_hook(self, branches, hook):
        for chain in self._base_chains(hook):
            nxt = []
            for branch in branches:
                if branch.final is not None:
                    nxt.append(branch)
                    continue
                if chain.type == "nat" and branch.pkt.dnat and hook in ("prerouting", "output"):
                    nxt.append(branch)  # NAT is decided once per connection
                    continue
                for b, outcome in self._run_chain(branch, chain):
                    if outcome in ("drop", "reject"):
                        b.final = outcome.upper()
                    nxt.append(b)
            branches = nxt
        return branches

    def trace(self, spec):
        pkt = spec if isinstance(spec, Packet) else Packet(spec, self.local_addresses)
        self._branch_count = 1
        packet_dict = pkt.to_dict()
        start = Branch(pkt.copy())
        if start.pkt.hook == "output":
            branches = self._run_hook([start], "output")
            branches = self._run_hook(branches, "postrouting")
            for b in branches:
                if b.final is None:
                    b.final = "LOCAL" if b.pkt.is_local(b.pkt.dst) else "SENT"
        else:
            branches = self._run_hook([start], "prerouting")
            done = []
            for b in branches:
                if b.final is not None:
                    done.append(b)
                    continue
                local = b.pkt.is_local(b.pkt.dst)
                if local is None:
                    local = False
                    b.assumptions.append({"assumed": f"{b.pkt.dst} is not an address of this host: forwarded"})
                if local:
                    out = self._run_hook([b], "input")
                    for ob in out:
                        ob.final = ob.final or "LOCAL"
                else:
                    out = self._run_hook([b], "forward")
                    out = self._run_hook(out, "postrouting")
                    for ob in out:
                        ob.final = ob.final or "FORWARDED"
                done.extend(out)
            branches = done
        return branches_result(pkt, packet_dict, branches, _verdict_of)


def _verdict_of(branch):
    pkt = branch.pkt
    verdict = {"action": "ACCEPT", "to_ports": None, "to_destination": None}
    if branch.final in ("DROP", "REJECT"):
        verdict["action"] = branch.final
    else:
        for kind, details in branch.nat:
            if kind == "DNAT":
                verdict["action"] = "DNAT"
                verdict.update(details)
            elif kind == "MASQUERADE":
                verdict.setdefault("to_source", details["to_source"])
    verdict["destination"] = hostport(pkt)
    verdict["delivered"] = {"LOCAL": "local", "SENT": "sent", "FORWARDED": "forwarded"}.get(branch.final, "dropped")
    if verdict["delivered"] == "local":
        verdict["local_port"] = pkt.dport
    verdict["mark"] = hex(pkt.mark)
    return verdict
