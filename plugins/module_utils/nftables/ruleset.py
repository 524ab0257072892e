"""Read an nftables rule set from its JSON form (``nft -j list ...`` or libnftables).

:func:`parse_json` (text or the decoded object, ``source``) returns an :class:`NftRuleset`:
``tables[(family, name)]`` each with ``chains`` (name -> :class:`NftChain`: ``hook``, ``type``,
``prio``, ``policy``, ``rules``), ``sets`` and ``maps`` (name -> elements). A rule keeps its
JSON expressions (``expr``) and a readable ``text`` in nft's own syntax for the part the audit
understands. Read-only; nothing here talks to the kernel.
"""

import json

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import ParseError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.model import no_cyclic_gc

FAMILIES = ("ip", "ip6", "inet")


class NftRule:
    __slots__ = ("chain", "comment", "expr", "handle", "number", "table")

    def __init__(self, table, chain, number, handle, expr, comment=None):
        self.table = table
        self.chain = chain
        self.number = number
        self.handle = handle
        self.expr = expr
        self.comment = comment

    def _counter(self, key):
        for expr in self.expr:
            if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                return expr["counter"].get(key)
        return None

    @property
    def packets(self):
        """The rule's counter statement (kube-proxy writes none: None)."""
        return self._counter("packets")

    @property
    def bytes(self):
        return self._counter("bytes")

    @property
    def text(self):
        body = " ".join(render(e) for e in self.expr)
        return f"{body} comment {json.dumps(self.comment)}" if self.comment else body


class NftChain:
    __slots__ = ("hook", "name", "policy", "prio", "rules", "type")

    def __init__(self, name, hook=None, type_=None, prio=None, policy=None):
        self.name = name
        self.hook = hook
        self.type = type_
        self.prio = prio
        self.policy = policy
        self.rules = []

    @property
    def base(self):
        return self.hook is not None

    packets = None  # nftables keeps no per-chain counters
    bytes = None


class NftTable:
    def __init__(self, family, name):
        self.family = family
        self.name = name
        self.chains = {}
        self.sets = {}  # name -> list of element values
        self.maps = {}  # name -> list of (key, verdict dict)
        self.map_comments = {}  # name -> {element index: comment}

    def chain(self, name):
        return self.chains.get(name)

    def rule_count(self):
        return sum(len(c.rules) for c in self.chains.values())


class NftRuleset:
    def __init__(self, source):
        self.source = source
        self.tables = {}
        self.version = None

    def table(self, family, name):
        return self.tables.get((family, name))

    def chain(self, table_name, chain_name):
        """The chain of the first table named ``table_name`` (the trace steps name tables so)."""
        for (_family, name), table in self.tables.items():
            if name == table_name and chain_name in table.chains:
                return table.chains[chain_name]
        return None


def _element(item, source):
    """A set element: a plain value, or ``{"elem": {"val": ..., "comment": ...}}``."""
    if isinstance(item, dict) and "elem" in item:
        return item["elem"].get("val")
    return item


def parse_json(data, source="<nft>"):
    """Parse ``nft -j`` output; malformed input raises ParseError naming ``source``."""
    # Many small objects and no cycles: the cyclic collector would rescan them again and again.
    with no_cyclic_gc():
        return _parse_json(data, source)


def _parse_json(data, source):
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data or "{}")
        except ValueError as exc:
            raise ParseError(f"not nft JSON output: {exc}", source) from None
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ParseError("not nft JSON output: no top-level 'nftables' list", source)
    ruleset = NftRuleset(source)
    numbers = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or len(item) != 1:
            raise ParseError(f"item {index} is not an object with one key", source)
        ((kind, body),) = item.items()
        if kind == "metainfo":
            ruleset.version = body.get("version")
            continue
        if not isinstance(body, dict):
            raise ParseError(f"item {index} ({kind}) is not an object", source)
        family, table_name = body.get("family"), body.get("table") if kind != "table" else body.get("name")
        if kind == "table":
            ruleset.tables[(family, table_name)] = NftTable(family, table_name)
            continue
        table = ruleset.tables.get((family, table_name))
        if table is None:
            if kind in ("chain", "rule", "set", "map"):
                table = ruleset.tables[(family, table_name)] = NftTable(family, table_name)
            else:
                continue
        try:
            if kind == "chain":
                table.chains[body["name"]] = NftChain(
                    body["name"], body.get("hook"), body.get("type"), body.get("prio"), body.get("policy")
                )
            elif kind == "rule":
                chain = table.chains.get(body["chain"])
                if chain is None:
                    chain = table.chains[body["chain"]] = NftChain(body["chain"])
                key = (family, table_name, body["chain"])
                numbers[key] = numbers.get(key, 0) + 1
                expr = body.get("expr") or []
                if not isinstance(expr, list):
                    raise ParseError(f"rule {body.get('handle')} of chain {body['chain']}: expr is not a list", source)
                chain.rules.append(
                    NftRule(table_name, body["chain"], numbers[key], body.get("handle"), expr, body.get("comment"))
                )
            elif kind == "set":
                table.sets[body["name"]] = [_element(e, source) for e in body.get("elem") or []]
            elif kind == "map":
                elements = []
                comments = {}
                for pair in body.get("elem") or []:
                    if not isinstance(pair, list) or len(pair) != 2:
                        raise ParseError(f"map {body['name']}: an element is not a [key, value] pair", source)
                    key = _element(pair[0], source)
                    if isinstance(pair[0], dict) and "elem" in pair[0] and pair[0]["elem"].get("comment"):
                        comments[len(elements)] = pair[0]["elem"]["comment"]
                    elements.append((key, pair[1]))
                table.maps[body["name"]] = elements
                table.map_comments[body["name"]] = comments
        except KeyError as exc:
            raise ParseError(f"{kind} item {index} lacks the field {exc}", source) from None
    return ruleset


