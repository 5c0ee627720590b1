"""A finding: one check's verdict on one subject, with what was seen and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    """A short machine word: api, metrics-api, address, dns, port, certificate, csr, ..."""
    subject: str
    """What was checked: "cluster", "metrics.k8s.io", "node/NAME"."""
    status: Status
    what: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ok(check: str, subject: str, what: str) -> Finding:
    return Finding(check, subject, "ok", what)


def warn(check: str, subject: str, what: str, fix: str) -> Finding:
    return Finding(check, subject, "warn", what, fix)


def fail(check: str, subject: str, what: str, fix: str) -> Finding:
    return Finding(check, subject, "fail", what, fix)


def failed(findings: list[Finding]) -> bool:
    return any(f.status == "fail" for f in findings)
