"""The history writer: batches into groups' memory, sealed chunks into SQLite, upkeep.

Runs on the history's own thread (file.py) and owns the only writing connection.
Everything is driven by the samples' timestamps, never the clock: buckets close when a
later sample comes, retention counts back from the newest sample seen, and upkeep runs
every `upkeep_every` seconds of data time. So the same samples always give the same
file, and tests feed days of data without waiting.

Samples come in batches (Batch): a group's samples, one per series, in the order of the
group's layout (a node's node, pods and containers; a tick's namespaces). Each group
keeps what is not yet sealed in memory (groups.py); the file is written only when
chunks are sealed (a raw chunk every RAW_SEAL scrapes of a group, a small coarse one
every BUCKET_SEAL buckets), at upkeep (which merges small chunks: compact.py) and at
close: most cycles write nothing. What the writer
holds but has not committed, readers read from memory (`unsealed`, under `lock`).
Of the series index, memory keeps the groups' series and those seen in the last hour;
the rest (ended pods, up to the longest retention) are in the file only.

A batch whose values cannot be stored (beyond 64 bits) is skipped and counted, and the
other groups' batches are written. A write that fails (a full disk) keeps its chunks
in memory, up to MAX_PENDING_BYTES, and is tried again at the next write.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kubepulse.history import db as history_db
from kubepulse.history import migrate
from kubepulse.history.chunks import NANOCORES_PER_UNIT, Items
from kubepulse.history.compact import compact
from kubepulse.history.db import HistoryFileError
from kubepulse.history.groups import GroupState, Sealed, SeriesKey
from kubepulse.history.pressure import PressureBook
from kubepulse.history.rebuild import rebuild
from kubepulse.history.tiers import Tier
from kubepulse.model import PressureReading

log = logging.getLogger(__name__)

__all__ = ["Batch", "HistoryWriter", "Row", "SeriesKey", "batches_of"]

Row = tuple[str, str, str, str, float, int, int]
"""(kind, namespace, name, container, timestamp in seconds, cpu nanocores, memory bytes)."""

RAW_ROWS = 32
"""Scrapes in a raw chunk once compacted (8 minutes at 15 s). Longer chunks compress a
little better (3.8 bytes a sample at 32, 3.7 at 64, 4.6 at 8)."""

RAW_SEAL = RAW_ROWS
"""Scrapes a group keeps in memory before it seals them as a chunk (8 minutes at 15 s;
7.5, 30 scrapes, with the default hour of raw: RAW_SPAN_SHARE): what a crash can lose,
and ~47 KB of a node's memory (16 bytes a sample: head.py). Sealing small chunks and
merging them later (as the coarse tiers do) would keep less, but encode every sample
twice: the history's CPU at 1,000 nodes was a third higher with chunks of 8
(bench.history_cost)."""

BUCKET_SEAL = 4
"""Closed buckets a group keeps in memory before it seals them as a small chunk."""

RAW_SPAN_SHARE = 8
"""A raw chunk spans at most this share of the raw tier's retention (7.5 minutes of
the default hour), so that retention, which drops whole chunks, stays within it."""

MAX_BUCKET_ROWS = 96

LAYOUT_CACHE = 4096
"""Layouts (a group's series ids, in order) kept in memory, newest used first, so that
one seen again gets its old id (a node whose pod comes and goes), at least twice the
groups. Not every layout of the file: with pod churn a node has a new layout at each
change, kept in the file as long as a chunk uses it (30 days), ~800 bytes each in
memory: that grew without bound."""

MAX_PENDING_BYTES = 64 << 20
"""Sealed chunks kept while the disk refuses them; beyond, the oldest are dropped."""

# Series without chunks are looked for this often (data time).
FORGET_EVERY_MS = 3600 * 1000

# Upkeep deletes at most this share of a tier per round when trimming to the maximum size.
TRIM_FRACTION = 8


class Batch(NamedTuple):
    """Samples of one group, each of a different series."""

    group: str
    """What sends this layout again and again: a node's name, "namespaces"."""
    keys: tuple[SeriesKey, ...]
    ts: Sequence[float]
    """Seconds."""
    cpu: Sequence[int]
    """Nanocores."""
    mem: Sequence[int]


def batches_of(rows: Sequence[Row], group: str = "") -> list[Batch]:
    """Rows as batches, in their order: a series seen again in the rows starts the next
    batch, so that each batch holds a series once. Without a group, a batch's group is
    named after its first series (a node's rows start with the node's)."""
    batches: list[Batch] = []
    keys: list[SeriesKey] = []
    ts: list[float] = []
    cpu: list[int] = []
    mem: list[int] = []
    seen: set[SeriesKey] = set()
    for kind, ns, name, container, t, c, m in rows:
        key = (kind, ns, name, container)
        if key in seen:
            batches.append(Batch(group or "/".join(keys[0]), tuple(keys), ts, cpu, mem))
            keys, ts, cpu, mem, seen = [], [], [], [], set()
        seen.add(key)
        keys.append(key)
        ts.append(t)
        cpu.append(int(c))
        mem.append(int(m))
    if keys:
        batches.append(Batch(group or "/".join(keys[0]), tuple(keys), ts, cpu, mem))
    return batches


def chunk_rows(tiers: tuple[Tier, ...]) -> list[int]:
    """Buckets in a compacted chunk of each coarse tier: at most an eighth of its
    retention, which drops whole chunks (96 buckets: a day of the 15-minute tier)."""
    return [max(1, min(MAX_BUCKET_ROWS, tier.retention // 8 // tier.width)) for tier in tiers[1:]]


def seal_rows(tiers: tuple[Tier, ...]) -> list[int]:
    """Buckets a group seals a small chunk of: at most half the finer tier's retention,
    so that after a crash the finer tier still holds what the coarse one must rebuild,
    and no more than a compacted chunk."""
    return [
        max(1, min(BUCKET_SEAL, finer.retention // 2 // tier.width, rows))
        for (finer, tier), rows in zip(pairwise(tiers), chunk_rows(tiers), strict=True)
    ]


class HistoryWriter:
    def __init__(
        self,
        path: Path,
        tiers: tuple[Tier, ...],
        max_bytes: int | None = None,
        upkeep_every: float = 60.0,
        raw_rows: int = RAW_ROWS,
        raw_seal: int = RAW_SEAL,
    ) -> None:
        self.path, self.tiers, self.max_bytes = path, tiers, max_bytes
        self.raw_rows = raw_rows
        rows = chunk_rows(tiers)
        self.targets = {0: raw_rows} | {t.width: n for t, n in zip(tiers[1:], rows, strict=True)}
        """Rows a chunk of each tier (by width) is compacted to."""
        self.seal = min(raw_seal, raw_rows)
        self.coarse = [(t.width, n) for t, n in zip(tiers[1:], seal_rows(tiers), strict=True)]
        self.upkeep_every_ms = int(upkeep_every * 1000)
        self.lock = threading.Lock()
        """Held while memory changes and while a write commits; readers hold it to take
        their snapshot of the file and of memory at one moment."""
        self.conn = history_db.connect(path, writer=True)
        try:
            self._open()
        except BaseException:
            self.conn.close()
            raise
        self.newest_ms = history_db.newest_ms(self.conn) or 0
        # In memory: the series of the groups (and the last hour's, likely back soon);
        # any other is looked up in the file (_series_id). Not every series of the file:
        # with pod churn that grew by every pod made for as long as the longest retention.
        self._ids: dict[SeriesKey, int] = {}
        # The newest timestamp written per series, for series in no group's layout now
        # (the groups keep theirs): a repeated or older sample (a node answering twice
        # with the same reading, a resend after restart) is skipped so that it is never
        # counted twice in a bucket. Saved to the file hourly, then let go.
        self._last: dict[int, int] = {}
        for sid, kind, ns, name, container, last_ms in self.conn.execute(
            "SELECT id, kind, namespace, name, container, last_ms FROM series WHERE last_ms >= ?",
            (max(1, self.newest_ms - FORGET_EVERY_MS),),
        ):
            self._ids[(kind, ns, name, container)] = sid
            self._last[sid] = last_ms
        self._saved = False
        """This transaction saved every _last (upkeep): once it commits, they can go."""
        self._layouts: OrderedDict[tuple[int, ...], int] = OrderedDict()
        """The newest layouts (LAYOUT_CACHE), to give one seen again its id."""
        newest = self.conn.execute(
            "SELECT id, ids FROM layouts ORDER BY id DESC LIMIT ?", (LAYOUT_CACHE,)
        ).fetchall()
        for layout, blob in reversed(newest):
            ids = array("q")
            ids.frombytes(blob)
            self._layouts[tuple(ids)] = layout
        (highest,) = self.conn.execute("SELECT max(id) FROM series").fetchone()
        self._next_series = 1 + (highest or 0)
        (highest,) = self.conn.execute("SELECT max(id) FROM layouts").fetchone()
        self._next_layout = 1 + (highest or 0)
        self._groups: dict[str, GroupState] = {}
        self._holding: dict[int, GroupState | list[GroupState]] = {}
        """The group whose layout holds a series, for readers; a list in the rare case
        of two (a pod on its new node while its old node's layout still holds it). Not
        a list for each: that was ~8 KB a node."""
        self._pending: list[Sealed] = []
        self._pending_bytes = 0
        self._new_series: list[tuple[int, str, str, str, str]] = []
        self._new_layouts: list[tuple[int, list[int]]] = []
        self.pressure = PressureBook()
        self._upkeep_at = self._forget_at = self.newest_ms
        self.trimmed_rows = 0
        self.failed_rows = 0
        """Samples of batches that could not be stored (values beyond 64 bits)."""
        self.damaged = 0
        """Chunks compaction could not decode (left as they were)."""
        self.lost_rows = 0
        """Samples of sealed chunks dropped while the disk refused them for too long."""
        self.write_error: str | None = None
        """The last write's failure (SQLite's words), None once a write succeeds."""

    def _open(self) -> None:
        """Schema: create, migrate or refuse; after a crash, rebuild the coarse tiers."""
        conn = self.conn
        found = history_db.schema_of(conn)
        if found not in (None, 2, 3, history_db.SCHEMA_VERSION):
            raise HistoryFileError(
                f"history file has schema {found}, this kubepulse writes"
                f" {history_db.SCHEMA_VERSION}"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            history_db.create_schema(conn)
            if found == 2:
                history_db.drop_schema_2(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if found == 3:
            migrate.from_schema_3(conn, self.tiers, self.raw_rows, chunk_rows(self.tiers))
        clean = conn.execute("SELECT value FROM meta WHERE key = 'clean'").fetchone()
        if clean is not None and clean[0] == 0:
            rebuilt = rebuild(conn, self.tiers, chunk_rows(self.tiers))
            if rebuilt:
                log.info("history: rebuilt %d coarse buckets after an unclean stop", rebuilt)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('clean', 0)")

    # -- writing -------------------------------------------------------------------
    def write(self, batches: Sequence[Batch]) -> int:
        """Take batches into memory and write what they sealed; returns how many samples
        were new. A write that fails is kept and tried again (write_error says why)."""
        written = 0
        with self.lock:
            for batch in batches:
                try:
                    written += self._write(batch)
                except (ValueError, OverflowError, TypeError) as err:
                    self.failed_rows += len(batch.keys)
                    log.warning("history: skipped %s's samples: %s", batch.group, err)
            upkeep = self.newest_ms - self._upkeep_at >= self.upkeep_every_ms
            if upkeep:
                self._close_stale_groups()
        dirty = self._pending or self._new_series or self._new_layouts or self.pressure.pending
        if dirty or upkeep:
            self.commit(upkeep)
        return written

    def take_pressure(self, readings: Sequence[PressureReading]) -> None:
        """Count the rises of OOM and throttling counters (history/pressure.py); they are
        written with the next commit."""

        with self.lock:
            for reading in readings:
                self.pressure.take(reading, lambda key: self._series_id(("container", *key)))

    def _write(self, batch: Batch) -> int:
        if not batch.keys:
            return 0
        # Whole seconds (chunks.py): a sample in the same second as the last is not new.
        ts = np.floor(np.asarray(batch.ts, np.float64)).astype(np.int64) * 1000
        cpu = np.asarray(batch.cpu, np.int64)
        mem = np.asarray(batch.mem, np.int64)
        if (cpu < 0).any() or (mem < 0).any() or (ts <= 0).any():
            raise ValueError("negative values or timestamps")
        cpu = (cpu + NANOCORES_PER_UNIT // 2) // NANOCORES_PER_UNIT
        group = self._groups.get(batch.group)
        if group is None or group.keys != batch.keys:
            group = self._regroup(batch.group, batch.keys)
        fresh = ts > group.last
        new = int(fresh.sum())
        if new == 0:
            return 0
        if new < len(ts):
            ts = np.where(fresh, ts, 0)
        np.maximum(group.last, ts, out=group.last)
        self.newest_ms = max(self.newest_ms, int(ts.max()))
        group.written_ms = self.newest_ms
        sealed: list[Sealed] = []
        group.add(ts, cpu, mem, sealed)
        self._keep(sealed)
        return new

    def _keep(self, sealed: list[Sealed]) -> None:
        self._pending.extend(sealed)
        self._pending_bytes += sum(len(s.payload) for s in sealed)
        while self._pending_bytes > MAX_PENDING_BYTES and self._pending:
            dropped = self._pending.pop(0)
            self._pending_bytes -= len(dropped.payload)
            self.lost_rows += dropped.samples

    def _regroup(self, name: str, keys: tuple[SeriesKey, ...]) -> GroupState:
        """A group's new layout: its old state is sealed (its series change), its
        series' last timestamps carried over."""
        ids = [self._series_id(k) for k in keys]
        old = self._groups.pop(name, None)
        if old is not None:
            self._forget_group(old)
        span = self.tiers[0].retention * 1000 // RAW_SPAN_SHARE
        group = GroupState(keys, ids, self._layout(ids), (self.seal, span), self.coarse)
        for j, sid in enumerate(ids):
            group.last[j] = self._last.pop(sid, 0)
            self._hold(sid, group)
        self._groups[name] = group
        return group

    def _forget_group(self, group: GroupState) -> None:
        sealed: list[Sealed] = []
        group.flush(sealed)
        self._keep(sealed)
        for sid, ms in zip(group.ids, group.last.tolist(), strict=True):
            self._last[sid] = max(ms, self._last.get(sid, 0))
            self._release(sid, group)

    def _hold(self, sid: int, group: GroupState) -> None:
        held = self._holding.get(sid)
        if held is None:
            self._holding[sid] = group
        elif isinstance(held, list):
            if group not in held:
                held.append(group)
        elif held is not group:  # a layout written by hand may hold a series twice
            self._holding[sid] = [held, group]

    def _release(self, sid: int, group: GroupState) -> None:
        held = self._holding.get(sid)
        if held is group:
            del self._holding[sid]
        elif isinstance(held, list) and group in held:
            held.remove(group)
            self._holding[sid] = held[0] if len(held) == 1 else held

    def _holders(self, sid: int) -> list[GroupState]:
        held = self._holding.get(sid)
        if held is None:
            return []
        return held if isinstance(held, list) else [held]

    def _layout(self, ids: list[int]) -> int:
        key = tuple(ids)
        layout = self._layouts.get(key)
        if layout is not None:
            self._layouts.move_to_end(key)
            return layout
        layout = self._layouts[key] = self._next_layout
        self._next_layout += 1
        self._new_layouts.append((layout, ids))
        while len(self._layouts) > max(LAYOUT_CACHE, 2 * len(self._groups)):
            self._layouts.popitem(last=False)
        return layout

    def _series_id(self, key: SeriesKey) -> int:
        """A series' id: from memory, else from the file (its last timestamp with it),
        else a new one."""
        sid = self._ids.get(key)
        if sid is not None:
            return sid
        found = history_db.series_row(self.conn, key)
        if found is None:
            return self._new_id(key)
        sid, last_ms = found
        self._ids[key] = sid
        if last_ms > 0 and sid not in self._holding:
            self._last[sid] = max(last_ms, self._last.get(sid, 0))
        return sid

    def _new_id(self, key: SeriesKey) -> int:
        sid = self._ids[key] = self._next_series
        self._next_series += 1
        self._new_series.append((sid, *key))
        return sid

    def commit(self, upkeep: bool = False) -> bool:
        """Write the new series, layouts and sealed chunks in one transaction (and upkeep
        when due). False when it failed: everything is kept for the next try."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO series (id, kind, namespace, name, container) VALUES (?, ?, ?, ?, ?)",
                self._new_series,
            )
            for layout, ids in self._new_layouts:
                conn.execute(
                    "INSERT INTO layouts (id, ids) VALUES (?, ?)",
                    (layout, array("q", ids).tobytes()),
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO layout_series VALUES (?, ?)",
                    [(sid, layout) for sid in set(ids)],
                )
            conn.executemany(
                "INSERT INTO chunks (width, layout, start_ms, end_ms, through_ms, count, rows,"
                " small, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        *(s.width, s.group.layout, s.start_ms, s.end_ms, s.through_ms),
                        *(s.samples, s.rows, s.rows < self.targets[s.width], s.payload),
                    )
                    for s in self._pending
                ],
            )
            self.pressure.write(conn)
            if upkeep:
                self._upkeep()
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('newest_ms', ?)", (self.newest_ms,))
            with self.lock:
                conn.execute("COMMIT")
                self._pending, self._pending_bytes = [], 0
                self._new_series, self._new_layouts = [], []
                self.pressure.pending = {}
                if self._saved:
                    self._let_go()
        except sqlite3.Error as err:
            self._saved = False
            if conn.in_transaction:  # SQLite rolls some failures back itself
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.DatabaseError) and _corrupt(err):
                raise HistoryFileError(f"history file is damaged: {err}") from err
            if self.write_error != str(err):
                log.warning(
                    "history: cannot write %s: %s; keeping %d chunks (%.1f MB) in memory"
                    " and trying again",
                    self.path,
                    err,
                    len(self._pending),
                    self._pending_bytes / 1e6,
                )
            self.write_error = str(err)
            return False
        if self.write_error is not None:
            log.warning("history: writing %s again", self.path)
            self.write_error = None
        return True

    # -- reading (the caller holds `lock`) -----------------------------------------
    def series_id(self, key: SeriesKey) -> int | None:
        return self._ids.get(key)

    def pods_since(self, since_ms: int) -> dict[tuple[str, str], int]:
        """Every pod with a sample since `since_ms`: (namespace, name) -> newest (ms)."""
        last = self._all_last()
        return {
            (ns, name): last[sid]
            for (kind, ns, name, _), sid in self._ids.items()
            if kind == "pod" and last.get(sid, 0) >= since_ms
        }

    def containers_of(self, namespace: str, pod: str, since_ms: int) -> set[str]:
        """Containers of a pod that groups in memory hold samples of since `since_ms`."""
        last = self._all_last()
        return {
            c
            for (kind, ns, name, c), sid in self._ids.items()
            if kind == "container"
            and ns == namespace
            and name == pod
            and last.get(sid, 0) >= since_ms
        }

    def unsealed(self, sid: int, width: int) -> list[Items]:
        """A series' samples (width 0) or buckets of a tier that are not committed yet."""
        found: list[Items] = []
        for sealed in self._pending:
            if sealed.width == width:
                found.extend(sealed.items(p) for p in sealed.group.positions(sid))
        for group in self._holders(sid):
            for position in group.positions(sid):
                found.extend(group.items(width, position))
        return found

    # -- upkeep --------------------------------------------------------------------
    def _close_stale_groups(self) -> None:
        """Seal the groups that sent nothing for the longest width (a gone node)."""
        quiet = self.newest_ms - max((w for w, _ in self.coarse), default=0) * 1000
        for name, group in list(self._groups.items()):
            if group.written_ms < quiet:
                del self._groups[name]
                self._forget_group(group)

    def _upkeep(self) -> None:
        self._upkeep_at = self.newest_ms
        conn = self.conn
        for tier in self.tiers:
            cutoff = self.newest_ms - tier.retention * 1000
            conn.execute("DELETE FROM chunks WHERE width = ? AND end_ms < ?", (tier.width, cutoff))
        with self.lock:
            live = {group.layout for group in self._groups.values()}
        self.damaged += compact(conn, self.targets, live)[1]
        longest = self.newest_ms - max(t.retention for t in self.tiers) * 1000
        conn.execute("DELETE FROM pressure WHERE hour_ms < ?", (longest,))
        widths = ",".join(str(t.width) for t in self.tiers)
        # A tier no longer configured: kept as long as the longest one, then dropped.
        conn.execute(f"DELETE FROM chunks WHERE width NOT IN ({widths}) AND end_ms < ?", (longest,))
        if self.newest_ms - self._forget_at >= FORGET_EVERY_MS:
            self._forget_at = self.newest_ms
            self._save_last()
            self._saved = True
            self._forget_empty_series()
        if self.max_bytes is not None:
            self._trim()
        # Pages freed by retention are reused by the next chunks: giving them back to the
        # file system only to take them again would move pages every minute. Only a large
        # surplus (retention shortened, a burst gone) is given back.
        free, pages = (
            int(conn.execute(f"PRAGMA {pragma}").fetchone()[0])
            for pragma in ("freelist_count", "page_count")
        )
        if free * 4 > pages:
            history_db.release_free_pages(conn)

    def _all_last(self) -> dict[int, int]:
        """Each series' newest timestamp written (ms)."""
        last = dict(self._last)
        for group in self._groups.values():
            for sid, ms in zip(group.ids, group.last.tolist(), strict=True):
                if ms > last.get(sid, 0):
                    last[sid] = ms
        return last

    def _let_go(self) -> None:
        """After a commit that saved every last timestamp: forget the series no group
        holds (the file has them, with their last timestamps: _series_id finds them)."""
        self._saved = False
        self._ids = {k: sid for k, sid in self._ids.items() if sid in self._holding}
        self._last = {sid: ms for sid, ms in self._last.items() if sid in self._holding}

    def _save_last(self) -> None:
        self.conn.executemany(
            "UPDATE series SET last_ms = ? WHERE id = ?",
            [(ms, sid) for sid, ms in self._all_last().items() if ms > 0],
        )

    def _forget_empty_series(self) -> None:
        """Drop series with no sample left in any tier and no group (gone pods), and
        layouts no chunk and no group uses."""
        with self.lock:
            held = set(self._holding)
            in_use = {group.layout for group in self._groups.values()}
            in_use.update(s.group.layout for s in self._pending)
        gone_layouts = [
            (layout,)
            for (layout,) in self.conn.execute(
                "SELECT id FROM layouts WHERE id NOT IN (SELECT DISTINCT layout FROM chunks)"
            )
            if layout not in in_use
        ]
        self.conn.executemany("DELETE FROM layouts WHERE id = ?", gone_layouts)
        self.conn.executemany("DELETE FROM layout_series WHERE layout_id = ?", gone_layouts)
        if gone_layouts:
            forgotten = {layout for (layout,) in gone_layouts}
            for key in [k for k, v in self._layouts.items() if v in forgotten]:
                del self._layouts[key]
        longest = max(t.retention for t in self.tiers) * 1000
        gone = [
            sid
            for (sid,) in self.conn.execute(
                # Series with OOM or throttling counted in the retention are kept.
                "SELECT id FROM series WHERE last_ms < ? AND id NOT IN"
                " (SELECT series_id FROM pressure WHERE hour_ms >= ?)",
                (self.newest_ms - longest, self.newest_ms - longest),
            ).fetchall()
            if sid not in held
        ]
        self.conn.executemany("DELETE FROM series WHERE id = ?", [(sid,) for sid in gone])
        self.conn.executemany("DELETE FROM pressure WHERE series_id = ?", [(sid,) for sid in gone])
        if gone:
            forgotten = set(gone)
            with self.lock:
                self._ids = {k: v for k, v in self._ids.items() if v not in forgotten}
            for sid in gone:
                self._last.pop(sid, None)

    def _trim(self) -> None:
        """Delete the oldest chunks, coarsest tier first, until the file fits max_bytes."""
        assert self.max_bytes is not None
        for tier in reversed(self.tiers):
            while history_db.db_bytes(self.conn) > self.max_bytes:
                oldest, newest = self.conn.execute(
                    # Two subqueries: each is one seek to an end of the index; together
                    # in one SELECT, min() and max() would scan it.
                    "SELECT (SELECT min(end_ms) FROM chunks WHERE width = ?),"
                    " (SELECT max(end_ms) FROM chunks WHERE width = ?)",
                    (tier.width, tier.width),
                ).fetchone()
                if oldest is None:
                    break  # this tier is empty: go on to the next finer one
                step = max(1, (newest - oldest) // TRIM_FRACTION)
                cur = self.conn.execute(
                    "DELETE FROM chunks WHERE width = ? AND end_ms <= ? RETURNING count",
                    (tier.width, oldest + step),
                )
                self.trimmed_rows += sum(count for (count,) in cur.fetchall())
                history_db.release_free_pages(self.conn)
            else:
                return

    # -- closing -------------------------------------------------------------------
    def abandon(self) -> None:
        """Close without writing (the file is damaged: it is being set aside)."""
        with self.lock:
            self._groups.clear()
            self._holding.clear()
            self._pending = []
        self.conn.close()

    def close(self) -> None:
        """Seal every group (a restart adds to their open buckets), write, close."""
        try:
            with self.lock:
                for group in list(self._groups.values()):
                    self._forget_group(group)
                self._groups.clear()
            if self.commit():
                self.conn.execute("BEGIN IMMEDIATE")
                self._save_last()
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('clean', 1)")
                self.conn.execute("COMMIT")
                # Folds the WAL back into the file so that it is one self-contained file.
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            elif self._pending:
                self.lost_rows += sum(s.samples for s in self._pending)
                log.warning(
                    "history: %d samples not written at exit: %s",
                    sum(s.samples for s in self._pending),
                    self.write_error,
                )
        except sqlite3.Error as err:
            log.warning("history: closing %s: %s", self.path, err)
        finally:
            self.conn.close()


def _corrupt(err: sqlite3.DatabaseError) -> bool:
    """SQLite's words for a file that is not (or no longer) a database."""
    text = str(err)
    return "malformed" in text or "not a database" in text
