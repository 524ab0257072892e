"""The iptables targets the engine knows, grouped by what they do to a packet's traversal.

One definition for the parser (any other ``-j`` name must be a user chain) and the tracer (one
handler per target; a unit test proves the two cover the same names).
"""

# End the traversal of the hook with this verdict.
VERDICTS = ("ACCEPT", "DROP", "REJECT")
# Hand the packet to userspace: the outcome is not in the rules.
QUEUES = ("QUEUE", "NFQUEUE")
# Leave the current chain.
RETURNS = ("RETURN",)
# Rewrite the destination or the source, then end the chain (NAT is decided per connection).
NAT = ("REDIRECT", "DNAT", "SNAT", "MASQUERADE", "NETMAP")
# Divert the packet to a local transparent socket.
TPROXY = ("TPROXY",)
# Change the packet's or the connection's mark, then go on.
MARKS = ("MARK", "CONNMARK")
# Log, count, tag or tune the packet, then go on: nothing the trace follows changes.
PASS_THROUGH = (
    "LOG",
    "NFLOG",
    "ULOG",
    "TRACE",
    "NOTRACK",
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "TCPMSS",
    "TCPOPTSTRIP",
    "TEE",
    "DSCP",
    "TOS",
    "TTL",
    "HL",
    "ECN",
    "SET",
    "SECMARK",
    "CONNSECMARK",
    "IDLETIMER",
    "LED",
    "HMARK",
    "RATEEST",
    "CT",
)
# Real targets whose effect the tracer does not model: reported as unevaluated, assumed to let
# the packet go on.
NOT_MODELLED = ("SYNPROXY", "CLUSTERIP", "CONNLIMIT", "MIRROR")

KNOWN_TARGETS = frozenset(VERDICTS + QUEUES + RETURNS + NAT + TPROXY + MARKS + PASS_THROUGH + NOT_MODELLED)
