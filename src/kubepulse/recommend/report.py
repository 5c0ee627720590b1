"""The rows as a table (kubectl's tabwriter), -o wide, JSON or YAML, with totals per
namespace of the CPU and memory the recommendations free (or need)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import IO, Any

import orjson
import yaml

from kubepulse.kube.local import cpu_quantity
from kubepulse.quantity import format_bytes
from kubepulse.recommend.rows import ContainerRow, Values
from kubepulse.recommend.settings import Settings
from kubepulse.recommend.usage import MI
from kubepulse.timefmt import human_duration, rfc3339
from kubepulse.top.printer import tab_row
from kubepulse.top.tabwriter import render, write_lines

UNKNOWN, UNSET = "?", "-"


def cpu_text(millicores: float | None) -> str:
    if millicores is None:
        return UNSET
    if math.isinf(millicores):
        return "inf"
    return cpu_quantity(math.ceil(millicores - 1e-9))


def memory_text(count: float | None) -> str:
    if count is None:
        return UNSET
    if math.isinf(count):
        return "inf"
    whole = round(count)
    if whole % MI == 0 or whole < MI:
        return format_bytes(whole)
    return f"{whole / MI:.1f}Mi"


def _signed(value: int | None, text: str) -> str:
    if value is None:
        return UNKNOWN
    return f"+{text}" if value > 0 else ("-" + text if value < 0 else "0")


def cpu_change_text(value: int | None) -> str:
    return _signed(value, cpu_text(abs(value)) if value is not None else "")


def memory_change_text(value: int | None) -> str:
    return _signed(value, memory_text(abs(value)) if value is not None else "")


def _pair(current: Values | None, recommended: Values | None, name: str, fmt: Any) -> str:
    now = UNKNOWN if current is None else fmt(getattr(current, name))
    new = UNKNOWN if recommended is None else fmt(getattr(recommended, name))
    return f"{now} -> {new}"


def note(row: ContainerRow) -> str:
    notes = []
    if row.recommendation.reason:
        notes.append(row.recommendation.reason)
    if row.oom_killed:
        notes.append("OOMKilled: memory not lowered")
    share = row.pressure.throttled_share
    if row.cpu_throttled and share is not None:
        notes.append(f"CPU throttled {share:.0%} of periods: CPU not lowered")
    return "; ".join(notes)


HEADER = (
    "NAMESPACE",
    "WORKLOAD",
    "CONTAINER",
    "PODS",
    "CPU REQUEST",
    "CPU LIMIT",
    "MEMORY REQUEST",
    "MEMORY LIMIT",
    "CPU CHANGE",
    "MEMORY CHANGE",
)
WIDE = (
    "CPU P50",
    "CPU P90",
    "CPU P95",
    "CPU P99",
    "CPU MAX",
    "MEMORY MAX",
    "POINTS",
    "WINDOW",
    "STEP",
)


def _row(row: ContainerRow, wide: bool) -> list[str]:
    cur, new = row.current, row.recommended
    cells = [
        row.workload.namespace,
        row.workload.shown,
        row.container,
        str(row.pods),
        _pair(cur, new, "cpu_request", cpu_text),
        _pair(cur, new, "cpu_limit", cpu_text),
        _pair(cur, new, "memory_request", memory_text),
        _pair(cur, new, "memory_limit", memory_text),
        cpu_change_text(row.cpu_change),
        memory_change_text(row.memory_change),
    ]
    if wide:
        rec = row.recommendation
        shown = rec.cpu_percentiles_millicores
        cells += [cpu_text(shown[q]) if q in shown else UNSET for q in ("p50", "p90", "p95", "p99")]
        enough = rec.enough_data
        cells += [
            cpu_text(rec.usage.cpu_max_millicores) if enough else UNSET,
            memory_text(rec.usage.memory_max_bytes) if enough else UNSET,
            str(rec.usage.points),
            human_duration(rec.usage.window_seconds) if enough else UNSET,
            human_duration(rec.usage.step_seconds) if rec.usage.step_seconds >= 1 else "raw",
        ]
    return [*cells, note(row)]


def totals(rows: Sequence[ContainerRow]) -> dict[str, tuple[int, int]]:
    """Per namespace: millicores and bytes of requests freed (negative: needed), over the
    pods running now."""
    found: dict[str, tuple[int, int]] = {}
    for row in rows:
        cpu, memory = row.cpu_change, row.memory_change
        if cpu is None and memory is None:
            continue
        before = found.get(row.workload.namespace, (0, 0))
        found[row.workload.namespace] = (
            before[0] - (cpu or 0) * row.replicas,
            before[1] - (memory or 0) * row.replicas,
        )
    return found


def _freed(value: int, fmt: Any) -> str:
    if value == 0:
        return "0"
    return f"{fmt(abs(value))} {'freed' if value > 0 else 'needed'}"


def write_table(rows: Sequence[ContainerRow], wide: bool, out: IO[str]) -> None:
    """The table kubectl's tabwriter would print, a line at a time (a cell list per
    row is not kept for 150,000 rows), then the totals."""
    if not rows:
        return
    header = [*HEADER, *(WIDE if wide else ()), "NOTE"]
    write_lines([tab_row(*header)] + [tab_row(*_row(r, wide)) for r in rows], out)
    sums = totals(rows)
    if sums:
        summary = [tab_row("NAMESPACE", "CPU REQUESTS", "MEMORY REQUESTS")] + [
            tab_row(ns, _freed(cpu, cpu_text), _freed(memory, memory_text))
            for ns, (cpu, memory) in sorted(sums.items())
        ]
        out.write("\n" + render("\n".join(summary) + "\n"))


def table(rows: Sequence[ContainerRow], wide: bool) -> str:
    text = io.StringIO()
    write_table(rows, wide, text)
    return text.getvalue()


def _values(values: Values | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {
        "requests": {
            "cpu": cpu_text(values.cpu_request),
            "memory": memory_text(values.memory_request),
        },
        "limits": {"cpu": cpu_text(values.cpu_limit), "memory": memory_text(values.memory_limit)},
        "cpuRequestMillicores": values.cpu_request,
        "cpuLimitMillicores": values.cpu_limit,
        "memoryRequestBytes": values.memory_request,
        "memoryLimitBytes": values.memory_limit,
    }


def _bounds(bounds: tuple[float, float] | None) -> list[float | None] | None:
    if bounds is None:
        return None
    return [None if math.isinf(b) else b for b in bounds]


def item(row: ContainerRow) -> dict[str, Any]:
    rec = row.recommendation
    return {
        "namespace": row.workload.namespace,
        "workload": {
            "apiVersion": row.workload.api_version,
            "kind": row.workload.kind,
            "name": row.workload.name,
        },
        "container": row.container,
        "pods": row.pods,
        "replicas": row.replicas,
        "current": _values(row.current),
        "recommended": _values(row.recommended),
        "cpuChangeMillicores": row.cpu_change,
        "memoryChangeBytes": row.memory_change,
        "oomKilled": row.oom_killed,
        "oomEvents": row.pressure.oom_events,
        "cpuThrottled": row.cpu_throttled,
        "cpuThrottledShare": row.pressure.throttled_share,
        "reason": rec.reason,
        "usage": {
            "points": rec.usage.points,
            "stepSeconds": rec.usage.step_seconds,
            "start": rfc3339(rec.usage.first) if rec.usage.first is not None else None,
            "end": rfc3339(rec.usage.last + rec.usage.step_seconds)
            if rec.usage.last is not None
            else None,
            "cpuPercentilesMillicores": rec.cpu_percentiles_millicores,
            "cpuMaxMillicores": rec.usage.cpu_max_millicores,
            "memoryMaxBytes": rec.usage.memory_max_bytes,
            "cpuBoundsMillicores": _bounds(rec.cpu_bounds_millicores),
            "memoryBoundsBytes": _bounds(rec.memory_bounds_bytes),
        },
    }


def document(
    rows: Sequence[ContainerRow], settings: Settings, items: bool = True
) -> dict[str, Any]:
    """The RecommendationList; without its items (an empty list) for write_json."""
    return {
        "apiVersion": "kubepulse.io/v1alpha1",
        "kind": "RecommendationList",
        "strategy": settings.strategy,
        "settings": {
            "historySeconds": settings.history_seconds,
            "cpuPercentile": settings.cpu_percentile,
            "memoryBufferPercentage": settings.memory_buffer_percentage,
            "pointsRequired": settings.points_required,
        },
        "items": [item(r) for r in rows] if items else [],
        "totals": {
            ns: {"cpuFreedMillicores": cpu, "memoryFreedBytes": memory}
            for ns, (cpu, memory) in sorted(totals(rows).items())
        },
    }


_NO_ITEMS = b'"items": []'


def write_json(rows: Sequence[ContainerRow], settings: Settings, out: IO[bytes]) -> None:
    """document() as JSON, indented by 2 (as `kubepulse doctor -o json`), written an
    item at a time: 150,000 containers' items never sit in memory as one document."""
    outline = orjson.dumps(document(rows, settings, items=False), option=orjson.OPT_INDENT_2)
    head, tail = outline.split(_NO_ITEMS, 1)
    out.write(head)
    if not rows:
        out.write(_NO_ITEMS)
    else:
        out.write(b'"items": [\n')
        for i, row in enumerate(rows):
            text = orjson.dumps(item(row), option=orjson.OPT_INDENT_2)
            out.write(b"    " + text.replace(b"\n", b"\n    "))
            out.write(b",\n" if i < len(rows) - 1 else b"\n  ]")
    out.write(tail + b"\n")


def yaml_text(rows: Sequence[ContainerRow], settings: Settings) -> str:
    return yaml.safe_dump(document(rows, settings), sort_keys=False)
