"""Compaction: a layout's small chunks of a tier merged into one of up to the tier's size.

Groups seal small chunks (a few scrapes or buckets: what waits in memory, and what a
crash can lose, stays small); compression wants long ones (each chunk starts its
columns from absolute values). So, as TSDBs compact blocks, upkeep merges runs of
consecutive small chunks of one layout and tier, oldest first, once they add up to the
tier's size, and those of a layout no group writes any more whatever they add up to.
A merged chunk holds the same samples or buckets, row for row (the tests read both).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import NamedTuple

import numpy as np

from kubepulse.history import chunks
from kubepulse.history.codec import CorruptChunk

log = logging.getLogger(__name__)

MAX_MERGES = 500
"""Merges per upkeep at most: a backlog (after a restart) is spread over minutes."""


class _Chunk(NamedTuple):
    id: int
    start_ms: int
    end_ms: int
    through_ms: int
    samples: int
    rows: int
    payload: bytes


def compact(conn: sqlite3.Connection, targets: dict[int, int], live: set[int]) -> tuple[int, int]:
    """Merge small chunks (width -> target rows; live: the layouts groups write now).
    Returns (merges, chunks that could not be decoded, left as they were)."""
    merges = damaged = 0
    sizes = {
        layout: size // 8 for layout, size in conn.execute("SELECT id, length(ids) FROM layouts")
    }
    found = conn.execute(
        "SELECT width, layout, count(*), sum(rows) FROM chunks WHERE small GROUP BY width, layout"
    ).fetchall()
    for width, layout, count, rows in found:
        target, size = targets.get(width), sizes.get(layout)
        gone = layout not in live
        if target is None or size is None or (not gone and (count < 2 or rows < target)):
            continue
        small = [
            _Chunk(*row)
            for row in conn.execute(
                "SELECT id, start_ms, end_ms, through_ms, count, rows, payload FROM chunks"
                " WHERE small AND width = ? AND layout = ? ORDER BY start_ms, id",
                (width, layout),
            )
        ]
        for run in _runs(small, target, gone):
            try:
                _merge(conn, width, layout, size, run)
            except CorruptChunk as err:
                damaged += 1
                log.warning("history: a damaged chunk left unmerged: %s", err)
                conn.executemany("UPDATE chunks SET small = 0 WHERE id = ?", [(c.id,) for c in run])
            merges += 1
        if merges >= MAX_MERGES:
            break
    return merges, damaged


def _runs(small: list[_Chunk], target: int, gone: bool) -> list[list[_Chunk]]:
    """Consecutive chunks adding up to at most `target` rows; the last, shorter run only
    when no group adds to it any more."""
    runs: list[list[_Chunk]] = []
    run: list[_Chunk] = []
    for chunk in small:
        if run and sum(c.rows for c in run) + chunk.rows > target:
            runs.append(run)
            run = []
        run.append(chunk)
    if run and (gone or sum(c.rows for c in run) >= target):
        runs.append(run)
    return runs


def _merge(conn: sqlite3.Connection, width: int, layout: int, size: int, run: list[_Chunk]) -> None:
    if len(run) == 1:
        conn.execute("UPDATE chunks SET small = 0 WHERE id = ?", (run[0].id,))
        return
    if width == 0:
        parts = [chunks.raw_columns(c.payload, size) for c in run]
        ts, cpu, mem = (np.concatenate(column) for column in zip(*parts, strict=True))
        payload = chunks.encode_raw(ts, cpu, mem)
    else:
        buckets = [chunks.bucket_columns(c.payload, size) for c in run]
        starts = np.concatenate([b[0] for b in buckets])
        fields = np.concatenate([b[1] for b in buckets], axis=1)
        payload = chunks.encode_buckets(starts, fields)
    conn.execute(
        "INSERT INTO chunks (width, layout, start_ms, end_ms, through_ms, count, rows, small,"
        " payload) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
        (
            width,
            layout,
            min(c.start_ms for c in run),
            max(c.end_ms for c in run),
            max(c.through_ms for c in run),
            sum(c.samples for c in run),
            sum(c.rows for c in run),
            payload,
        ),
    )
    conn.executemany("DELETE FROM chunks WHERE id = ?", [(c.id,) for c in run])
