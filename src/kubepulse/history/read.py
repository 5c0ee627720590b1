"""Reading the history: one series over a range, the top series at a moment, totals.

Plain functions of a read connection, so that the dashboard can run them on any thread
(WAL: readers never wait for the writer, nor the writer for them).
"""

from __future__ import annotations

import heapq
import sqlite3
from array import array
from typing import Literal, NamedTuple

from kubepulse.history import db as history_db
from kubepulse.history.db import RAW_TABLE
from kubepulse.history.tiers import Tier

Kind = Literal["node", "pod", "container", "namespace"]
Metric = Literal["cpu", "memory"]
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
    hi = int(end * 1000)
    steps: dict[int, list[float]] = {}  # step start -> [n, cpu sum, cpu max, mem sum, mem max]
    for layout, positions in _layouts_of(conn, sid):
        for _, (t, n, cpu_sum, cpu_max, mem_sum, mem_max) in _samples(
            conn, tier, layout, positions, lo, hi
        ):
            b = t - t % step_ms
            acc = steps.get(b)
            if acc is None:
                steps[b] = [n, cpu_sum, cpu_max, mem_sum, mem_max]
                continue
            acc[0] += n
            acc[1] += cpu_sum
            acc[3] += mem_sum
            acc[2] = max(acc[2], cpu_max)
            acc[4] = max(acc[4], mem_max)
    return [
        HistoryPoint(b / 1000, cs / n, ms / n, cm, mm)
        for b, (n, cs, cm, ms, mm) in sorted(steps.items())
    ]


Sample = tuple[int, int, int, int, int, int]
"""(timestamp or bucket start in ms, n, cpu sum, cpu max, memory sum, memory max)."""


def _samples(
    conn: sqlite3.Connection, tier: Tier, layout: int, positions: list[int], lo: int, hi: int
) -> list[tuple[int, Sample]]:
    """The samples (raw tier) or buckets (coarse tier) in [lo, hi] at these positions of a
    layout's rows (history_db), with their position: raw samples as buckets of one."""
    found: list[tuple[int, Sample]] = []
    if tier.width == 0:
        for ts_blob, cpu_blob, mem_blob in conn.execute(
            f"SELECT ts, cpu, mem FROM {RAW_TABLE} WHERE layout = ? AND ts_max >= ?"
            " AND ts_min <= ?",
            (layout, lo, hi),
        ):
            seconds, cpu, mem = array("d"), _ints(cpu_blob), _ints(mem_blob)
            seconds.frombytes(ts_blob)
            for j in positions:
                t = round(seconds[j] * 1000)
                if lo <= t <= hi:  # never a sample that was not new (-1 s)
                    found.append((j, (t, 1, cpu[j], cpu[j], mem[j], mem[j])))
        return found
    for row in conn.execute(
        f"SELECT ts, n, cpu_sum, cpu_max, mem_sum, mem_max FROM {tier.table}"
        " WHERE layout = ? AND ts >= ? AND ts <= ?",
        (layout, lo, hi),
    ):
        t = row[0]
        n, cpu_sum, cpu_max, mem_sum, mem_max = (_ints(blob) for blob in row[1:])
        for j in positions:
            if n[j]:
                found.append((j, (t, n[j], cpu_sum[j], cpu_max[j], mem_sum[j], mem_max[j])))
    return found


def _ints(blob: bytes) -> array[int]:
    values = array("q")
    values.frombytes(blob)
    return values


def _layouts_of(conn: sqlite3.Connection, sid: int) -> list[tuple[int, list[int]]]:
    """(layout, the positions of the series in it) of every raw layout that holds it."""
    found = []
    for layout, blob in conn.execute(
        "SELECT l.id, l.ids FROM layout_series s JOIN layouts l ON l.id = s.layout_id"
        " WHERE s.series_id = ?",
        (sid,),
    ):
        found.append((layout, [j for j, x in enumerate(_ints(blob)) if x == sid]))
    return found


def _latest(conn: sqlite3.Connection, tier: Tier, kind: str, lo: int, at_ms: int) -> list[Latest]:
    """Each series' newest sample or bucket in (lo, at_ms], of one tier."""
    names = {
        sid: (ns, name, container)
        for sid, ns, name, container in conn.execute(
            "SELECT id, namespace, name, container FROM series WHERE kind = ?", (kind,)
        )
    }
    newest: dict[int, list[int]] = {}  # series -> [ts, n, cpu sum, memory sum]
    for layout, blob in conn.execute("SELECT id, ids FROM layouts"):
        ids = _ints(blob)
        positions = [j for j, sid in enumerate(ids) if sid in names]
        if not positions:
            continue
        for j, (t, n, cpu_sum, _, mem_sum, _) in _samples(
            conn, tier, layout, positions, lo + 1, at_ms
        ):
            found = newest.get(ids[j])
            if found is None or t > found[0]:
                newest[ids[j]] = [t, n, cpu_sum, mem_sum]
            elif t == found[0]:  # another part of the same bucket
                found[1] += n
                found[2] += cpu_sum
                found[3] += mem_sum
    return [Latest(*names[sid], t / 1000, cs / n, ms / n) for sid, (t, n, cs, ms) in newest.items()]


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
    return _latest(conn, tier, kind, at_ms - int(window * 1000), at_ms)


def top(
    conn: sqlite3.Connection,
    tiers: tuple[Tier, ...],
    kind: str,
    resource: Metric,
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
    """What each tier keeps, by tier label (raw, 1m, 15m): raw samples, and one per
    series and bucket in the coarser ones."""
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
        t.label: int(
            conn.execute(
                f"SELECT coalesce(sum(n), 0) FROM {RAW_TABLE}"
                if t.width == 0
                else f"SELECT coalesce(sum(size), 0) FROM {t.table}"
            ).fetchone()[0]
        )
        for t in tiers
    }
    series = int(conn.execute("SELECT count(*) FROM series").fetchone()[0])
    return rows, series
