"""The history's SQLite file: connections, schema and size.

Layout, chosen for ~100,000 series written every 15 s and read one series at a time:
- `series(id, kind, namespace, name, container, last_ms)`: each series' labels once, so
  a sample row carries a small integer instead of four strings.
- one table per tier, WITHOUT ROWID with the primary key `(chunk, series_id, ts)`, where
  chunk = ts // tier.chunk_ms (a minute for raw samples, four buckets otherwise). Rows
  live in the key's B-tree itself, so there is no second index repeating the key.
  Why chunk first: a scrape writes one row for every series. Keyed by (series_id, ts)
  each of those rows lands on a different leaf page, and every commit writes ~100,000
  pages (400 MB) to the WAL; keyed by chunk first, the rows of one minute are together
  and a scrape dirties ~2,500 pages. Keyed by ts alone, reading one series would scan
  every series' rows. With the chunk, reading one series over a range is one seek per
  chunk (60 for the raw hour, 360 for a day of minutes), retention and trimming delete
  a prefix of the key, and "latest per series" is one seek per series in one or two
  chunks.
- timestamps are integer milliseconds (kubelet timestamps are whole milliseconds).
- aggregated tiers keep sum, count and max, so averages over any step are exact and a
  bucket written in two parts (before and after a restart) merges by addition.
- `series.last_ms` (the newest sample, saved at upkeep and close) lets a restart skip a
  resent sample and lets upkeep forget series no tier holds any more without a scan.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kubepulse.store.tiers import Tier

SCHEMA_VERSION = 2

# Bounds the -wal file after each checkpoint; without it a burst leaves it at its peak.
JOURNAL_SIZE_LIMIT = 64 << 20


class HistoryFileError(Exception):
    """The history file cannot be used (another schema)."""


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    # Autocommit mode (isolation_level=None): the writer opens its transactions itself,
    # so a batch is exactly one transaction and readers never hold one open by accident.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if writer:
        # Must precede the first table: lets a max-size trim give pages back to the OS.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL never corrupts; a power cut may lose the last transactions only.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: the hot end of every series
    else:
        conn.execute("PRAGMA query_only = ON")
    return conn


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
    for tier in tiers:
        if tier.width == 0:
            columns = "cpu INTEGER NOT NULL, mem INTEGER NOT NULL"
        else:
            columns = (
                "n INTEGER NOT NULL, cpu_sum INTEGER NOT NULL, cpu_max INTEGER NOT NULL,"
                " mem_sum INTEGER NOT NULL, mem_max INTEGER NOT NULL"
            )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {tier.table} (chunk INTEGER NOT NULL,"
            f" series_id INTEGER NOT NULL, ts INTEGER NOT NULL, {columns},"
            " PRIMARY KEY (chunk, series_id, ts)) WITHOUT ROWID"
        )
    conn.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT DO NOTHING", (SCHEMA_VERSION,))
    found = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
    if found != SCHEMA_VERSION:
        raise HistoryFileError(
            f"history file has schema {found}, this kubepulse writes {SCHEMA_VERSION}:"
            " move it away to start a new history"
        )


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
