"""After an unclean stop: each coarse tier rebuilt from the finer tier's chunks.

What a crash loses is memory: the raw head and every tier's buckets not yet sealed
(groups.py). Each sealed chunk says `through`: every sample of the finer tier before
that time is in its tier's chunks. So a tier is whole again once the finer tier's
samples from there on are summed into buckets and sealed; tiers are rebuilt finest
first, so that the next one sums what the last one rebuilt. The finer tier still holds
them: a coarse chunk spans at most half of the finer tier's retention (writer.py).
"""

from __future__ import annotations

import logging
import sqlite3
from itertools import pairwise

import numpy as np

from kubepulse.history import chunks
from kubepulse.history.chunks import FIELDS
from kubepulse.history.codec import CorruptChunk, Ints
from kubepulse.history.tiers import Tier

log = logging.getLogger(__name__)


def aggregate(t: Ints, fields: Ints, width_ms: int) -> tuple[Ints, Ints]:
    """Samples or buckets (t (k, n), fields (FIELDS, k, n), n 0 where none) summed into
    buckets of a width: their starts (m,) and fields (FIELDS, m, n)."""
    valid = fields[0] > 0
    starts = t - t % width_ms
    found = np.unique(starts[valid])
    out = np.zeros((FIELDS, len(found), t.shape[1]), np.int64)
    rows, columns = np.nonzero(valid)
    where = (np.searchsorted(found, starts[rows, columns]), columns)
    for f in range(FIELDS):
        values = fields[f][rows, columns]
        if f in (2, 4):  # maxima
            np.maximum.at(out[f], where, values)
        else:
            np.add.at(out[f], where, values)
    return found, out


def raw_fields(ts: Ints, cpu: Ints, mem: Ints) -> Ints:
    """Raw samples (k, n) as buckets of one: fields (FIELDS, k, n)."""
    present = (ts > 0).astype(np.int64)
    return np.stack([present, cpu * present, cpu * present, mem * present, mem * present])


def seal_buckets(
    conn: sqlite3.Connection,
    width: int,
    layout: int,
    starts: Ints,
    fields: Ints,
    through_ms: int,
    rows: int,
) -> int:
    """Buckets written as chunks of at most `rows`; returns how many (series, bucket)."""
    written = 0
    for at in range(0, len(starts), rows):
        part_starts, part = starts[at : at + rows], fields[:, at : at + rows]
        count = int((part[0] > 0).sum())
        if not count:
            continue
        conn.execute(
            "INSERT INTO chunks (width, layout, start_ms, end_ms, through_ms, count, rows,"
            " small, payload) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                width,
                layout,
                int(part_starts.min()),
                int(part_starts.max()) + width * 1000,
                through_ms,
                count,
                len(part_starts),
                chunks.encode_buckets(part_starts, part),
            ),
        )
        written += count
    return written


def layout_sizes(conn: sqlite3.Connection) -> dict[int, int]:
    return {
        layout: size // 8 for layout, size in conn.execute("SELECT id, length(ids) FROM layouts")
    }


def rebuild(conn: sqlite3.Connection, tiers: tuple[Tier, ...], rows: list[int]) -> int:
    """Rebuild every coarse tier (the module doc); returns the buckets written."""
    total = 0
    sizes = layout_sizes(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _newest_samples(conn, sizes)
        for (finer, tier), per_chunk in zip(pairwise(tiers), rows, strict=True):
            through = dict(
                conn.execute(
                    "SELECT layout, max(through_ms) FROM chunks WHERE width = ? GROUP BY layout",
                    (tier.width,),
                ).fetchall()
            )
            ends = conn.execute(
                "SELECT layout, max(end_ms) FROM chunks WHERE width = ? GROUP BY layout",
                (finer.width,),
            ).fetchall()
            for layout, end in ends:
                since = through.get(layout, 0)
                size = sizes.get(layout)
                if end <= since or not size:
                    continue
                t, fields = _finer(conn, finer.width, layout, size, since)
                if not len(t):
                    continue
                starts, buckets = aggregate(t, fields, tier.width * 1000)
                total += seal_buckets(conn, tier.width, layout, starts, buckets, end, per_chunk)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return total


def _finer(
    conn: sqlite3.Connection, width: int, layout: int, size: int, since: int
) -> tuple[Ints, Ints]:
    """A layout's samples or buckets from `since` on: t (k, n), fields (FIELDS, k, n)."""
    times: list[Ints] = []
    parts: list[Ints] = []
    for (payload,) in conn.execute(
        "SELECT payload FROM chunks WHERE layout = ? AND width = ? AND end_ms > ?"
        " ORDER BY start_ms",
        (layout, width, since),
    ):
        try:
            if width == 0:
                ts, cpu, mem = chunks.raw_columns(payload, size)
                fields = raw_fields(ts, cpu, mem)
            else:
                starts, fields = chunks.bucket_columns(payload, size)
                ts = np.repeat(starts[:, None], size, axis=1)
        except CorruptChunk as err:
            log.warning("history: a damaged chunk skipped while rebuilding: %s", err)
            continue
        keep = (ts >= since)[None]
        times.append(ts)
        parts.append(np.where(keep, fields, 0))
    if not times:
        return np.zeros((0, size), np.int64), np.zeros((FIELDS, 0, size), np.int64)
    return np.concatenate(times), np.concatenate(parts, axis=1)


def _newest_samples(conn: sqlite3.Connection, sizes: dict[int, int]) -> None:
    """Each series' newest raw sample, from the newest raw chunk of each layout, as its
    last_ms: a sample the node sends again after the restart is then not counted twice
    (last_ms is otherwise saved hourly and at a clean stop)."""
    newest: dict[int, int] = {}
    for layout, payload in conn.execute(
        "SELECT layout, payload FROM chunks c WHERE width = 0 AND end_ms ="
        " (SELECT max(end_ms) FROM chunks WHERE layout = c.layout AND width = 0)"
    ).fetchall():
        ids_blob = conn.execute("SELECT ids FROM layouts WHERE id = ?", (layout,)).fetchone()
        size = sizes.get(layout)
        if ids_blob is None or not size:
            continue
        try:
            ts, _, _ = chunks.raw_columns(payload, size)
        except CorruptChunk:
            continue
        ids = np.frombuffer(ids_blob[0], np.int64)
        for sid, ms in zip(ids.tolist(), ts.max(axis=0).tolist(), strict=True):
            if ms > newest.get(sid, 0):
                newest[sid] = ms
    conn.executemany(
        "UPDATE series SET last_ms = max(last_ms, ?) WHERE id = ?",
        [(ms, sid) for sid, ms in newest.items()],
    )
