"""What the live view holds and the lines it shows for a terminal size.

Nothing here touches curses or the clock, so the columns at any width and the
sparkline's time slices are plain functions the tests call with chosen sizes and times.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from kubepulse.top.printer import CpuMemory

WINDOW_MINUTES = 5  # the sparkline's span at the default 2 s interval
SPARK_WIDTH = 16
CPU_WIDTH = 8
MEMORY_WIDTH = 9  # 1Ti is 1048576Mi
NAMESPACE_MIN = 12  # "NAMESPACE" and a sort arrow, with room for kube-system
MI = 1024 * 1024

Style = Literal["title", "notice", "header", "row"]
Line = tuple[str, Style]


@dataclass(frozen=True)
class Glyphs:
    blocks: str  # lowest to highest
    more: str  # ends a cut name


UNICODE = Glyphs("▁▂▃▄▅▆▇█", "…")
ASCII = Glyphs("_.:-=+*#", "~")


def window_seconds(interval: float) -> float:
    """The span of the sparkline: 5 minutes, or longer for slow refreshes.

    Each cell spans at least two refreshes, so one late refresh never leaves a blank cell.
    """
    minutes = max(WINDOW_MINUTES, math.ceil(2 * SPARK_WIDTH * interval / 60))
    return minutes * 60.0


def buckets(
    samples: Iterable[tuple[float, int]], now: float, window: float, width: int
) -> list[int | None]:
    """The highest sample in each of `width` equal slices of the window ending at now.

    A slice without samples (before the first one, or while the server was away) is None,
    so gaps stay visible instead of stretching the samples around them.
    """
    cells: list[int | None] = [None] * width
    start = now - window
    for t, v in samples:
        if start <= t <= now:
            i = min(width - 1, int((t - start) * width / window))
            old = cells[i]
            cells[i] = v if old is None else max(old, v)
    return cells


def sparkline(cells: list[int | None], blocks: str) -> str:
    """One block per cell, scaled to the row's own peak; a blank where there is no sample."""
    peak = max((v for v in cells if v is not None), default=0)
    top = len(blocks) - 1
    return "".join(" " if v is None else blocks[v * top // peak if peak else 0] for v in cells)


@dataclass
class Row:
    namespace: str
    name: str
    usage: CpuMemory
    samples: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic time, CPU m)

    def record(self, now: float, window: float) -> None:
        self.samples.append((now, self.usage.cpu_milli))
        while self.samples[0][0] < now - window:
            self.samples.popleft()


@dataclass
class View:
    kind: str  # node or pod
    interval: float
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    capacity: CpuMemory = field(default_factory=lambda: CpuMemory(0, 0))
    sort: str = "cpu"
    reverse: bool = False
    filter: str = ""
    editing: bool = False
    status: str = "connecting..."
    updated: float = 0.0  # wall clock, for the title
    watching: bool = False  # fed by the metrics API's watch, not polled every interval

    @property
    def window(self) -> float:
        return window_seconds(self.interval)

    def update(
        self, items: list[tuple[str, str, CpuMemory]], capacity: CpuMemory, now: float, wall: float
    ) -> None:
        fresh: dict[tuple[str, str], Row] = {}
        for namespace, name, usage in items:
            key = (namespace, name)
            row = self.rows.get(key) or Row(namespace, name, usage)
            row.usage = usage
            row.record(now, self.window)
            fresh[key] = row
        self.rows, self.capacity, self.updated, self.status = fresh, capacity, wall, ""

    def visible(self) -> list[Row]:
        rows = [r for r in self.rows.values() if self.filter in r.name]
        keys: dict[str, Any] = {
            "cpu": lambda r: (-r.usage.cpu_milli, r.namespace, r.name),
            "memory": lambda r: (-r.usage.memory_bytes, r.namespace, r.name),
            "name": lambda r: (r.name, r.namespace),
            "namespace": lambda r: (r.namespace, r.name),
        }
        rows.sort(key=keys[self.sort])
        return rows[::-1] if self.reverse else rows


@dataclass(frozen=True)
class Columns:
    namespace: int  # 0 in the nodes view, which has none
    name: int

    @classmethod
    def fit(cls, kind: str, width: int) -> Columns:
        """Fixed CPU, memory and history columns; the name takes what is left.

        width - 1: curses cannot write the bottom-right cell, so no line uses the last column.
        """
        rest = width - 1 - (CPU_WIDTH + MEMORY_WIDTH + SPARK_WIDTH + 3)  # 3 separators
        if kind == "node":
            return cls(0, max(NAMESPACE_MIN, rest))
        namespace = max(NAMESPACE_MIN, rest // 4)
        return cls(namespace, max(NAMESPACE_MIN, rest - namespace - 1))

    def line(self, namespace: str, name: str, cpu: str, memory: str, history: str) -> str:
        first = f"{namespace:<{self.namespace}} " if self.namespace else ""
        return f"{first}{name:<{self.name}} {cpu:>{CPU_WIDTH}} {memory:>{MEMORY_WIDTH}} {history}"


def clip(text: str, width: int, more: str) -> str:
    return text if len(text) <= width else text[: width - 1] + more


def mebibytes(n: int) -> str:
    return f"{n // MI}Mi"


def totals(view: View) -> str:
    total = CpuMemory(0, 0)
    for r in view.rows.values():
        total = total + r.usage
    if not view.capacity.cpu_milli:
        return f"CPU {total.cpu_milli}m   MEM {mebibytes(total.memory_bytes)}"
    cpu_pct = total.cpu_milli * 100 // view.capacity.cpu_milli
    mem_pct = total.memory_bytes * 100 // max(1, view.capacity.memory_bytes)
    cpu = f"{total.cpu_milli}m of {view.capacity.cpu_milli}m"
    memory = f"{mebibytes(total.memory_bytes)} of {mebibytes(view.capacity.memory_bytes)}"
    return f"CPU {cpu} ({cpu_pct}%)   MEM {memory} ({mem_pct}%)"


def hint(view: View) -> str:
    if view.editing:
        return f"filter: {view.filter}_  Enter keep  Esc clear"
    if view.filter:
        return f"filter: {view.filter}  Esc clear"
    sorts = "c/m/n" if view.kind == "node" else "c/m/n/s"
    return f"{sorts} sort  / filter  q quit"


def lines(view: View, width: int, height: int, glyphs: Glyphs, now: float) -> list[Line]:
    """The screen, top to bottom: title, totals, status or keys, header, rows."""
    shown = view.visible()
    clock = time.strftime("%H:%M:%S", time.localtime(view.updated)) if view.updated else "--:--:--"
    title = (
        f"kubepulse top {view.kind}s  {len(shown)} of {len(view.rows)} shown  "
        f"{'as scraped' if view.watching else f'every {view.interval:g}s'}  {clock}"
    )
    heads = {"namespace": "NAMESPACE", "name": "NAME", "cpu": "CPU", "memory": "MEMORY"}
    heads[view.sort] += "^" if view.reverse else "v"
    cols = Columns.fit(view.kind, width)
    history = f"CPU {view.window / 60:g}m"
    out: list[Line] = [
        (title, "title"),
        (totals(view), "row"),
        (view.status, "notice") if view.status else (hint(view), "row"),
        (
            cols.line(heads["namespace"], heads["name"], heads["cpu"], heads["memory"], history),
            "header",
        ),
    ]
    for r in shown[: max(0, height - len(out))]:
        cells = buckets(r.samples, now, view.window, SPARK_WIDTH)
        text = cols.line(
            clip(r.namespace, cols.namespace, glyphs.more),
            clip(r.name, cols.name, glyphs.more),
            f"{r.usage.cpu_milli}m",
            mebibytes(r.usage.memory_bytes),
            sparkline(cells, glyphs.blocks),
        )
        out.append((text, "row"))
    return out
