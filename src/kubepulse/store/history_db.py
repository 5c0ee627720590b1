"""The history's SQLite file: connections, schema and size.

Layout, chosen for thousands of series written every 15 s and read one series at a time:
- `series(id, kind, namespace, name, container)`: each series' labels once, so a sample
  row carries a small integer instead of four strings (a container sample is ~20 bytes
  instead of ~100).
- one table per tier, `(series_id, ts, values...)` WITHOUT ROWID with the primary key
  `(series_id, ts)`: rows are stored in the key's B-tree itself, clustered by series, so
  a range of one series is one seek and a contiguous scan, and no second index repeats
  the key (a rowid table with an index on (series_id, ts) stores every key twice and
  reads two B-trees per row). The cost is that "everything older than T" is not one
  range; deletes and "latest per series" use `series_id IN (SELECT id FROM series)` or a
  correlated subquery, which SQLite runs as one seek per series.
- timestamps are integer milliseconds (kubelet timestamps are whole milliseconds).
- aggregated tiers keep sum, count and max, so averages over any step are exact and a
  bucket written in two parts (before and after a restart) merges by addition.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kubepulse.store.tiers import Tier

SCHEMA_VERSION = 1

# Bounds the -wal file after each checkpoint; without it a burst leaves it at its peak.
JOURNAL_SIZE_LIMIT = 64 << 20


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
            f"CREATE TABLE IF NOT EXISTS {tier.table} (series_id INTEGER NOT NULL,"
            f" ts INTEGER NOT NULL, {columns}, PRIMARY KEY (series_id, ts)) WITHOUT ROWID"
        )
    conn.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT DO NOTHING", (SCHEMA_VERSION,))


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
