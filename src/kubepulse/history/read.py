"""Reading the history: one series over a range, in steps.

Plain functions of a read connection, so that the dashboard can run them on any thread
(WAL: readers never wait for the writer, nor the writer for them). What the writer
holds in memory comes in as Items (file.py takes both at one moment).
"""

from __future__ import annotations

import sqlite3
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from kubepulse.history import chunks
from kubepulse.history.chunks import NANOCORES_PER_UNIT, Items
from kubepulse.history.codec import CorruptChunk
from kubepulse.history.tiers import Tier

Kind = Literal["node", "pod", "container", "namespace", "cluster"]
Metric = Literal["cpu", "memory"]
KINDS: tuple[Kind, ...] = ("node", "pod", "container", "namespace", "cluster")


class HistoryPoint(NamedTuple):
    """One step of a series: the average and maximum over [timestamp, timestamp + step)."""

    timestamp: float
    cpu_nanocores: float
    memory_bytes: float
    cpu_max: float
    memory_max: float


def pick_tier(tiers: tuple[Tier, ...], newest_ms: int, start: float, step: float) -> Tier:
    """The tier to answer a range from.

    Among the tiers whose retention still reaches `start`, the coarsest one whose buckets
    are no wider than the step (fewer chunks read for the same answer); failing that the
    finest one that reaches; and when none does, the longest history there is.
    """
    reaching = [t for t in tiers if start * 1000 >= newest_ms - t.retention * 1000]
    if not reaching:
        return max(tiers, key=lambda t: t.retention)
    fitting = [t for t in reaching if t.width <= step]
    return max(fitting, key=lambda t: t.width) if fitting else reaching[0]


class Damage:
    """Chunks a reader could not decode: skipped, and counted here."""

    def __init__(self) -> None:
        self.chunks = 0
        self.last: str | None = None


def stored(
    conn: sqlite3.Connection, sid: int, width: int, lo: int, hi: int, damage: Damage
) -> list[Items]:
    """A series' samples (width 0) or buckets of a tier in the chunks that overlap
    [lo, hi] (ms): one seek per layout that holds the series."""
    found: list[Items] = []
    for layout, blob in conn.execute(
        "SELECT l.id, l.ids FROM layout_series s JOIN layouts l ON l.id = s.layout_id"
        " WHERE s.series_id = ?",
        (sid,),
    ).fetchall():
        ids = np.frombuffer(blob, np.int64)
        size, positions = len(ids), np.flatnonzero(ids == sid).tolist()
        for (payload,) in conn.execute(
            "SELECT payload FROM chunks WHERE layout = ? AND width = ? AND end_ms > ?"
            " AND start_ms <= ?",
            (layout, width, lo, hi),
        ):
            for position in positions:
                try:
                    if width == 0:
                        found.append(chunks.decode_raw(payload, size, position))
                    else:
                        found.append(chunks.decode_buckets(payload, size, position))
                except CorruptChunk as err:
                    damage.chunks += 1
                    damage.last = str(err)
    return found


class StepColumns(NamedTuple):
    """Steps as columns: each step's start (ms), samples, sums and maxima (CPU in the
    stored unit, NANOCORES_PER_UNIT nanocores)."""

    starts: npt.NDArray[np.int64]
    n: npt.NDArray[np.float64]
    cpu_sum: npt.NDArray[np.int64]
    mem_sum: npt.NDArray[np.int64]
    cpu_max: npt.NDArray[np.int64]
    mem_max: npt.NDArray[np.int64]


