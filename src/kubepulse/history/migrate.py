"""Schema 3 (a row of arrays per scrape and per bucket) migrated to chunks, on open.

Schema 3 kept, per layout, `samples_raw` rows (ts as 64-bit float seconds, -1 where a
series had no new sample; cpu in nanocores; mem) and one table per coarse tier
(`samples_60s`, ...: a bucket start in ms and arrays n, cpu_sum, cpu_max, mem_sum,
mem_max). Each layout's rows become chunks of the same samples and buckets (CPU
rounded to microcores, chunks.py) and are deleted in the same transaction, so a
migration stopped half way goes on where it stopped at the next open. The old tables
are dropped once empty and the schema becomes 4: nothing is dropped unmigrated.
"""

from __future__ import annotations

import logging
import re
import sqlite3

import numpy as np

from kubepulse.history import chunks
from kubepulse.history import db as history_db
from kubepulse.history.chunks import NANOCORES_PER_UNIT
from kubepulse.history.codec import Ints
from kubepulse.history.rebuild import layout_sizes, seal_buckets
from kubepulse.history.tiers import Tier

log = logging.getLogger(__name__)

_COARSE = re.compile(r"^samples_(\d+)s$")


def _microcores(nanocores: Ints) -> Ints:
    return (nanocores + NANOCORES_PER_UNIT // 2) // NANOCORES_PER_UNIT


def from_schema_3(
    conn: sqlite3.Connection, tiers: tuple[Tier, ...], raw_rows: int, rows: list[int]
) -> None:
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'samples_%'"
        )
    ]
    coarse = [(t, int(m.group(1))) for t in tables if (m := _COARSE.match(t))]
    per_chunk = {tier.width: n for tier, n in zip(tiers[1:], rows, strict=True)}
    before = history_db.db_bytes(conn)
    sizes = layout_sizes(conn)
    log.info(
        "history: migrating %s (schema 3, %.0f MB, %d layouts) to compressed chunks",
        conn.execute("PRAGMA database_list").fetchone()[2],
        before / 1e6,
        len(sizes),
    )
    for layout, size in sizes.items():
        conn.execute("BEGIN IMMEDIATE")
        try:
            if "samples_raw" in tables:
                _raw(conn, layout, size, raw_rows)
            for table, width in coarse:
                _buckets(conn, table, width, layout, size, per_chunk.get(width, 96))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    conn.execute("BEGIN IMMEDIATE")
    for table in tables:
        conn.execute(f"DROP TABLE {table}")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (history_db.SCHEMA_VERSION,))
    conn.execute("COMMIT")
    history_db.release_free_pages(conn)
    log.info(
        "history: migrated to schema %d: %.0f MB (was %.0f MB)",
        history_db.SCHEMA_VERSION,
        history_db.db_bytes(conn) / 1e6,
        before / 1e6,
    )


def _raw(conn: sqlite3.Connection, layout: int, size: int, raw_rows: int) -> None:
    ts_rows: list[Ints] = []
    cpu_rows: list[Ints] = []
    mem_rows: list[Ints] = []
    for ts_blob, cpu_blob, mem_blob in conn.execute(
        "SELECT ts, cpu, mem FROM samples_raw WHERE layout = ? ORDER BY id", (layout,)
    ).fetchall():
        seconds = np.frombuffer(ts_blob, np.float64)
        ts_rows.append(np.where(seconds >= 0, np.rint(seconds * 1000), 0).astype(np.int64))
        cpu_rows.append(_microcores(np.frombuffer(cpu_blob, np.int64)))
        mem_rows.append(np.frombuffer(mem_blob, np.int64).copy())
    for at in range(0, len(ts_rows), raw_rows):
        ts = np.vstack(ts_rows[at : at + raw_rows])
        present = ts > 0
        if not present.any():
            continue
        cpu, mem = np.vstack(cpu_rows[at : at + raw_rows]), np.vstack(mem_rows[at : at + raw_rows])
        end = int(ts.max()) + 1
        conn.execute(
            "INSERT INTO chunks (width, layout, start_ms, end_ms, through_ms, count, rows,"
            " small, payload) VALUES (0, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                layout,
                int(ts[present].min()),
                end,
                end,
                int(present.sum()),
                len(ts),
                chunks.encode_raw(ts, cpu, mem),
            ),
        )
    conn.execute("DELETE FROM samples_raw WHERE layout = ?", (layout,))


def _buckets(
    conn: sqlite3.Connection, table: str, width: int, layout: int, size: int, rows: int
) -> None:
    starts: list[int] = []
    parts: list[Ints] = []
    for ts, *blobs in conn.execute(
        f"SELECT ts, n, cpu_sum, cpu_max, mem_sum, mem_max FROM {table} WHERE layout = ?"
        " ORDER BY ts, id",
        (layout,),
    ).fetchall():
        n, cpu_sum, cpu_max, mem_sum, mem_max = (np.frombuffer(b, np.int64) for b in blobs)
        starts.append(ts)
        parts.append(np.stack([n, _microcores(cpu_sum), _microcores(cpu_max), mem_sum, mem_max]))
    if starts:
        fields = np.stack(parts, axis=1)
        begun = np.asarray(starts, np.int64)
        seal_buckets(conn, width, layout, begun, fields, int(begun.max()) + width * 1000, rows)
    conn.execute(f"DELETE FROM {table} WHERE layout = ?", (layout,))
