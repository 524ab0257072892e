"""Branch bookkeeping shared by the iptables tracer and the nftables tracer: a packet's branch
(its steps, probability, assumptions, NAT), and the one way branches become a trace result."""


class Branch:
    """One possible path of the packet; ``fork`` copies it where the rules split the traffic."""

    __slots__ = ("assumptions", "final", "nat", "pkt", "probability", "steps", "unevaluated", "verdict_rule")

    def __init__(self, pkt):
        self.pkt = pkt
        self.steps = []
        self.probability = 1.0
        self.assumptions = []
        self.unevaluated = []
        self.nat = []  # (action, details) applied to the connection
        self.final = None
        self.verdict_rule = None

    def fork(self):
        other = Branch(self.pkt.copy())
        other.steps = list(self.steps)
        other.probability = self.probability
        other.assumptions = list(self.assumptions)
        other.unevaluated = list(self.unevaluated)
        other.nat = list(self.nat)
        other.final = self.final
        other.verdict_rule = self.verdict_rule
        return other


def hostport(pkt):
    host = f"[{pkt.dst}]" if pkt.family == "ipv6" else str(pkt.dst)
    return f"{host}:{pkt.dport}" if pkt.dport is not None else host


def result(pkt, packet_dict, branches, verdict_of):
    """The trace result: one branch as it is; several as ``branches`` with the steps they share
    and a verdict that says whether they agree."""
    outcomes = [
        {
            "probability": round(b.probability, 6),
            "steps": b.steps,
            "verdict": verdict_of(b),
            "unevaluated": b.unevaluated,
            "assumptions": b.assumptions,
        }
        for b in branches
    ]
    merged = {"name": pkt.name, "packet": packet_dict, "family": pkt.family}
    if len(outcomes) == 1:
        only = outcomes[0]
        merged.update(
            steps=only["steps"],
            verdict=only["verdict"],
            branches=[],
            unevaluated=only["unevaluated"],
            assumptions=only["assumptions"],
        )
        return merged
    prefix = []
    for index in range(min(len(o["steps"]) for o in outcomes)):
        column = [o["steps"][index] for o in outcomes]
        if any(s != column[0] for s in column):
            break
        prefix.append(column[0])
    verdicts = {(o["verdict"]["action"], o["verdict"].get("to_destination")) for o in outcomes}
    actions = sorted({o["verdict"]["action"] for o in outcomes})
    destinations = [o["verdict"].get("to_destination") for o in outcomes]
    if len(verdicts) == 1:
        verdict = dict(outcomes[0]["verdict"])
    elif len(actions) == 1:
        # Same action, different targets (a load-balanced service): the branches tell which.
        verdict = {
            "action": actions[0],
            "to_ports": None,
            "to_destination": None,
            "actions": actions,
            "to_destinations": destinations,
            "delivered": outcomes[0]["verdict"]["delivered"],
        }
    else:
        verdict = {
            "action": "MULTIPLE",
            "to_ports": None,
            "to_destination": None,
            "actions": actions,
            "to_destinations": destinations,
        }
    unevaluated = []
    for o in outcomes:
        for text in o["unevaluated"]:
            if text not in unevaluated:
                unevaluated.append(text)
    merged.update(steps=prefix, verdict=verdict, branches=outcomes, unevaluated=unevaluated, assumptions=[])
    return merged
