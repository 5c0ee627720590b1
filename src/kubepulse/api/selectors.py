"""Label and field selectors with the syntax and errors of apimachinery.

Label selectors (pkg/labels/selector.go): `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`, joined by commas. Field selectors (pkg/fields): `f=v`,
`f==v`, `f!=v` over the fields each resource supports; anything else is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass


class SelectorError(ValueError):
    """Becomes a 400 BadRequest with this message."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "==", "in"):
            return present and labels[self.key] in self.values
        if self.op in ("gt", "lt"):
            try:
                have, want = int(labels[self.key]), int(next(iter(self.values)))
            except (KeyError, ValueError, StopIteration):
                return False
            return have > want if self.op == "gt" else have < want
        return not present or labels[self.key] not in self.values  # != and notin


_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_NAME}')"
)
_LABEL_VALUE = re.compile(f"({_NAME})?")
_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',"
    "  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _check_key(key: str) -> None:
    """validation.IsQualifiedName: [prefix/]name, as apimachinery words its errors."""
    parts = key.split("/")
    if len(parts) > 2:
        raise SelectorError(
            f'<nil>: Invalid value: "{key}": a qualified name {_NAME_RULE} with an optional DNS '
            "subdomain prefix and '/' (e.g. 'example.com/MyName')"
        )
    name = parts[-1]
    if len(parts) == 2 and not (_SUBDOMAIN.fullmatch(parts[0]) and len(parts[0]) <= 253):
        raise SelectorError(
            f'<nil>: Invalid value: "{key}": prefix part a lowercase RFC 1123 subdomain must '
            "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    if not name:
        raise SelectorError(f'<nil>: Invalid value: "{key}": name part must be non-empty')
    if len(name) > 63:
        raise SelectorError(
            f'<nil>: Invalid value: "{key}": name part must be no more than 63 characters'
        )
    if not re.fullmatch(_NAME, name):
        raise SelectorError(f'<nil>: Invalid value: "{key}": name part {_NAME_RULE}')


# The lexer and parser of apimachinery pkg/labels/selector.go, so that bad selectors
# get the same messages as from kubectl and kube-apiserver.
_OPERATORS = {
    "!": "!",
    "!=": "!=",
    "(": "(",
    ")": ")",
    ",": ",",
    "=": "=",
    "==": "==",
    ">": "gt",
    "<": "lt",
}
_SPECIAL = set("=!(),><")
_BINARY = "in, notin, =, ==, !=, gt, lt"
_END, _IDENT, _ERROR = "end", "ident", "error"


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            tokens.append((_END, ""))
            return tokens
        if text[i] in _SPECIAL:
            buffer, last = "", None
            while i < len(text) and text[i] in _SPECIAL:
                if buffer + text[i] in _OPERATORS:
                    buffer += text[i]
                    last = buffer
                    i += 1
                elif last is not None:
                    break
                else:
                    buffer += text[i]
                    i += 1
            if last is None:
                tokens.append((_ERROR, f"error expected: keyword found '{buffer}'"))
            else:
                tokens.append((_OPERATORS[last], last))
            continue
        start = i
        while i < len(text) and text[i] not in _SPECIAL and text[i] not in " \t\r\n":
            i += 1
        word = text[start:i]
        tokens.append((word if word in ("in", "notin") else _IDENT, word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.tokens[self.pos]
        return (_IDENT if values and tok in ("in", "notin") else tok), lit

    def take(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.peek(values)
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok, lit

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok == _END:
                return requirements
            if tok not in (_IDENT, "!"):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err}") from err
            tok, lit = self.take()
            if tok == _END:
                return requirements
            if tok != ",":
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self.peek()
            if tok not in (_IDENT, "!"):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        tok, key = self.take()
        negated = tok == "!"
        if negated:
            tok, key = self.take()
        if tok != _IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        _check_key(key)
        if negated:
            return Requirement(key, "!")
        if self.peek()[0] in (_END, ","):
            return Requirement(key, "exists")
        op, lit = self.take(values=False)
        if op in ("in", "notin"):
            values = self.values()
        elif op in ("=", "==", "!=", "gt", "lt"):
            values = self.exact_value()
        else:
            raise SelectorError(f"found '{lit}', expected: {_BINARY}")
        for i, v in enumerate(sorted(values)):
            if op in ("gt", "lt"):
                if not re.fullmatch(r"[+-]?[0-9]+", v):
                    raise SelectorError(
                        f'values[{i}]: Invalid value: "{v}": '
                        "for 'Gt', 'Lt' operators, the value must be an integer"
                    )
            elif not _LABEL_VALUE.fullmatch(v) or len(v) > 63:
                raise SelectorError(f'values[{i}][{key}]: Invalid value: "{v}": {_VALUE_RULE}')
        return Requirement(key, op, values)

    def values(self) -> frozenset[str]:
        tok, lit = self.take()
        if tok != "(":
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok == ")":
            self.take()
            return frozenset([""])
        if tok not in (_IDENT, ","):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        found: set[str] = set()
        while True:
            tok, item = self.take()
            if tok == _IDENT:
                found.add(item)
                nxt, nxt_lit = self.peek()
                if nxt == ")":
                    break
                if nxt != ",":
                    raise SelectorError(f"found '{nxt_lit}', expected: ',' or ')'")
            elif tok == ",":
                if not found:
                    found.add("")
                nxt, _ = self.peek()
                if nxt == ")":
                    found.add("")
                    break
                if nxt == ",":
                    self.take()
                    found.add("")
            else:
                raise SelectorError(f"found '{item}', expected: ',', or identifier")
        if self.take()[0] != ")":
            raise SelectorError(f"found '{lit}', expected: ')'")
        return frozenset(found)

    def exact_value(self) -> frozenset[str]:
        if self.peek()[0] in (_END, ","):
            return frozenset([""])
        tok, lit = self.take()
        if tok == _IDENT:
            return frozenset([lit])
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    requirements = _Parser(text).parse()
    return lambda labels: all(r.matches(labels) for r in requirements)


def parse_field_selector(
    text: str, supported: tuple[str, ...] | None = None
) -> Callable[[Mapping[str, str]], bool]:
    """Field selectors; supported=None only checks the syntax (as clients do)."""
    checks: list[tuple[str, bool, str]] = []
    for part in text.split(",") if text.strip() else []:
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.groups()
        if supported is not None and field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        checks.append((field, op != "!=", value))
    return lambda fields: all((fields.get(f, "") == v) == eq for f, eq, v in checks)
