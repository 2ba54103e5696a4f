"""A parser for Grafana Alloy's configuration syntax, enough to check a config.alloy without Alloy.

Alloy has no package these machines can install (the generated CI runs the real binary). This
follows the syntax reference (https://grafana.com/docs/alloy/latest/get-started/configuration-syntax/):
a file is a body of attributes (`name = expression`) and blocks (`name.name "label" { body }`);
expressions are literals (strings with escapes, numbers, `true`/`false`/`null`), arrays, objects
(`{key = expression, ...}`), identifiers and dotted references (`discovery.docker.x.targets`),
calls (`sys.env("X")`), indexing, unary `!`/`-` and binary operators. Comments are `//` and `/* */`.

`parse(text)` returns the top-level body as a list of `Block`s and `Attribute`s, or raises
`AlloySyntaxError` with the line. `references(node)` lists the dotted names an expression reads,
`calls(node)` the functions it calls with their literal arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+) | (?P<nl>\n) | (?P<comment>//[^\n]*|/\*.*?\*/) |
    (?P<string>"(?:[^"\\\n]|\\.)*") | (?P<raw>`[^`]*`) |
    (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?) |
    (?P<ident>[A-Za-z_][A-Za-z0-9_]*) |
    (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%^<>!=.,\[\]{}()])
""", re.VERBOSE | re.DOTALL)
BINARY = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3, "+": 4, "-": 4,
          "*": 5, "/": 5, "%": 5, "^": 6}


class AlloySyntaxError(ValueError):
    pass


@dataclass
class Attribute:
    name: str
    value: object
    line: int


@dataclass
class Block:
    name: str  # dotted: discovery.docker
    label: str | None
    body: list = field(default_factory=list)
    line: int = 0

    def attributes(self) -> dict[str, object]:
        return {item.name: item.value for item in self.body if isinstance(item, Attribute)}

    def blocks(self, name: str | None = None) -> list[Block]:
        return [item for item in self.body if isinstance(item, Block) and name in (None, item.name)]


@dataclass
class Ref:  # a dotted name read by an expression
    path: str


@dataclass
class Call:
    function: str
    args: list


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match:
            raise AlloySyntaxError(f"line {line}: unexpected {text[pos]!r}")
        kind, value = match.lastgroup, match.group()
        if kind in ("string", "raw", "number", "ident", "op"):
            out.append((kind, value, line))
        elif kind == "nl":
            out.append(("nl", value, line))
        line += value.count("\n")
        pos = match.end()
    out.append(("eof", "", line))
    return out


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self, skip_newlines: bool = True) -> tuple[str, str, int]:
        while skip_newlines and self.tokens[self.pos][0] == "nl":
            self.pos += 1
        return self.tokens[self.pos]

    def take(self, value: str | None = None, kind: str | None = None, skip_newlines: bool = True):
        token = self.peek(skip_newlines)
        if (value is not None and token[1] != value) or (kind is not None and token[0] != kind):
            raise AlloySyntaxError(f"line {token[2]}: expected {value or kind}, found {token[1] or 'end of file'!r}")
        self.pos += 1
        return token

    def body(self, closing: str | None) -> list:
        items = []
        while True:
            kind, value, line = self.peek()
            if (closing and value == closing) or (not closing and kind == "eof"):
                return items
            name = self.take(kind="ident")[1]
            while self.peek()[1] == ".":
                self.take(".")
                name += "." + self.take(kind="ident")[1]
            kind, value, _ = self.peek()
            if value == "=" and "." not in name:
                self.take("=")
                items.append(Attribute(name, self.expression(), line))
                self.end_of_statement(closing)
                continue
            label = None
            if kind == "string":
                label = _unquote(self.take(kind="string")[1])
            self.take("{")
            block = Block(name, label, self.body("}"), line)
            self.take("}")
            items.append(block)

    def end_of_statement(self, closing: str | None) -> None:
        kind, value, line = self.peek(skip_newlines=False)
        if kind in ("nl", "eof") or value == closing:
            return
        raise AlloySyntaxError(f"line {line}: expected a new line after the attribute, found {value!r}")

    def expression(self, precedence: int = 0):
        left = self.unary()
        while (op := self.peek(skip_newlines=False)[1]) in BINARY and BINARY[op] > precedence:
            self.take(op)
            left = ("op", op, left, self.expression(BINARY[op]))
        return left

    def unary(self):
        if self.peek()[1] in ("!", "-"):
            op = self.take()[1]
            return ("op", op, self.unary())
        return self.postfix(self.primary())

    def postfix(self, node):
        while True:
            value = self.peek(skip_newlines=False)[1]
            if value == "." and isinstance(node, Ref):
                self.take(".")
                node = Ref(node.path + "." + self.take(kind="ident")[1])
            elif value == "(" and isinstance(node, Ref):
                self.take("(")
                args = self.items(")", self.expression)
                node = Call(node.path, args)
            elif value == "[":
                self.take("[")
                node = ("index", node, self.expression())
                self.take("]")
            else:
                return node

    def items(self, closing: str, item) -> list:
        out = []
        while self.peek()[1] != closing:
            out.append(item())
            if self.peek()[1] != closing:
                self.take(",")
        self.take(closing)
        return out

    def primary(self):
        kind, value, line = self.take()
        if kind == "string":
            return _unquote(value)
        if kind == "raw":
            return value[1:-1]
        if kind == "number":
            return float(value) if "." in value or "e" in value.lower() else int(value)
        if kind == "ident":
            if value in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[value]
            return Ref(value)
        if value == "[":
            return self.items("]", self.expression)
        if value == "{":
            return dict(self.items("}", self.object_field))
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        raise AlloySyntaxError(f"line {line}: unexpected {value or 'end of file'!r}")

    def object_field(self):
        kind, key, _ = self.take()
        if kind not in ("ident", "string"):
            raise AlloySyntaxError(f"object key expected, found {key!r}")
        self.take("=")
        return (_unquote(key) if kind == "string" else key), self.expression()


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r'\\(["\\nrt])', lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1)), body)


def parse(text: str) -> list:
    parser = _Parser(text)
    return parser.body(None)


def walk(node):
    """Every value inside an expression, the expression included."""
    yield node
    children = (node.args if isinstance(node, Call) else list(node.values()) if isinstance(node, dict)
                else node if isinstance(node, list) else node[1:] if isinstance(node, tuple) else ())
    for child in children:
        if child is not None and not isinstance(child, str | int | float | bool):
            yield from walk(child)


def references(node) -> list[str]:
    return [item.path for item in walk(node) if isinstance(item, Ref)]


def calls(node) -> list[Call]:
    return [item for item in walk(node) if isinstance(item, Call)]
