"""Where the dashboard reads history from: one small interface, two stores.

The dashboard asks for one series over a range and gets HistoryPoints, whether the
points live in the embedded SQLite file (SqliteSeries) or in a Prometheus that scrapes
kubepulse's exposition (prometheus.PrometheusHistory, `--prometheus-url`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from kubepulse.history.file import History
from kubepulse.history.read import HistoryPoint

__all__ = ["HistoryPoint", "SeriesError", "SeriesSource", "SqliteSeries"]


class SeriesError(Exception):
    """A source that could not answer (Prometheus refused a query, or is unreachable):
    what the dashboard tells the user instead of a chart."""


class SeriesSource(Protocol):
    async def series(
        self,
        kind: str,
        namespace: str,
        name: str,
        container: str,
        start: float,
        end: float,
        step: float,
    ) -> list[HistoryPoint]:
        """Points of one series in [start, end], one per step that holds data, oldest first."""
        ...

    async def node_series(
        self, names: Sequence[str], start: float, end: float, step: float
    ) -> dict[str, list[HistoryPoint]]:
        """series() of each of these nodes, asked at once."""
        ...

    async def pods(self, start: float, end: float) -> dict[tuple[str, str], float | None]:
        """Pods with history in [start, end]: (namespace, name) -> when last seen (None
        where the source cannot say)."""
        ...

    async def containers(self, namespace: str, pod: str, start: float, end: float) -> list[str]:
        """The names of a pod's containers that have history in [start, end] (a pod that
        has ended keeps its page from them), sorted."""
        ...


class SqliteSeries:
    """History.query run on a thread, so SQLite never blocks the event loop."""

    def __init__(self, history: History) -> None:
        self.history = history

    async def series(
        self,
        kind: str,
        namespace: str,
        name: str,
        container: str,
        start: float,
        end: float,
        step: float,
    ) -> list[HistoryPoint]:
        return await asyncio.to_thread(
            self.history.query, kind, namespace, name, container, start, end, step
        )

    async def node_series(
        self, names: Sequence[str], start: float, end: float, step: float
    ) -> dict[str, list[HistoryPoint]]:
        """One thread hop for all of them, not one a node."""

        def query() -> dict[str, list[HistoryPoint]]:
            return {n: self.history.query("node", "", n, "", start, end, step) for n in names}

        return await asyncio.to_thread(query)

    async def pods(self, start: float, end: float) -> dict[tuple[str, str], float | None]:
        return dict(await asyncio.to_thread(self.history.pods_since, start))

    async def containers(self, namespace: str, pod: str, start: float, end: float) -> list[str]:
        return await asyncio.to_thread(self.history.containers_of, namespace, pod, start)
