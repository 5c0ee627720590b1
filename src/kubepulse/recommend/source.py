"""Where the usage comes from: the history file (read-only), or a Prometheus.

Both answer the same two questions: which pods' containers have history, and the
points of some of them over the window, at the finest step that covers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from kubepulse.history.prometheus import PrometheusHistory
from kubepulse.history.snapshot import HistorySnapshot
from kubepulse.recommend.pressure import Pressure
from kubepulse.recommend.usage import (
    NO_USAGE,
    PodUsage,
    UsageBlock,
    from_columns,
    from_matrix,
    pod_usage,
)

ContainerKey = tuple[str, str, str]
"""(namespace, pod, container)."""

PROMETHEUS_MAX_POINTS = 10_000
"""Prometheus refuses a range query of more than 11,000 points a series."""
PROMETHEUS_MIN_STEP = 60.0


Each = Callable[[Sequence[ContainerKey], UsageBlock], None]
"""What a source calls with containers' usage in the window: a block of rows, a row
for each key (a node's containers at once where the source can)."""

BATCH = 200
"""Series of the raw tier read at once (a window of minutes; the coarse tiers are read
a node at a time, history.matrix)."""
PROMETHEUS_AT_ONCE = 16


class UsageSource(Protocol):
    step: float
    """Seconds each point stands for (set once the window is known)."""

    async def containers(self, start: float, end: float) -> list[ContainerKey]: ...

    async def read(
        self, keys: Sequence[ContainerKey], start: float, end: float, each: Each
    ) -> None: ...

    async def pressure(
        self, keys: Sequence[ContainerKey], start: float, end: float
    ) -> dict[ContainerKey, Pressure]:
        """OOM kills and CPU throttling of the containers over the window, where the
        source records them."""
        ...

    async def close(self) -> None: ...


def since(usage: PodUsage, start: float) -> PodUsage:
    """Steps are aligned to the epoch (History.query's rule): the first may start before
    the window; its points are left out, not counted as the window's."""
    keep = usage.t >= start
    if keep.all():
        return usage
    return PodUsage(usage.t[keep], usage.cpu_millicores[keep], usage.memory_max_bytes[keep])


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

    async def read(
        self, keys: Sequence[ContainerKey], start: float, end: float, each: Each
    ) -> None:
        key_of = {self._ids[k]: k for k in keys if k in self._ids}

        def read() -> None:
            if self._width:
                self._read_matrices(key_of, start, end, each)
            else:
                self._read_raw(key_of, start, end, each)

        await asyncio.to_thread(read)

    def _read_matrices(
        self, key_of: dict[int, ContainerKey], start: float, end: float, each: Each
    ) -> None:
        unseen = set(key_of)
        for found in self.snapshot.matrices(list(key_of), self._width, start, end):
            sids = found.series.tolist()
            unseen.difference_update(sids)
            each([key_of[sid] for sid in sids], from_matrix(found, start))
        if unseen:
            none = np.zeros((len(unseen), 0))
            each([key_of[sid] for sid in sorted(unseen)], UsageBlock(np.zeros(0), none, none))

    def _read_raw(
        self, key_of: dict[int, ContainerKey], start: float, end: float, each: Each
    ) -> None:
        # A node's series together: each chunk is decoded once for its batch.
        first_layout = self.snapshot.layouts()
        ids = sorted(key_of, key=lambda sid: (first_layout.get(sid, 0), sid))
        for i in range(0, len(ids), BATCH):
            found = self.snapshot.many(ids[i : i + BATCH], self._width, start, end, self.step)
            for sid in ids[i : i + BATCH]:
                columns = found.get(sid)
                usage = since(from_columns(columns), start) if columns is not None else NO_USAGE
                each([key_of[sid]], UsageBlock.of(usage))

    async def pressure(
        self, keys: Sequence[ContainerKey], start: float, end: float
    ) -> dict[ContainerKey, Pressure]:
        # Recorded where the server read the nodes' /metrics/cadvisor
        # (--history-pressure-interval; `up` does); in Kubernetes mode the pods' status
        # says OOMKilled as well.
        found = await asyncio.to_thread(self.snapshot.pressure, start, end)
        wanted = set(keys)
        return {key: Pressure(*counters) for key, counters in found.items() if key in wanted}

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

    async def read(
        self, keys: Sequence[ContainerKey], start: float, end: float, each: Each
    ) -> None:
        for i in range(0, len(keys), PROMETHEUS_AT_ONCE):
            batch = keys[i : i + PROMETHEUS_AT_ONCE]
            found = await asyncio.gather(
                *(
                    self.prometheus.series("container", ns, pod, c, start, end, self.step)
                    for ns, pod, c in batch
                )
            )
            for key, points in zip(batch, found, strict=True):
                each([key], UsageBlock.of(since(pod_usage(points), start)))

    async def pressure(
        self, keys: Sequence[ContainerKey], start: float, end: float
    ) -> dict[ContainerKey, Pressure]:
        """The cAdvisor counters' increase over the window (Prometheus scraping the
        kubelets' /metrics/cadvisor, or kubepulse agents'), by container."""
        window = f"[{max(1, round(end - start))}s]"

        def query(metric: str) -> str:
            return (
                f'sum by (namespace, pod, container) (increase({metric}{{container!=""}}{window}))'
            )

        oom, periods, throttled = await asyncio.gather(
            *(
                self.prometheus.by_container(query(metric), end)
                for metric in (
                    "container_oom_events_total",
                    "container_cpu_cfs_periods_total",
                    "container_cpu_cfs_throttled_periods_total",
                )
            )
        )
        wanted = set(keys)
        return {
            key: Pressure(
                round(oom.get(key, 0.0)),
                round(periods.get(key, 0.0)),
                round(throttled.get(key, 0.0)),
            )
            for key in oom.keys() | periods.keys() | throttled.keys()
            if key in wanted
        }

    async def close(self) -> None:
        await self.prometheus.close()
