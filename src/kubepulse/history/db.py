"""The history's SQLite file: connections, schema and size.

Layout, chosen for ~100,000 series written every 15 s and read one series at a time:
- `series(id, kind, namespace, name, container, last_ms)`: each series' labels once, so
  a sample carries a small integer instead of four strings.
- every tier holds one row per batch: the raw tier (`samples_raw`) a node's scrape (its
  node, pods and containers) or a tick's namespace totals; a coarse tier one bucket of
  a group (a node, the namespaces). A row's values are packed in arrays, in the order
  of the batch's layout: `ts` (seconds, 64-bit floats as the store keeps them), `cpu`
  and `mem` (64-bit integers) for raw samples; `n`, `cpu_sum`, `cpu_max`, `mem_sum`,
  `mem_max` (64-bit integers) for a bucket starting at `ts`.
  `layouts` keeps each distinct list of series ids once (a node's pods and containers
  change seldom), and `layout_series` which layouts hold a series.
  Why: one SQLite row per sample costs ~2 us to insert, and a scrape of 1,000 nodes
  brings 91,000 of them, a minute closes as many buckets: most of what the history
  cost. One row per node is ~90 times fewer, and the arrays are packed in C. Reading
  one series over a range reads the rows of the layouts that hold it (one seek on
  `(layout, ts...)`) and picks its position in each. In the raw tier a sample that was
  not new (the timestamp of the series' last one) has the timestamp -1; in a coarse
  one a series without a sample in the bucket has n = 0. A bucket may be written in
  parts (before and after a restart, or a late sample): reading adds them up.
- every other timestamp (`ts_min`, `ts_max`, bucket starts, `last_ms`) is in integer
  milliseconds (kubelet timestamps are whole milliseconds).
- coarse tiers keep sum, count and max, so averages over any step are exact.
- `series.last_ms` (the newest sample, saved hourly and at close) lets a restart skip a
  resent sample and lets upkeep forget series no tier holds any more without a scan.

A file of schema 2 (a row per sample) is started afresh: its tables are dropped.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from kubepulse.history.tiers import Tier

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

PAGE_SIZE = 16384

# Bounds the -wal file after each checkpoint; without it a burst leaves it at its peak.
JOURNAL_SIZE_LIMIT = 64 << 20


class HistoryFileError(Exception):
    """The history file cannot be used (another schema)."""


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    if writer and not path.exists():
        # Owner-only from the first byte: usage history is what the API keeps behind a
        # token. SQLite gives the -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    # Autocommit mode (isolation_level=None): the writer opens its transactions itself,
    # so a batch is exactly one transaction and readers never hold one open by accident.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if writer:
        # Both must precede the first table. auto_vacuum lets a max-size trim give pages
        # back to the OS. A raw row is ~2.2 KB (91 samples of a node): one to a 4 KiB
        # page would waste nearly half of it; 16 KiB pages hold seven.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL never corrupts; a power cut may lose the last transactions only.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: the hot end of every series
    else:
        conn.execute("PRAGMA query_only = ON")
    return conn


RAW_TABLE = "samples_raw"


def create_schema(conn: sqlite3.Connection, tiers: tuple[Tier, ...]) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
        " namespace TEXT NOT NULL, name TEXT NOT NULL, container TEXT NOT NULL,"
        " last_ms INTEGER NOT NULL DEFAULT 0,"
        " UNIQUE (kind, namespace, name, container))"
    )
    conn.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT DO NOTHING", (SCHEMA_VERSION,))
    found = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
    if found == 2:  # a row per sample, in other tables: started afresh
        log.warning("history file of schema 2 (a row per sample): its samples are dropped")
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'samples_%'"
        ).fetchall()
        for (table,) in tables:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM series")
        conn.execute("DELETE FROM meta WHERE key = 'newest_ms'")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
        found = SCHEMA_VERSION
    if found == SCHEMA_VERSION:
        _create_tables(conn, tiers)
    else:
        raise HistoryFileError(
            f"history file has schema {found}, this kubepulse writes {SCHEMA_VERSION}:"
            " move it away to start a new history"
        )


def _create_tables(conn: sqlite3.Connection, tiers: tuple[Tier, ...]) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS layouts (id INTEGER PRIMARY KEY, ids BLOB NOT NULL)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS layout_series (series_id INTEGER NOT NULL,"
        " layout_id INTEGER NOT NULL, PRIMARY KEY (series_id, layout_id)) WITHOUT ROWID"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (id INTEGER PRIMARY KEY,"
        " layout INTEGER NOT NULL, ts_min INTEGER NOT NULL, ts_max INTEGER NOT NULL,"
        " n INTEGER NOT NULL, ts BLOB NOT NULL, cpu BLOB NOT NULL, mem BLOB NOT NULL)"
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {RAW_TABLE}_layout ON {RAW_TABLE} (layout, ts_max)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS {RAW_TABLE}_ts ON {RAW_TABLE} (ts_max)")
    for tier in tiers[1:]:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {tier.table} (id INTEGER PRIMARY KEY,"
            " layout INTEGER NOT NULL, ts INTEGER NOT NULL, size INTEGER NOT NULL,"
            " n BLOB NOT NULL, cpu_sum BLOB NOT NULL, cpu_max BLOB NOT NULL,"
            " mem_sum BLOB NOT NULL, mem_max BLOB NOT NULL)"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {tier.table}_layout ON {tier.table} (layout, ts)")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {tier.table}_ts ON {tier.table} (ts)")


def db_bytes(conn: sqlite3.Connection) -> int:
    """The main file's size as SQLite sees it (page_count x page_size)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(pages) * int(size)


def release_free_pages(conn: sqlite3.Connection) -> None:
    """Give free pages back to the file system (auto_vacuum = INCREMENTAL).

    Each step of `PRAGMA incremental_vacuum` frees one page and Python's execute() steps
    once (executescript() would step to the end, but it commits the open transaction).
    """
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    for _ in range(free):
        conn.execute("PRAGMA incremental_vacuum")


def wal_bytes(path: Path) -> int:
    try:
        return Path(f"{path}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def newest_ms(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'newest_ms'").fetchone()
    return int(row[0]) if row else None
