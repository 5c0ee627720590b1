"""The report: one line per finding, grouped by subject, the fix indented below; or JSON."""

from __future__ import annotations

import json
import textwrap
from collections import Counter

from kubepulse.doctor.findings import Finding

MARKS = {"ok": "✓", "warn": "!", "fail": "✗"}
WORDS = {"ok": "OK", "warn": "WARN", "fail": "FAIL"}


def text(findings: list[Finding], unicode: bool = True, width: int = 100) -> str:
    marks = MARKS if unicode else WORDS
    lines: list[str] = []
    subject = None
    for finding in findings:
        if finding.subject != subject:
            subject = finding.subject
            if lines:
                lines.append("")
            lines.append(subject)
        lines.append(f"  {marks[finding.status]} {finding.check}: {finding.what}")
        if finding.fix and finding.status != "ok":
            lines += textwrap.wrap(
                "fix: " + finding.fix,
                width=width,
                initial_indent="      ",
                subsequent_indent="        ",
                break_on_hyphens=False,
                break_long_words=False,
            )
    counts = Counter(f.status for f in findings)
    lines += [
        "",
        f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)",
    ]
    return "\n".join(lines) + "\n"


def as_json(findings: list[Finding]) -> str:
    counts = Counter(f.status for f in findings)
    doc = {
        "ok": counts["fail"] == 0,
        "summary": {"ok": counts["ok"], "warn": counts["warn"], "fail": counts["fail"]},
        "findings": [f.to_json() for f in findings],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
