"""The history's SQLite file: connections, schema and size.

Layout (schema 4), chosen for ~100,000 series written every 15 s and read one series at
a time:
- `series(id, kind, namespace, name, container, last_ms)`: each series' labels once, so
  that a chunk names a series by a small integer.
- `layouts(id, ids)`: each distinct list of series ids a group sent (a node's node,
  pods and containers; the namespaces) once, and `layout_series` which layouts hold a
  series: a node's pods change seldom.
- `chunks(width, layout, start_ms, end_ms, through_ms, count, rows, small, payload)`: a
  stretch of one layout's samples (width 0, the raw tier) or buckets (a coarse tier of
  that width in seconds), compressed (chunks.py, codec.py): ~1-2 bytes a value where a
  row per sample cost ~30. `count` is how many samples or buckets it holds, `rows` how
  many scrapes or bucket starts; `through_ms`: every sample of the finer tier before it
  is in this tier's chunks (groups.py); `small`: sealed small, to be merged (compact.py).
  Reading one series over a range reads the chunks of the layouts that hold it (one
  seek on `(layout, width, end_ms)`) and decodes its three or five columns.
- every timestamp is in integer milliseconds (kubelet timestamps are whole ms).
- `series.last_ms` (the newest sample, saved hourly and at close) lets a restart skip a
  resent sample, lets the writer keep only its nodes' series in memory (an ended pod's
  is found here, with its last sample, if it comes back), and lets upkeep forget series
  no tier holds any more without a scan.

Files of schema 3 (a row of arrays per scrape and per bucket) are migrated to chunks on
open (migrate.py); files of schema 2 (a row per sample) were started afresh.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from kubepulse.history import pressure as history_pressure

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

PAGE_SIZE = 65536
"""A chunk is 2-20 KB: large pages hold several, where 16 KiB ones would leave a part of
every page empty after a chunk of 10 KB (SQLite keeps a row on one page and its overflow)."""

# Bounds the -wal file after each checkpoint; without it a burst leaves it at its peak.
JOURNAL_SIZE_LIMIT = 64 << 20


class HistoryFileError(Exception):
    """The history file cannot be used (another schema, not a database): set aside."""


class ForeignDatabase(Exception):
    """A SQLite database that kubepulse did not make: neither written into nor moved."""


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    if writer and not path.exists():
        # Owner-only from the first byte: usage history is what the API keeps behind a
        # token. SQLite gives the -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    # Autocommit mode (isolation_level=None): the writer opens its transactions itself,
    # so a batch is exactly one transaction and readers never hold one open by accident.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _configure(conn, writer)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, writer: bool) -> None:
    conn.execute("PRAGMA busy_timeout = 10000")
    if writer:
        # Checked before anything writes: a damaged file is set aside as it was found.
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise HistoryFileError(f"history file is damaged: quick_check says {check!r}")
        others = foreign_tables(conn)
        if others:
            # Someone's own database given as the history file: before any pragma below
            # changes it (WAL is kept in the file), and not set aside as a damaged
            # history would be.
            raise ForeignDatabase(
                "it is a SQLite database that kubepulse did not make (its tables:"
                f" {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}):"
                " give the history a file of its own"
            )
        # Both must precede the first table. auto_vacuum lets a max-size trim give pages
        # back to the OS.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL never corrupts; a power cut may lose the last transactions only.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA cache_size = -16384")  # 16 MiB: the index and recent chunks
    else:
        conn.execute("PRAGMA query_only = ON")


def schema_of(conn: sqlite3.Connection) -> int | None:
    """The file's schema version; None for a new file."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return int(row[0]) if row else None


def foreign_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables of a database that kubepulse did not make: one with tables, but not
    the `meta` table that every kubepulse file has had from its first version. None for
    a new, empty file, or a kubepulse file of any schema."""
    tables = [
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
    ]
    return [] if "meta" in tables else tables


def create_schema(conn: sqlite3.Connection) -> None:
    """Schema 4's tables (meta and series as schema 3 had them)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
        " namespace TEXT NOT NULL, name TEXT NOT NULL, container TEXT NOT NULL,"
        " last_ms INTEGER NOT NULL DEFAULT 0,"
        " UNIQUE (kind, namespace, name, container))"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS layouts (id INTEGER PRIMARY KEY, ids BLOB NOT NULL)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS layout_series (series_id INTEGER NOT NULL,"
        " layout_id INTEGER NOT NULL, PRIMARY KEY (series_id, layout_id)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, width INTEGER NOT NULL,"
        " layout INTEGER NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,"
        " through_ms INTEGER NOT NULL, count INTEGER NOT NULL, rows INTEGER NOT NULL,"
        " small INTEGER NOT NULL, payload BLOB NOT NULL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS chunks_layout ON chunks (layout, width, end_ms)")
    conn.execute("CREATE INDEX IF NOT EXISTS chunks_age ON chunks (width, end_ms)")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS chunks_small ON chunks (width, layout, start_ms) WHERE small"
    )
    # OOM kills and throttling (pressure.py): added within schema 4, made on open.
    history_pressure.create_table(conn)
    conn.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT DO NOTHING", (SCHEMA_VERSION,))


def drop_schema_2(conn: sqlite3.Connection) -> None:
    """A file of schema 2 (a row per sample, two versions back): its samples are dropped."""
    log.warning("history file of schema 2 (a row per sample): its samples are dropped")
    tables = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'samples_%'"
    ).fetchall()
    for (table,) in tables:
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DELETE FROM series")
    conn.execute("DELETE FROM meta WHERE key = 'newest_ms'")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))


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


def series_row(conn: sqlite3.Connection, key: tuple[str, str, str, str]) -> tuple[int, int] | None:
    """A series' (id, last_ms) by its (kind, namespace, name, container), or None: one
    seek of the series table's unique index."""
    found = conn.execute(
        "SELECT id, last_ms FROM series WHERE kind = ? AND namespace = ? AND name = ?"
        " AND container = ?",
        key,
    ).fetchone()
    return None if found is None else (int(found[0]), int(found[1]))
