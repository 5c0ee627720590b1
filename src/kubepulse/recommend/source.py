"""Where the usage comes from: the history file (read-only), or a Prometheus.

Both answer the same two questions: which pods' containers have history, and the
points of some of them over the window, at the finest step that covers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from kubepulse.history.prometheus import PrometheusHistory
from kubepulse.history.read import HistoryPoint
from kubepulse.history.snapshot import HistorySnapshot

ContainerKey = tuple[str, str, str]
"""(namespace, pod, container)."""

PROMETHEUS_MAX_POINTS = 10_000
"""Prometheus refuses a range query of more than 11,000 points a series."""
PROMETHEUS_MIN_STEP = 60.0


class UsageSource(Protocol):
    step: float
    """Seconds each point stands for (set once the window is known)."""

    async def containers(self, start: float, end: float) -> list[ContainerKey]: ...

    async def points(
        self, keys: Sequence[ContainerKey], start: float, end: float
    ) -> dict[ContainerKey, list[HistoryPoint]]: ...

    async def close(self) -> None: ...


def finest_reaching(widths: dict[int, float], start: float) -> int:
    """The tier to read a window from: the finest that holds all of it that the file
    holds. Every tier receives every sample and the finer ones forget sooner, so a tier
    is complete from its oldest chunk on; a coarse chunk starts at its bucket's start,
    up to one bucket before its first sample, hence the coarsest width of leeway."""
    leeway = max(widths)
    needed = max(start, min(widths.values()))
    return min(w for w, oldest in widths.items() if oldest <= needed + leeway)


class FileUsage:
    """The SQLite history of `up`, `server` or `dashboard`, read beside its writer."""

    def __init__(self, path: Path) -> None:
        self.snapshot = HistorySnapshot(path)
        self.step = 0.0
        self._ids: dict[ContainerKey, int] = {}
        self._width = 0

    def newest(self) -> float | None:
        return self.snapshot.newest()

    async def containers(self, start: float, end: float) -> list[ContainerKey]:
        def read() -> list[ContainerKey]:
            widths = self.snapshot.widths()
            if widths:
                self._width = finest_reaching(widths, start)
            self._ids = {(ns, pod, c): sid for sid, ns, pod, c in self.snapshot.containers()}
            return sorted(self._ids)

        found = await asyncio.to_thread(read)
        # The raw tier: each sample its own point (a step of 1 ms never joins two).
        self.step = float(self._width) if self._width else 0.001
        return found

    async def points(
        self, keys: Sequence[ContainerKey], start: float, end: float
    ) -> dict[ContainerKey, list[HistoryPoint]]:
        def read() -> dict[ContainerKey, list[HistoryPoint]]:
            # Steps are aligned to the epoch (History.query's rule): the first may start
            # before the window; its points are left out, not counted as the window's.
            return {
                key: [
                    p
                    for p in self.snapshot.points(
                        self._ids[key], self._width, start, end, self.step
                    )
                    if p.timestamp >= start
                ]
                for key in keys
                if key in self._ids
            }

        return await asyncio.to_thread(read)

    async def close(self) -> None:
        self.snapshot.close()


class PrometheusUsage:
    """A Prometheus scraping kubepulse's /metrics/usage (history/prometheus.py)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.prometheus = PrometheusHistory(url, timeout=timeout)
        self.step = PROMETHEUS_MIN_STEP

    async def containers(self, start: float, end: float) -> list[ContainerKey]:
        self.step = max(PROMETHEUS_MIN_STEP, float(int((end - start) / PROMETHEUS_MAX_POINTS) + 1))
        pods = await self.prometheus.pods(start, end)
        found = await asyncio.gather(
            *(self.prometheus.containers(ns, pod, start, end) for ns, pod in pods)
        )
        return sorted(
            (ns, pod, c) for (ns, pod), names in zip(pods, found, strict=True) for c in names
        )

    async def points(
        self, keys: Sequence[ContainerKey], start: float, end: float
    ) -> dict[ContainerKey, list[HistoryPoint]]:
        found = await asyncio.gather(
            *(
                self.prometheus.series("container", ns, pod, c, start, end, self.step)
                for ns, pod, c in keys
            )
        )
        return dict(zip(keys, found, strict=True))

    async def close(self) -> None:
        await self.prometheus.close()
