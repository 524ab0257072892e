"""Data model of a parsed iptables ruleset.

A :class:`Ruleset` holds the tables of one address family (``ipv4`` for iptables, ``ipv6`` for
ip6tables) as read from one backend (``nft`` or ``legacy``). Tables hold chains in dump order;
chains hold rules in evaluation order, numbered from 1 exactly like ``iptables -L --line-numbers``.

A rule keeps the text it was read from (``spec``: everything after ``-A CHAIN``) and its parsed
form: ``matches`` is a flat list of :class:`Condition` (module, option, negated, value), for
example ``Condition("owner", "uid-owner", True, "1337")`` for ``-m owner ! --uid-owner 1337``;
the basic options ``-s -d -i -o -p -f`` use the module name ``ip``. ``target`` is the ``-j``/``-g``
target and ``target_options`` its options as ordered ``(option, value)`` pairs (value ``None``
for a flag such as ``--save-mark``).
"""

import contextlib
import gc
from collections import namedtuple

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError

TABLES = ("raw", "mangle", "nat", "filter", "security")
DEFAULT_TABLES = ("raw", "mangle", "nat", "filter")

BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

Condition = namedtuple("Condition", "module option negated value")


@contextlib.contextmanager
def no_cyclic_gc():
    """Pause the cyclic garbage collector while tens of thousands of acyclic objects are made
    (parsing a node's rules): it would rescan every live object again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Rule:
    """One rule of a chain."""

    __slots__ = (
        "_bytes",
        "_compiled",
        "_counters",
        "_lazy",
        "_line",
        "_matches",
        "_packets",
        "_source",
        "_spec",
        "chain",
        "goto",
        "line",
        "number",
        "table",
        "target",
        "target_options",
    )

    def __init__(
        self,
        table,
        chain,
        number,
        spec,
        matches,
        target,
        target_options,
        goto=False,
        packets=None,
        bytes_=None,
        line=None,
    ):
        self.table = table
        self.chain = chain
        self.number = number
        self._spec = spec
        self._line = None  # the "-A CHAIN ..." line, when spec is derived from it on first use
        self._matches = matches
        self._lazy = None  # match tokens, or the -j position in _line: parsed on first use of .matches
        self._source = None  # the input's name, for errors found on first use
        self.target = target
        self.target_options = target_options
        self.goto = goto
        self._packets = packets
        self._bytes = bytes_
        self._counters = None  # "packets:bytes" of a dumped rule, read on first use
        self.line = line
        self._compiled = None

    # Set by the parser module: parses a rule's matches, raising ParseError with source and line.
    lazy_parser = None

    @property
    def matches(self):
        matches = self._matches
        if matches is None:
            matches = self._matches = Rule.lazy_parser(self)
            self._lazy = None
        return matches

    def _read_counters(self):
        text, source = self._counters, self._source
        packets, _sep, bytes_ = text.partition(":")
        try:
            self._packets, self._bytes = int(packets), int(bytes_)
        except ValueError:
            raise ParseError(
                f"malformed counters [{text}] (expected [packets:bytes])", source, self.line, self.text
            ) from None
        self._counters = None

    @property
    def packets(self):
        if self._counters is not None:
            self._read_counters()
        return self._packets

    @property
    def bytes(self):
        if self._counters is not None:
            self._read_counters()
        return self._bytes

    @property
    def spec(self):
        spec = self._spec
        if spec is None:
            parts = self._line.split(None, 2)
            spec = self._spec = parts[2] if len(parts) > 2 else ""
        return spec

    @property
    def text(self):
        """The rule as iptables-save prints it, without counters."""
        return f"-A {self.chain} {self.spec}" if self.spec else f"-A {self.chain}"

    def malformed(self, what, exc=None):
        """The ParseError for a value this rule holds that iptables-save never prints (a port that is
        no number, a /33 prefix, a host name where an address belongs): source and line named."""
        detail = f"{what}: {exc}" if exc is not None else what
        return ParseError(
            f"{detail} (iptables-save never prints this: the dump was edited or damaged; take a fresh dump)",
            self._source or "<rules>",
            self.line,
            self.text,
        )

    def target_option(self, name, default=None):
        for option, value in self.target_options:
            if option == name:
                return value
        return default

    def conditions(self, module=None, option=None):
        return [
            c for c in self.matches if (module is None or c.module == module) and (option is None or c.option == option)
        ]

    def to_dict(self):
        return {
            "rule_number": self.number,
            "rule": self.text,
            "matches": [
                {"match": c.module, "option": c.option, "negated": c.negated, "value": c.value} for c in self.matches
            ],
            "target": self.target,
            "goto": self.goto,
            "target_options": dict(self.target_options),
            "packets": self.packets,
            "bytes": self.bytes,
        }

    def __repr__(self):
        return f"<Rule {self.table}/{self.chain}#{self.number} {self.spec!r}>"


class Chain:
    """A built-in chain (with a policy) or a user-defined chain (policy ``None``)."""

    __slots__ = ("_index", "builtin", "bytes", "name", "packets", "policy", "rules", "table")

    def __init__(self, table, name, policy=None, packets=None, bytes_=None, builtin=False):
        self.table = table
        self.name = name
        self.policy = policy
        self.packets = packets
        self.bytes = bytes_
        self.builtin = builtin
        self.rules = []
        self._index = None

    def to_dict(self):
        return {
            "policy": self.policy,
            "packets": self.packets,
            "bytes": self.bytes,
            "rules": [rule.to_dict() for rule in self.rules],
        }


class Table:
    __slots__ = ("_declared", "chains", "name")

    def __init__(self, name):
        self.name = name
        self.chains = {}

    def chain(self, name):
        return self.chains.get(name)

    def rule_count(self):
        return sum(len(c.rules) for c in self.chains.values())

    def to_dict(self):
        return {"chains": {name: chain.to_dict() for name, chain in self.chains.items()}}


class Ruleset:
    """All tables of one family read from one backend."""

    def __init__(self, family="ipv4", backend=None, source="<input>"):
        self.family = family
        self.backend = backend
        self.source = source
        self.tables = {}
        self.warnings = []
        # The dump's own "# Warning:" lines, apart from the parser's warnings, so that a reader
        # decides on them by where they came from, not by their wording.
        self.header_notes = []

    def table(self, name):
        return self.tables.get(name)

    def chain(self, table, name):
        t = self.tables.get(table)
        return t.chains.get(name) if t else None

    def rule_count(self):
        return sum(t.rule_count() for t in self.tables.values())

    def is_empty(self):
        """True when no table holds a rule and every built-in policy is ACCEPT."""
        for table in self.tables.values():
            for chain in table.chains.values():
                if chain.rules or (chain.policy not in (None, "ACCEPT")) or not chain.builtin:
                    return False
        return True

    def validate(self):
        """Parse every rule's matches now (they are parsed on first use): raises ParseError."""
        with no_cyclic_gc():
            for rule in self.iter_rules():
                Rule.matches.fget(rule)
        return self

    def iter_rules(self):
        for table in self.tables.values():
            for chain in table.chains.values():
                yield from chain.rules

    def to_dict(self, tables=None):
        wanted = tables if tables is not None else list(self.tables)
        return {name: self.tables[name].to_dict() for name in wanted if name in self.tables}

    def normalized_text(self):
        """Ruleset text without counters and comments: equal iff the rules are equal."""
        lines = []
        for table in self.tables.values():
            lines.append(f"*{table.name}")
            for chain in table.chains.values():
                lines.append(f":{chain.name} {chain.policy or '-'}")
            for chain in table.chains.values():
                lines.extend(rule.text for rule in chain.rules)
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"
