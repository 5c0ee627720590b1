"""Label and field selectors with the syntax and errors of apimachinery.

Label selectors (pkg/labels/selector.go): `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x,y)`, `a`, `!a`, joined by commas. Field selectors (pkg/fields): `f=v`,
`f==v`, `f!=v` over the fields each resource supports; anything else is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


class SelectorError(ValueError):
    """Becomes a 400 BadRequest with this message."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # != and notin


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    requirements: list[Requirement] = []
    for part in _split(text) if text.strip() else []:
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            if not values:
                raise SelectorError(
                    f"unable to parse requirement: values for {m.group(2)} must be given"
                )
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ.match(part):
            op = "=" if m.group(2) in ("=", "==") else "!="
            requirements.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS.match(part):
            requirements.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise SelectorError(
                f"unable to parse requirement: found '{part.strip()}', expected: key"
            )
    return lambda labels: all(r.matches(labels) for r in requirements)


def parse_field_selector(
    text: str, supported: tuple[str, ...]
) -> Callable[[Mapping[str, str]], bool]:
    checks: list[tuple[str, bool, str]] = []
    for part in text.split(",") if text.strip() else []:
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.groups()
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        checks.append((field, op != "!=", value))
    return lambda fields: all((fields.get(f, "") == v) == eq for f, eq, v in checks)
