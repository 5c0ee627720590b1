"""Reading the history: one series over a range, the top series at a moment, totals.

Plain functions of a read connection, so that the dashboard can run them on any thread
(WAL: readers never wait for the writer, nor the writer for them).
"""

from __future__ import annotations

import heapq
import sqlite3
from typing import Literal, NamedTuple

from kubepulse.store import history_db
from kubepulse.store.tiers import Tier

Kind = Literal["node", "pod", "container", "namespace"]
Resource = Literal["cpu", "memory"]
KINDS: tuple[Kind, ...] = ("node", "pod", "container", "namespace")


class HistoryPoint(NamedTuple):
    """One step of a series: the average and maximum over [timestamp, timestamp + step)."""

    timestamp: float
    cpu_nanocores: float
    memory_bytes: float
    cpu_max: float
    memory_max: float


class Latest(NamedTuple):
    """A series' newest value at or before a moment."""

    namespace: str
    name: str
    container: str
    timestamp: float
    cpu_nanocores: float
    memory_bytes: float


def pick_tier(tiers: tuple[Tier, ...], newest_ms: int, start: float, step: float) -> Tier:
    """The tier to answer a range from.

    Among the tiers whose retention still reaches `start`, the coarsest one whose buckets
    are no wider than the step (fewer rows read for the same answer); failing that the
    finest one that reaches; and when none does, the longest history there is.
    """
    reaching = [t for t in tiers if start * 1000 >= newest_ms - t.retention * 1000]
    if not reaching:
        return max(tiers, key=lambda t: t.retention)
    fitting = [t for t in reaching if t.width <= step]
    return max(fitting, key=lambda t: t.width) if fitting else reaching[0]


def _values(tier: Tier) -> tuple[str, str, str, str]:
    """SQL for (cpu average, cpu max, memory average, memory max) over grouped rows."""
    if tier.width == 0:
        return "avg(cpu)", "max(cpu)", "avg(mem)", "max(mem)"
    return (
        "sum(cpu_sum) * 1.0 / sum(n)",
        "max(cpu_max)",
        "sum(mem_sum) * 1.0 / sum(n)",
        "max(mem_max)",
    )


def series_id(
    conn: sqlite3.Connection, kind: str, namespace: str, name: str, container: str
) -> int | None:
    row = conn.execute(
        "SELECT id FROM series WHERE kind = ? AND namespace = ? AND name = ? AND container = ?",
        (kind, namespace, name, container),
    ).fetchone()
    return int(row[0]) if row else None


def query(
    conn: sqlite3.Connection,
    tiers: tuple[Tier, ...],
    key: tuple[str, str, str, str],
    start: float,
    end: float,
    step: float,
) -> list[HistoryPoint]:
    """Points of one series in [start, end], one per step that holds data, oldest first.

    Steps are aligned to multiples of `step` since the epoch, so that the same step always
    buckets the same way, whatever the range.
    """
    if step <= 0:
        raise ValueError("step must be positive")
    sid = series_id(conn, *key)
    if sid is None or end < start:
        return []
    tier = pick_tier(tiers, history_db.newest_ms(conn) or 0, start, step)
    step_ms = max(1, round(step * 1000))
    lo = int(start * 1000) // step_ms * step_ms
    cpu, cpu_max, mem, mem_max = _values(tier)
    hi = int(end * 1000)
    # One seek per chunk (history_db's layout): the chunks listed by a recursive CTE.
    rows = conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ?)"
        f" SELECT ts - ts % ? AS b, {cpu}, {cpu_max}, {mem}, {mem_max}"
        f" FROM c JOIN {tier.table} ON chunk = c.x AND series_id = ? AND ts >= ? AND ts <= ?"
        " GROUP BY b ORDER BY b",
        (lo // tier.chunk_ms, hi // tier.chunk_ms, step_ms, sid, lo, hi),
    )
    return [HistoryPoint(b / 1000, c, m, cm, mm) for b, c, cm, m, mm in rows]


def latest(
    conn: sqlite3.Connection,
    tiers: tuple[Tier, ...],
    kind: str,
    at: float | None = None,
    window: float | None = None,
) -> list[Latest]:
    """Every series of a kind at `at` (default: the newest sample): its last row in
    (at - window, at], from the finest tier that still holds `at`.

    The window defaults to 60 s for raw samples and two buckets otherwise (the bucket that
    holds `at` may still be open in the writer's memory).
    """
    newest = history_db.newest_ms(conn)
    if newest is None:
        return []
    at_ms = newest if at is None else int(at * 1000)
    tier = pick_tier(tiers, newest, at_ms / 1000, 0)
    if window is None:
        window = 60.0 if tier.width == 0 else 2.0 * tier.width
    cpu, _, mem, _ = _values(tier)
    table = tier.table
    lo = at_ms - int(window * 1000)
    chunks = ", ".join(str(c) for c in range(lo // tier.chunk_ms, at_ms // tier.chunk_ms + 1))
    # One seek per series and chunk for its newest row in the window (history_db).
    rows = conn.execute(
        f"SELECT s.namespace, s.name, s.container, t.ts, {cpu}, {mem}"
        f" FROM series s JOIN {table} t ON t.chunk IN ({chunks}) AND t.series_id = s.id"
        f" AND t.ts = (SELECT max(ts) FROM {table} WHERE chunk IN ({chunks})"
        " AND series_id = s.id AND ts > ? AND ts <= ?)"
        " WHERE s.kind = ? GROUP BY s.id",
        (lo, at_ms, kind),
    )
    return [Latest(ns, name, c, ts / 1000, cv, mv) for ns, name, c, ts, cv, mv in rows]


def top(
    conn: sqlite3.Connection,
    tiers: tuple[Tier, ...],
    kind: str,
    resource: Resource,
    at: float | None = None,
    limit: int = 10,
) -> list[Latest]:
    """The `limit` series of a kind using the most CPU or memory at `at`, highest first."""
    if resource not in ("cpu", "memory"):
        raise ValueError(f"resource must be cpu or memory, not {resource!r}")
    field = 4 if resource == "cpu" else 5
    rows = latest(conn, tiers, kind, at)
    return heapq.nlargest(limit, rows, key=lambda r: (r[field], r.namespace, r.name))


def namespaces_totals(
    conn: sqlite3.Connection, tiers: tuple[Tier, ...], at: float | None = None
) -> dict[str, Latest]:
    """Each namespace's summed CPU and memory at `at`, by namespace name."""
    return {r.namespace: r for r in latest(conn, tiers, "namespace", at)}


class HistoryStats(NamedTuple):
    rows: dict[str, int]
    """Rows per tier, by tier label (raw, 1m, 15m)."""
    series: int
    db_bytes: int
    """page_count x page_size of the main file."""
    wal_bytes: int
    max_bytes: int | None
    dropped_rows: int
    """Samples dropped because the writer's queue was full (the disk could not keep up)."""
    failed_rows: int
    """Samples lost because a write failed (disk full, locked by another process)."""
    trimmed_rows: int
    """Rows deleted to stay under max_bytes."""
    newest: float | None


def counts(conn: sqlite3.Connection, tiers: tuple[Tier, ...]) -> tuple[dict[str, int], int]:
    """Rows per tier and the number of series (full counts: cheap at a scrape's scale)."""
    rows = {
        t.label: int(conn.execute(f"SELECT count(*) FROM {t.table}").fetchone()[0]) for t in tiers
    }
    series = int(conn.execute("SELECT count(*) FROM series").fetchone()[0])
    return rows, series