def step_columns(items: Items, lo: int, hi: int, step_ms: int) -> StepColumns | None:
    """Samples or buckets in [lo, hi] summed into steps aligned to multiples of the step
    since the epoch; None when none is inside."""
    inside = (items.t >= lo) & (items.t <= hi)
    if not inside.any():
        return None
    t = items.t[inside]
    aligned = t - t % step_ms
    if len(aligned) < 2 or bool((aligned[1:] > aligned[:-1]).all()):
        # Each item its own step, in order (a tier read at its own width): nothing to
        # sum, and the grouping below is most of the cost of reading many series.
        return StepColumns(
            aligned,
            items.n[inside].astype(np.float64),
            items.cpu_sum[inside],
            items.mem_sum[inside],
            items.cpu_max[inside],
            items.mem_max[inside],
        )
    starts, where = np.unique(aligned, return_inverse=True)
    size = len(starts)
    n = np.bincount(where, weights=items.n[inside], minlength=size).astype(np.float64, copy=False)
    cpu_sum = np.zeros(size, np.int64)
    mem_sum = np.zeros(size, np.int64)
    np.add.at(cpu_sum, where, items.cpu_sum[inside])
    np.add.at(mem_sum, where, items.mem_sum[inside])
    cpu_max = np.zeros(size, np.int64)
    mem_max = np.zeros(size, np.int64)
    np.maximum.at(cpu_max, where, items.cpu_max[inside])
    np.maximum.at(mem_max, where, items.mem_max[inside])
    return StepColumns(starts, n, cpu_sum, mem_sum, cpu_max, mem_max)


def steps(items: Items, lo: int, hi: int, step_ms: int) -> list[HistoryPoint]:
    """step_columns() as points: each step's average (sum / count, so parts of a bucket
    add up) and maximum, oldest first."""
    found = step_columns(items, lo, hi, step_ms)
    if found is None:
        return []
    unit = NANOCORES_PER_UNIT
    return [
        HistoryPoint(b / 1000, cs * unit / c, ms / c, cm * unit, mm)
        for b, c, cs, ms, cm, mm in zip(
            found.starts.tolist(),
            found.n.tolist(),
            found.cpu_sum.tolist(),
            found.mem_sum.tolist(),
            found.cpu_max.tolist(),
            found.mem_max.tolist(),
            strict=True,
        )
    ]


class HistoryHealth(NamedTuple):
    """The history's counters, for /metrics (no query: read at every scrape of it)."""

    open: bool
    file_bytes: int
    """The file and its WAL on disk."""
    dropped_rows: int
    failed_rows: int
    trimmed_rows: int
    damaged_chunks: int
    write_failing: bool
    """The last write failed (a full disk): chunks wait in memory."""


class HistoryStats(NamedTuple):
    rows: dict[str, int]
    """What each tier keeps, by tier label (raw, 1m, 15m): raw samples, and one per
    series and bucket in the coarser ones (written to the file)."""
    payload_bytes: dict[str, int]
    """The compressed chunks' bytes of each tier."""
    series: int
    db_bytes: int
    """page_count x page_size of the main file."""
    wal_bytes: int
    max_bytes: int | None
    dropped_rows: int
    """Samples dropped because the writer's queue was full (the disk could not keep up)."""
    failed_rows: int
    """Samples that could not be stored (values beyond 64 bits), or lost because the
    disk refused them for too long."""
    trimmed_rows: int
    """Samples and buckets deleted to stay under max_bytes."""
    damaged_chunks: int
    """Chunks skipped because they could not be decoded."""
    newest: float | None
    write_error: str | None
    """Why the last write failed (SQLite's words), None when writing works."""


def counts(
    conn: sqlite3.Connection, tiers: tuple[Tier, ...]
) -> tuple[dict[str, int], dict[str, int], int]:
    """Samples or buckets, and payload bytes, per tier; the number of series."""
    rows = {t.label: 0 for t in tiers}
    sizes = {t.label: 0 for t in tiers}
    labels = {t.width: t.label for t in tiers}
    for width, count, size in conn.execute(
        "SELECT width, sum(count), sum(length(payload)) FROM chunks GROUP BY width"
    ):
        if width in labels:
            rows[labels[width]], sizes[labels[width]] = int(count), int(size)
    series = int(conn.execute("SELECT count(*) FROM series").fetchone()[0])
    return rows, sizes, series
