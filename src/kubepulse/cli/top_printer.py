"""`kubectl top` output, byte for byte (kubectl pkg/metricsutil/metrics_printer.go).

Usage is printed as CPU MilliValue (rounded up) with "m" and memory Value / 2^20 with
"Mi"; percentages are int64(used milli / available milli * 100), truncated. Rows are
sorted by name (pods by namespace then name with -A), or by usage, descending, with
--sort-by (Go's sort.Sort is not stable; kubepulse keeps equal rows in name order).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kubepulse.cli import tabwriter
from kubepulse.quantity import parse_quantity

NODE_COLUMNS = ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
POD_COLUMNS = ["NAME", "CPU(cores)", "MEMORY(bytes)"]
UNKNOWN = "<unknown>"
T = TypeVar("T")


def milli(quantity: str) -> int:
    """resource.Quantity.MilliValue(): ceil(q * 1000)."""
    return math.ceil(round(parse_quantity(quantity) * 1000, 6))


def value(quantity: str) -> int:
    """resource.Quantity.Value(): q rounded up to an integer."""
    return math.ceil(round(parse_quantity(quantity), 6))


@dataclass(frozen=True)
class Usage:
    cpu_milli: int
    memory_bytes: int

    @classmethod
    def of(cls, usage: Mapping[str, str]) -> Usage:
        return cls(milli(usage.get("cpu", "0")), value(usage.get("memory", "0")))

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_milli + other.cpu_milli, self.memory_bytes + other.memory_bytes)


def sort_by_usage(rows: list[T], sort_by: str, usage: Callable[[T], Usage]) -> None:
    """kubectl's --sort-by: cpu or memory, largest first; rows stay in name order else."""
    if sort_by == "cpu":
        rows.sort(key=lambda row: -usage(row).cpu_milli)
    elif sort_by == "memory":
        rows.sort(key=lambda row: -usage(row).memory_bytes)


def node_usage(m: Mapping[str, Any]) -> Usage:
    return Usage.of(m["usage"])


def container_usage(c: Mapping[str, Any]) -> Usage:
    return Usage.of(c.get("usage") or {})


def cpu_text(u: Usage) -> str:
    return f"{u.cpu_milli}m"


def memory_text(u: Usage) -> str:
    return f"{u.memory_bytes // (1024 * 1024)}Mi"


def percent(used_milli: int, available_milli: int) -> str:
    fraction = used_milli / available_milli * 100 if available_milli else 0.0
    return f"{int(fraction)}%"


def _cells(*values: object) -> str:
    return "".join(f"{v}\t" for v in values)


def nodes(
    metrics: Sequence[Mapping[str, Any]],
    available: Mapping[str, Mapping[str, str]],
    no_headers: bool,
    sort_by: str,
) -> str:
    """NodeMetrics items and each node's allocatable (or capacity) by name."""
    if not metrics:
        return ""
    rows = sorted(metrics, key=lambda m: m["metadata"]["name"])
    sort_by_usage(rows, sort_by, node_usage)
    lines = [] if no_headers else [_cells(*NODE_COLUMNS)]
    remaining = dict(available)
    for m in rows:
        name = m["metadata"]["name"]
        used = Usage.of(m["usage"])
        cells = [name, cpu_text(used)]
        avail = remaining.pop(name, None)
        if avail is not None and "cpu" in avail:
            cells.append(percent(used.cpu_milli, milli(avail["cpu"])))
        cells.append(memory_text(used))
        if avail is not None and "memory" in avail:
            cells.append(percent(used.memory_bytes * 1000, milli(avail["memory"])))
        lines.append(_cells(*cells))
    # Nodes known to the API without metrics (kubectl walks a Go map: any order).
    for name in sorted(remaining):
        lines.append(_cells(name, *([UNKNOWN] * 4)))
    return tabwriter.render("\n".join(lines) + "\n")


def pod_usage(pod: Mapping[str, Any]) -> Usage:
    total = Usage(0, 0)
    for c in pod.get("containers") or []:
        total = total + Usage.of(c.get("usage") or {})
    return total


def pods(
    metrics: Sequence[Mapping[str, Any]],
    containers: bool,
    with_namespace: bool,
    no_headers: bool,
    sort_by: str,
    total: bool,
) -> str:
    if not metrics:
        return ""
    rows = sorted(
        metrics,
        key=lambda m: (
            m["metadata"].get("namespace", "") if with_namespace else "",
            m["metadata"]["name"],
        ),
    )
    sort_by_usage(rows, sort_by, pod_usage)
    lines: list[str] = []
    if not no_headers:
        lines.append(
            _cells(
                *(["NAMESPACE"] if with_namespace else []),
                *(["POD"] if containers else []),
                *POD_COLUMNS,
            )
        )
    for m in rows:
        meta = m["metadata"]
        prefix = [meta.get("namespace", "")] if with_namespace else []
        if containers:
            items = sorted(m.get("containers") or [], key=lambda c: c["name"])
            sort_by_usage(items, sort_by, container_usage)
            for c in items:
                used = Usage.of(c.get("usage") or {})
                lines.append(
                    _cells(*prefix, meta["name"], c["name"], cpu_text(used), memory_text(used))
                )
        else:
            used = pod_usage(m)
            lines.append(_cells(*prefix, meta["name"], cpu_text(used), memory_text(used)))
    if total:
        # kubectl (metricsutil.PrintPodMetrics) widens the sum's indent only for the
        # header cells it printed: under --no-headers the sum sits one cell in.
        width = len(POD_COLUMNS)
        if not no_headers:
            width += int(with_namespace) + int(containers)
        summed = Usage(0, 0)
        for m in rows:
            summed = summed + pod_usage(m)
        lines.append(_cells(*([""] * (width - 2)), "________", "________"))
        lines.append(_cells(*([""] * (width - 3)), "", cpu_text(summed), memory_text(summed)))
    return tabwriter.render("\n".join(lines) + "\n")