# -- rendering (nft syntax, for people) ----------------------------------------------------------
def render_value(value):
    if isinstance(value, dict):
        if "payload" in value:
            p = value["payload"]
            return f"{p.get('protocol')} {p.get('field')}"
        if "meta" in value:
            return f"meta {value['meta'].get('key')}"
        if "ct" in value:
            return f"ct {value['ct'].get('key')}"
        if "fib" in value:
            fib = value["fib"]
            return f"fib {' . '.join(fib.get('flags') or [])} {fib.get('result')}"
        if "concat" in value:
            return " . ".join(render_value(v) for v in value["concat"])
        if "prefix" in value:
            return f"{value['prefix'].get('addr')}/{value['prefix'].get('len')}"
        if "range" in value:
            low, high = value["range"]
            return f"{render_value(low)}-{render_value(high)}"
        if "set" in value:
            items = value["set"] if isinstance(value["set"], list) else [value["set"]]
            return "{ " + ", ".join(render_value(i) for i in items) + " }"
        if "numgen" in value:
            n = value["numgen"]
            return f"numgen {n.get('mode')} mod {n.get('mod')}" + (f" offset {n['offset']}" if n.get("offset") else "")
        for op in ("&", "|", "^"):
            if op in value:
                left, right = value[op]
                word = {"&": "and", "|": "or", "^": "xor"}[op]
                return f"{render_value(left)} {word} {render_value(right)}"
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key in ("goto", "jump"):
                return f"{key} {inner.get('target')}"
            return key if inner is None else f"{key} {render_value(inner)}"
    if isinstance(value, list):
        if len(value) == 2 and not isinstance(value[0], (dict, list)):
            return f"{render_value(value[0])} : {render_value(value[1])}"
        return " ".join(render_value(v) for v in value)
    return str(value)


def render(expr):
    """One expression of a rule in nft syntax (the subset kube-proxy writes; others as JSON)."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return json.dumps(expr)
    ((kind, body),) = expr.items()
    if kind == "match":
        op = body.get("op")
        binop = isinstance(body.get("left"), dict) and any(k in body["left"] for k in ("&", "|", "^"))
        sep = " " if op in ("==", "in") and not binop else f" {op} "
        return f"{render_value(body.get('left'))}{sep}{render_value(body.get('right'))}"
    if kind in ("jump", "goto"):
        return f"{kind} {body.get('target')}"
    if kind in ("accept", "drop", "return", "continue"):
        return kind
    if kind == "reject":
        return "reject"
    if kind == "counter":
        return f"counter packets {body.get('packets', 0)} bytes {body.get('bytes', 0)}" if body else "counter"
    if kind == "vmap":
        data = body.get("data")
        return f"{render_value(body.get('key'))} vmap {data if isinstance(data, str) else render_value(data)}"
    if kind in ("dnat", "snat"):
        addr, port = body.get("addr"), body.get("port")
        if addr is not None and port is not None and ":" in str(addr):
            return f"{kind} to [{addr}]:{port}"
        return f"{kind} to {addr}" + (f":{port}" if port is not None else "")
    if kind == "masquerade":
        return "masquerade" + (f" {body['flags']}" if body and body.get("flags") else "")
    if kind == "mangle":
        return f"{render_value(body.get('key'))} set {render_value(body.get('value'))}"
    return json.dumps(expr)
