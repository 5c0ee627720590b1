"""`kubectl top` output, byte for byte (kubectl pkg/metricsutil/metrics_printer.go).

CpuMemory is printed as CPU MilliValue (rounded up) with "m" and memory Value / 2^20 with
"Mi"; percentages are int64(used milli / available milli * 100), truncated. Rows are
sorted by name (pods by namespace then name with -A), or by usage, descending, with
--sort-by (Go's sort.Sort is not stable; kubepulse keeps equal rows in name order).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kubepulse.quantity import parse_quantity
from kubepulse.top import tabwriter

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
class CpuMemory:
    cpu_milli: int
    memory_bytes: int

    @classmethod
    def of(cls, usage: Mapping[str, str]) -> CpuMemory:
        return cls(milli(usage.get("cpu", "0")), value(usage.get("memory", "0")))

    def __add__(self, other: CpuMemory) -> CpuMemory:
        return CpuMemory(self.cpu_milli + other.cpu_milli, self.memory_bytes + other.memory_bytes)


def sort_by_usage(rows: list[T], sort_by: str, usage: Callable[[T], CpuMemory]) -> None:
    """kubectl's --sort-by: cpu or memory, largest first; rows stay in name order else."""
    if sort_by == "cpu":
        rows.sort(key=lambda row: -usage(row).cpu_milli)
    elif sort_by == "memory":
        rows.sort(key=lambda row: -usage(row).memory_bytes)


def node_usage(m: Mapping[str, Any]) -> CpuMemory:
    return CpuMemory.of(m["usage"])


def container_usage(c: Mapping[str, Any]) -> CpuMemory:
    return CpuMemory.of(c.get("usage") or {})


def cpu_text(u: CpuMemory) -> str:
    return f"{u.cpu_milli}m"


def memory_text(u: CpuMemory) -> str:
    return f"{u.memory_bytes // (1024 * 1024)}Mi"


def percent(used_milli: int, available_milli: int) -> str:
    fraction = used_milli / available_milli * 100 if available_milli else 0.0
    return f"{int(fraction)}%"


def tab_row(*values: object) -> str:
    """One line for tabwriter: each cell ends in a tab, as kubectl's printer writes it."""
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
    lines = [] if no_headers else [tab_row(*NODE_COLUMNS)]
    for name, used in node_rows(metrics, available, sort_by):
        if used is None:
            lines.append(tab_row(name, *([UNKNOWN] * 4)))
            continue
        cells = [name, cpu_text(used)]
        avail = available.get(name)
        if avail is not None and "cpu" in avail:
            cells.append(percent(used.cpu_milli, milli(avail["cpu"])))
        cells.append(memory_text(used))
        if avail is not None and "memory" in avail:
            cells.append(percent(used.memory_bytes * 1000, milli(avail["memory"])))
        lines.append(tab_row(*cells))
    return tabwriter.render("\n".join(lines) + "\n")


def node_rows(
    metrics: Sequence[Mapping[str, Any]], known: Iterable[str], sort_by: str
) -> list[tuple[str, CpuMemory | None]]:
    """Each node's name and usage in kubectl's order: the nodes with metrics by name (or
    by usage), then the nodes the API knows without metrics, with None for their usage
    (kubectl prints them as <unknown> rows, walking a Go map: any order; here, by name)."""
    rows = sorted(metrics, key=lambda m: m["metadata"]["name"])
    sort_by_usage(rows, sort_by, node_usage)
    measured = {m["metadata"]["name"] for m in rows}
    missing = sorted(set(known) - measured)
    return [(m["metadata"]["name"], node_usage(m)) for m in rows] + [(n, None) for n in missing]


def pod_usage(pod: Mapping[str, Any]) -> CpuMemory:
    total = CpuMemory(0, 0)
    for c in pod.get("containers") or []:
        total = total + CpuMemory.of(c.get("usage") or {})
    return total


def total_usage(rows: Iterable[Mapping[str, Any]]) -> CpuMemory:
    return sum((pod_usage(m) for m in rows), CpuMemory(0, 0))


def pod_rows(
    metrics: Sequence[Mapping[str, Any]], with_namespace: bool, sort_by: str
) -> list[Mapping[str, Any]]:
    """PodMetrics in kubectl's order: by name (namespace first with -A), or by usage."""
    rows = sorted(
        metrics,
        key=lambda m: (
            m["metadata"].get("namespace", "") if with_namespace else "",
            m["metadata"]["name"],
        ),
    )
    sort_by_usage(rows, sort_by, pod_usage)
    return rows


def container_rows(m: Mapping[str, Any], sort_by: str) -> list[Mapping[str, Any]]:
    """A PodMetrics' containers in kubectl's order: by name, or by usage."""
    items = sorted(m.get("containers") or [], key=lambda c: c["name"])
    sort_by_usage(items, sort_by, container_usage)
    return items


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
    rows = pod_rows(metrics, with_namespace, sort_by)
    lines: list[str] = []
    if not no_headers:
        lines.append(
            tab_row(
                *(["NAMESPACE"] if with_namespace else []),
                *(["POD"] if containers else []),
                *POD_COLUMNS,
            )
        )
    for m in rows:
        meta = m["metadata"]
        prefix = [meta.get("namespace", "")] if with_namespace else []
        if containers:
            for c in container_rows(m, sort_by):
                used = CpuMemory.of(c.get("usage") or {})
                lines.append(
                    tab_row(*prefix, meta["name"], c["name"], cpu_text(used), memory_text(used))
                )
        else:
            used = pod_usage(m)
            lines.append(tab_row(*prefix, meta["name"], cpu_text(used), memory_text(used)))
    if total:
        # kubectl (metricsutil.PrintPodMetrics) widens the sum's indent only for the
        # header cells it printed: under --no-headers the sum sits one cell in.
        width = len(POD_COLUMNS)
        if not no_headers:
            width += int(with_namespace) + int(containers)
        summed = total_usage(rows)
        lines.append(tab_row(*([""] * (width - 2)), "________", "________"))
        lines.append(tab_row(*([""] * (width - 3)), "", cpu_text(summed), memory_text(summed)))
    return tabwriter.render("\n".join(lines) + "\n")
