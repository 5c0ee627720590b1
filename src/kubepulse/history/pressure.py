"""OOM kills and CPU throttling in the history file: how much each container's cAdvisor
counters rose, an hour at a time.

The counters (container_oom_events_total, container_cpu_cfs_periods_total,
container_cpu_cfs_throttled_periods_total) only ever rise while a container lives; a
restarted container is a new cgroup and counts from zero again. So, as Prometheus's
increase() does, what is stored is the sum of the rises between readings, a drop being
a reset (the new value is the rise since it). A node's first reading after start is
only the baseline: what its containers counted before cannot be placed in time. A
container first seen at a later reading of its node was made since the last one, so
all it counts is new. Each container's last counters are kept for FORGET_AFTER_S after
its last reading, not only the node's previous reading: a container missing from one
reading (its cgroup could not be read) is not counted from zero when it is back, which
would count its earlier OOM kills again.

Rows are by series (the usage's own ids) and hour, written only for an hour in which
something rose: a container with no CPU quota and no OOM kill writes none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from kubepulse.model import CgroupCounters, PressureReading

__all__ = [
    "HOUR_MS",
    "PressureBook",
    "create_table",
    "increases",
]

HOUR_MS = 3_600_000

FORGET_AFTER_S = 3600.0
"""A container unseen this long is forgotten (deleted, most likely): its name seen
again later is a new container that counts from zero."""

ContainerKey = tuple[str, str, str]
"""(namespace, pod, container)."""


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS pressure (series_id INTEGER NOT NULL,"
        " hour_ms INTEGER NOT NULL, oom_events INTEGER NOT NULL, periods INTEGER NOT NULL,"
        " throttled_periods INTEGER NOT NULL, PRIMARY KEY (series_id, hour_ms)) WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS pressure_hour ON pressure (hour_ms)")


def _rise(before: CgroupCounters | None, now: CgroupCounters) -> CgroupCounters:
    if before is None:
        return now
    return CgroupCounters(
        *(n - b if n >= b else n for n, b in zip(now, before, strict=True))  # drop: reset
    )


class PressureBook:
    """The writer's side: rises since the last reading, kept until committed."""

    def __init__(self) -> None:
        self._last: dict[str, dict[ContainerKey, tuple[CgroupCounters, float]]] = {}
        """node -> container -> its last counters and when they were read."""
        self.pending: dict[tuple[int, int], list[int]] = {}
        """(series id, hour_ms) -> [oom events, periods, throttled periods] to add."""

    def take(self, reading: PressureReading, series_id: Callable[[ContainerKey], int]) -> None:
        known = self._last.get(reading.node)
        if known is None:  # the baseline
            self._last[reading.node] = {k: (c, reading.at) for k, c in reading.counters.items()}
            return
        hour = int(reading.at * 1000) // HOUR_MS * HOUR_MS
        for key, now in reading.counters.items():
            before = known.get(key)
            known[key] = (now, reading.at)
            rise = _rise(None if before is None else before[0], now)
            if any(rise):
                row = self.pending.setdefault((series_id(key), hour), [0, 0, 0])
                for i, value in enumerate(rise):
                    row[i] += value
        stale = reading.at - FORGET_AFTER_S
        for key in [k for k, (_, at) in known.items() if at < stale]:
            del known[key]

    def write(self, conn: sqlite3.Connection) -> None:
        """Add the pending rises to their rows, inside the caller's transaction."""
        conn.executemany(
            "INSERT INTO pressure VALUES (?, ?, ?, ?, ?) ON CONFLICT (series_id, hour_ms)"
            " DO UPDATE SET oom_events = oom_events + excluded.oom_events,"
            " periods = periods + excluded.periods,"
            " throttled_periods = throttled_periods + excluded.throttled_periods",
            [(sid, hour, *rise) for (sid, hour), rise in self.pending.items()],
        )


def increases(
    conn: sqlite3.Connection, start: float, end: float
) -> dict[ContainerKey, CgroupCounters]:
    """What each container's counters rose by in the hours the window [start, end]
    touches (epoch seconds); empty for a file written before these were recorded."""
    first = int(start * 1000) // HOUR_MS * HOUR_MS
    try:
        rows = conn.execute(
            "SELECT s.namespace, s.name, s.container, sum(p.oom_events), sum(p.periods),"
            " sum(p.throttled_periods) FROM pressure p JOIN series s ON s.id = p.series_id"
            " WHERE p.hour_ms >= ? AND p.hour_ms <= ? GROUP BY p.series_id",
            (first, int(end * 1000)),
        ).fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return {}
        raise
    return {(ns, pod, c): CgroupCounters(oom, per, thr) for ns, pod, c, oom, per, thr in rows}
