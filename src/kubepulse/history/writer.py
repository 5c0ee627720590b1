"""The history writer: batches into the raw tier, buckets into the coarser ones, upkeep.

Runs on the history's own thread (history.py) and owns the only writing connection.
Everything is driven by the samples' timestamps, never the clock: a bucket closes when
a later sample of its series arrives, retention counts back from the newest sample seen,
and upkeep runs every `upkeep_every` seconds of data time. So the same samples always
give the same file, and tests feed hours of data without waiting.

Samples come in batches (Batch): a group's samples, one per series, in the order of the
group's layout (a node's node, pods and containers; a tick's namespaces), and a group
sends the same layout scrape after scrape. So the writer keeps, per group and aligned
with its layout, each series' newest timestamp and its open bucket in every coarse
tier, and updates them with a few element-wise passes in C (map over lists) instead of
Python per sample; only a batch whose samples do not all move alike (some fill a
bucket, some close one; a repeated sample) goes sample by sample. The raw tier stores
each batch as one row (history_db).

Open buckets live in memory until they close; close() writes them out and a restart
merges into them (sums and counts add). A crash loses only the open buckets of the
coarse tiers; the raw tier still holds those samples.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Sequence
from itertools import repeat
from operator import add, ge, gt, mul, not_, sub
from pathlib import Path
from typing import NamedTuple

from kubepulse.history import db as history_db
from kubepulse.history.db import RAW_TABLE
from kubepulse.history.tiers import Tier

log = logging.getLogger(__name__)

SeriesKey = tuple[str, str, str, str]
"""(kind, namespace, name, container); unused parts are ''."""

Row = tuple[str, str, str, str, float, int, int]
"""(kind, namespace, name, container, timestamp in seconds, cpu nanocores, memory bytes)."""


class Batch(NamedTuple):
    """Samples of one group, each of a different series."""

    group: str
    """What sends this layout again and again: a node's name, "namespaces"."""
    keys: tuple[SeriesKey, ...]
    ts: Sequence[float]
    """Seconds."""
    cpu: Sequence[int]
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


# Series without rows are looked for this often (data time): one seek per series and tier.
FORGET_EVERY_MS = 3600 * 1000

# Upkeep deletes at most this share of a tier per round when trimming to the maximum size.
TRIM_FRACTION = 8

NO_BUCKET = 1 << 62
"""The start of a bucket that is not there: above every timestamp."""

Aggregate = tuple[int, list[int], list[int], list[int], list[int], list[int]]
"""A group's buckets of one start: (start, n, cpu_sum, cpu_max, mem_sum, mem_max), the
lists aligned with the group's layout (n 0: the series has no sample in it)."""


Part = tuple["array[float]", "array[int]", "array[int]"]
"""One scrape's samples of a group: timestamps (s; -1 when none), cpu, memory."""


class _Pending:
    """The finest coarse tier's open bucket of a group: the scrapes that fall in it, kept
    as they came (arrays; a series without a sample in one has timestamp -1 and zeros)
    and summed when the bucket closes, once instead of at every scrape."""

    __slots__ = ("masks", "parts", "start")

    def __init__(self) -> None:
        self.start = NO_BUCKET
        self.parts: list[Part] = []
        self.masks: list[list[bool]] = []
        """Which series have a sample, of each part that has not every series'."""

    def add(self, part: Part, mask: list[bool] | None = None) -> None:
        self.parts.append(part)
        if mask is not None:
            self.masks.append(mask)

    def aggregate(self, size: int) -> Aggregate:
        parts = self.parts
        n = [len(parts) - len(self.masks)] * size
        for mask in self.masks:
            n = list(map(add, n, mask))
        cpus = [cpu for _, cpu, _ in parts]
        mems = [mem for _, _, mem in parts]
        return (
            self.start,
            n,
            list(map(sum, zip(*cpus, strict=True))),
            list(map(max, zip(*cpus, strict=True))),
            list(map(sum, zip(*mems, strict=True))),
            list(map(max, zip(*mems, strict=True))),
        )


class _Group:
    __slots__ = ("coarser", "ids", "keys", "last", "layout", "pending", "written_ms")

    def __init__(self, keys: tuple[SeriesKey, ...], ids: list[int], layout: int, tiers: int):
        self.keys, self.ids, self.layout = keys, ids, layout
        self.last = [-1.0] * len(ids)
        """The newest timestamp written of each series (s; -1: none)."""
        self.pending = _Pending()
        self.coarser: list[Aggregate | None] = [None] * (tiers - 1)
        """The open buckets of the tiers after the finest coarse one, summed element-wise
        from the closed buckets of the tier before."""
        self.written_ms = 0


ClosedRow = tuple[int, int, int, bytes, bytes, bytes, bytes, bytes]
"""A coarse tier's row: (layout, bucket start, series in it, n, cpu_sum, cpu_max, mem_sum,
mem_max), the last five packed (history_db)."""


class HistoryWriter:
    def __init__(
        self,
        path: Path,
        tiers: tuple[Tier, ...],
        max_bytes: int | None = None,
        upkeep_every: float = 60.0,
    ) -> None:
        self.path, self.tiers, self.max_bytes = path, tiers, max_bytes
        self.coarse = tiers[1:]
        self.upkeep_every_ms = int(upkeep_every * 1000)
        self.conn = history_db.connect(path, writer=True)
        history_db.create_schema(self.conn, tiers)
        self._ids: dict[SeriesKey, int] = {
            (kind, ns, name, container): sid
            for sid, kind, ns, name, container in self.conn.execute(
                "SELECT id, kind, namespace, name, container FROM series"
            )
        }
        # The newest timestamp written per series, for series in no group's layout now
        # (the groups keep theirs): a repeated or older sample (a node answering twice
        # with the same reading, a resend after restart) is skipped so that it is never
        # counted twice in a bucket.
        self._last: dict[int, float] = {
            sid: ms / 1000
            for sid, ms in self.conn.execute("SELECT id, last_ms FROM series WHERE last_ms > 0")
        }
        self._layouts: dict[tuple[int, ...], int] = {}
        for layout, blob in self.conn.execute("SELECT id, ids FROM layouts"):
            ids = array("q")
            ids.frombytes(blob)
            self._layouts[tuple(ids)] = layout
        self._groups: dict[str, _Group] = {}
        self.newest_ms = history_db.newest_ms(self.conn) or 0
        self._upkeep_at = self._forget_at = self.newest_ms
        self._upserts = [
            f"INSERT INTO {t.table} (layout, ts, size, n, cpu_sum, cpu_max, mem_sum, mem_max)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            for t in self.coarse
        ]
        self.trimmed_rows = 0

    # -- writing -------------------------------------------------------------------
    def write(self, batches: Sequence[Batch]) -> int:
        """Write batches in one transaction; returns how many samples were new."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            raw: list[tuple[int, int, int, int, bytes, bytes, bytes]] = []
            closed: list[list[ClosedRow]] = [[] for _ in self.coarse]
            written = sum(self._write(b, raw, closed) for b in batches)
            self.conn.executemany(
                f"INSERT INTO {RAW_TABLE} (layout, ts_min, ts_max, n, ts, cpu, mem)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                raw,
            )
            for upsert, rows in zip(self._upserts, closed, strict=True):
                self.conn.executemany(upsert, rows)
            if self.newest_ms - self._upkeep_at >= self.upkeep_every_ms:
                self._upkeep()
            self.conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('newest_ms', ?)", (self.newest_ms,)
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return written

    def _write(
        self,
        batch: Batch,
        raw: list[tuple[int, int, int, int, bytes, bytes, bytes]],
        closed: list[list[ClosedRow]],
    ) -> int:
        if not batch.keys:
            return 0
        group = self._groups.get(batch.group)
        if group is None or group.keys != batch.keys:
            group = self._regroup(batch.group, batch.keys, closed)
        ts, cpu, mem = batch.ts, array("q", batch.cpu), array("q", batch.mem)
        if all(map(gt, ts, group.last)):  # every sample is new: the usual case
            n, stored = len(ts), array("d", ts)
            group.last = list(ts)
            oldest, newest = round(min(ts) * 1000), round(max(ts) * 1000)
        else:
            fresh = list(map(gt, ts, group.last))
            n = sum(fresh)
            if n == 0:
                return 0
            stored = array("d", [t if new else -1.0 for t, new in zip(ts, fresh, strict=True)])
            # A sample that is not new adds nothing to a bucket either.
            cpu = array("q", [c if new else 0 for c, new in zip(cpu, fresh, strict=True)])
            mem = array("q", [m if new else 0 for m, new in zip(mem, fresh, strict=True)])
            group.last = list(map(max, group.last, ts))
            oldest = round(min(t for t in stored if t >= 0) * 1000)
            newest = round(max(stored) * 1000)
        self.newest_ms = max(self.newest_ms, newest)
        group.written_ms = self.newest_ms
        raw.append(
            (group.layout, oldest, newest, n, stored.tobytes(), cpu.tobytes(), mem.tobytes())
        )
        if self.coarse:
            self._bucket(group, (stored, cpu, mem), oldest, newest, n == len(ts), closed)
        return n

    def _bucket(
        self,
        group: _Group,
        part: Part,
        oldest: int,
        newest: int,
        full: bool,
        closed: list[list[ClosedRow]],
    ) -> None:
        """Put a scrape's samples into the finest coarse tier's pending bucket, closing it
        when they begin the next one. A scrape that falls in one bucket (the usual case)
        costs no work per sample; one that straddles two is split sample by sample."""
        pending, width = group.pending, self.coarse[0].width * 1000
        first, last = oldest - oldest % width, newest - newest % width
        empty = pending.start == NO_BUCKET
        if first == last and (empty or first >= pending.start):
            if first != pending.start:
                self._close(group, closed)
                pending.start = first
            pending.add(part, None if full else list(map(ge, part[0], repeat(0.0))))
            return
        ts, cpu, mem = part
        if last == first + width and (empty or first >= pending.start):
            # Across one boundary (samples of a scrape read a few seconds apart): split at
            # it element-wise. Timestamps are whole milliseconds, so none lies within half
            # a millisecond of the boundary.
            later = list(map(ge, ts, repeat((last - 0.5) / 1000)))
            earlier = list(map(not_, later))
            shift = list(map(add, ts, repeat(1.0)))  # a sample out of its part gets -1
            before = array("d", map(sub, ts, map(mul, later, shift)))
            after = array("d", map(sub, ts, map(mul, earlier, shift)))
            if first != pending.start:
                self._close(group, closed)
                pending.start = first
            present = list(map(ge, before, repeat(0.0)))
            pending.add(
                (before, array("q", map(mul, cpu, earlier)), array("q", map(mul, mem, earlier))),
                present,
            )
            self._close(group, closed)
            pending.start = last
            pending.add(
                (after, array("q", map(mul, cpu, later)), array("q", map(mul, mem, later))),
                list(map(ge, after, repeat(0.0))),
            )
            return
        buckets: dict[int, list[int]] = {}  # start -> the positions of its samples
        for j, t in enumerate(ts):
            if t >= 0:
                ms = round(t * 1000)
                buckets.setdefault(ms - ms % width, []).append(j)
        for start in sorted(buckets):
            positions = buckets[start]
            if start < pending.start != NO_BUCKET:  # late: its bucket was written out
                self._late(group, start, positions, part, closed)
                continue
            if start > pending.start or pending.start == NO_BUCKET:
                self._close(group, closed)
                pending.start = start
            size = len(ts)
            kept = array("d", [-1.0]) * size
            zeros = array("q", [0]) * size
            kept_cpu, kept_mem = zeros[:], zeros[:]
            for j in positions:
                kept[j], kept_cpu[j], kept_mem[j] = ts[j], cpu[j], mem[j]
            pending.add((kept, kept_cpu, kept_mem), list(map(ge, kept, repeat(0.0))))

    def _late(
        self,
        group: _Group,
        start: int,
        positions: list[int],
        part: Part,
        closed: list[list[ClosedRow]],
    ) -> None:
        """Samples of a bucket already written out: a row of their own in every coarse
        tier (reading adds a bucket's rows up)."""
        _, cpu, mem = part
        size = len(group.ids)
        n, cpus, mems = [0] * size, [0] * size, [0] * size
        for j in positions:
            n[j], cpus[j], mems[j] = 1, cpu[j], mem[j]
        for tier, rows in zip(self.coarse, closed, strict=True):
            width = tier.width * 1000
            self._row(group.layout, (start - start % width, n, cpus, cpus, mems, mems), rows)

    def _close(self, group: _Group, closed: list[list[ClosedRow]]) -> None:
        """Close the group's pending bucket: its sums as rows of the finest coarse tier and
        into the next tiers' open buckets, which close when a sum of a later one comes."""
        pending = group.pending
        if pending.start == NO_BUCKET:
            return
        summed: Aggregate | None = pending.aggregate(len(group.ids))
        pending.start, pending.parts, pending.masks = NO_BUCKET, [], []
        self._row(group.layout, summed, closed[0])  # type: ignore[arg-type]
        for i, tier in enumerate(self.coarse[1:]):
            if summed is None:
                break
            width = tier.width * 1000
            start = summed[0] - summed[0] % width
            summed = (start, *summed[1:])
            opened = group.coarser[i]
            if opened is None or start > opened[0]:
                group.coarser[i] = summed
                summed = opened  # the one it replaces closes, and goes on to the next tier
                if summed is not None:
                    self._row(group.layout, summed, closed[i + 1])
            elif start == opened[0]:
                group.coarser[i] = (
                    start,
                    list(map(add, opened[1], summed[1])),
                    list(map(add, opened[2], summed[2])),
                    list(map(max, opened[3], summed[3])),
                    list(map(add, opened[4], summed[4])),
                    list(map(max, opened[5], summed[5])),
                )
                summed = None
            else:  # older than the open bucket (a late closure): rows the upserts add in
                for later, rows in zip(self.coarse[i + 1 :], closed[i + 1 :], strict=True):
                    width = later.width * 1000
                    aligned = (summed[0] - summed[0] % width, *summed[1:])
                    self._row(group.layout, aligned, rows)
                summed = None

    @staticmethod
    def _row(layout: int, summed: Aggregate, closed: list[ClosedRow]) -> None:
        start, n, cpu_sum, cpu_max, mem_sum, mem_max = summed
        size = len(n) - n.count(0)  # series with a sample in the bucket
        if size:
            closed.append(
                (
                    layout,
                    start,
                    size,
                    array("q", n).tobytes(),
                    array("q", cpu_sum).tobytes(),
                    array("q", cpu_max).tobytes(),
                    array("q", mem_sum).tobytes(),
                    array("q", mem_max).tobytes(),
                )
            )

    def _flush(self, group: _Group, closed: list[list[ClosedRow]]) -> None:
        """Write out every open bucket of a group: a partial bucket merges by addition
        with the rest of it, if more comes."""
        self._close(group, closed)
        for i, opened in enumerate(group.coarser):
            if opened is not None:
                self._row(group.layout, opened, closed[i + 1])
        group.coarser = [None] * len(group.coarser)

    def _regroup(
        self, name: str, keys: tuple[SeriesKey, ...], closed: list[list[ClosedRow]]
    ) -> _Group:
        """A group's new layout: its open buckets are written out (their series change),
        its series' last timestamps carried over."""
        ids = [self._ids.get(k) or self._new_series(k) for k in keys]
        group = _Group(keys, ids, self._layout(ids), len(self.coarse))
        old = self._groups.get(name)
        if old is not None:
            self._forget_group(old, closed)
        for j, sid in enumerate(ids):
            group.last[j] = self._last.pop(sid, -1.0)
        self._groups[name] = group
        return group

    def _forget_group(self, group: _Group, closed: list[list[ClosedRow]]) -> None:
        if self.coarse:
            self._flush(group, closed)
        for sid, seconds in zip(group.ids, group.last, strict=True):
            self._last[sid] = max(seconds, self._last.get(sid, -1.0))

    def _layout(self, ids: list[int]) -> int:
        key = tuple(ids)
        layout = self._layouts.get(key)
        if layout is None:
            row = self.conn.execute(
                "INSERT INTO layouts (ids) VALUES (?) RETURNING id", (array("q", ids).tobytes(),)
            ).fetchone()
            layout = self._layouts[key] = int(row[0])
            self.conn.executemany(
                "INSERT OR IGNORE INTO layout_series VALUES (?, ?)",
                [(sid, layout) for sid in set(ids)],
            )
        return layout

    def _new_series(self, key: SeriesKey) -> int:
        row = self.conn.execute(
            "INSERT INTO series (kind, namespace, name, container) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO UPDATE SET kind = kind RETURNING id",
            key,
        ).fetchone()
        sid = self._ids[key] = int(row[0])
        return sid

    # -- upkeep --------------------------------------------------------------------
    def _upkeep(self) -> None:
        self._upkeep_at = self.newest_ms
        self._close_stale_buckets()
        raw_cutoff = self.newest_ms - self.tiers[0].retention * 1000
        self.conn.execute(f"DELETE FROM {RAW_TABLE} WHERE ts_max < ?", (raw_cutoff,))
        for tier in self.coarse:
            cutoff = self.newest_ms - tier.retention * 1000
            self.conn.execute(f"DELETE FROM {tier.table} WHERE ts < ?", (cutoff,))
        if self.newest_ms - self._forget_at >= FORGET_EVERY_MS:
            self._forget_at = self.newest_ms
            self._save_last()
            self._forget_empty_series()
        if self.max_bytes is not None:
            self._trim()
        # Pages freed by retention are reused by the next minutes' rows: giving them back
        # to the file system only to take them again would move pages every minute. Only
        # a large surplus (retention shortened, a burst gone) is given back.
        free, pages = (
            int(self.conn.execute(f"PRAGMA {pragma}").fetchone()[0])
            for pragma in ("freelist_count", "page_count")
        )
        if free * 4 > pages:
            history_db.release_free_pages(self.conn)

    def _close_stale_buckets(self) -> None:
        """Write out the buckets of groups that sent nothing for the longest width (a gone
        node), and forget the groups."""
        rows: list[list[ClosedRow]] = [[] for _ in self.coarse]
        quiet = self.newest_ms - max((t.width for t in self.coarse), default=0) * 1000
        for name, group in list(self._groups.items()):
            if group.written_ms < quiet:
                self._forget_group(group, rows)
                del self._groups[name]
        for upsert, closed in zip(self._upserts, rows, strict=True):
            self.conn.executemany(upsert, closed)

    def _all_last(self) -> dict[int, float]:
        """Each series' newest timestamp written (s)."""
        last = dict(self._last)
        for group in self._groups.values():
            for sid, seconds in zip(group.ids, group.last, strict=True):
                if seconds > last.get(sid, -1.0):
                    last[sid] = seconds
        return last

    def _save_last(self) -> None:
        self.conn.executemany(
            "UPDATE series SET last_ms = ? WHERE id = ?",
            [(round(s * 1000), sid) for sid, s in self._all_last().items() if s > 0],
        )

    def _forget_empty_series(self) -> None:
        """Drop series with no sample left in any tier and no open bucket (gone pods), and
        layouts no raw row and no group uses."""
        held = {sid for group in self._groups.values() for sid in group.ids}
        in_use = {group.layout for group in self._groups.values()}
        stored = {
            layout
            for table in (RAW_TABLE, *(t.table for t in self.coarse))
            for (layout,) in self.conn.execute(f"SELECT DISTINCT layout FROM {table}")
        }
        used = in_use | stored
        gone_layouts = [(layout,) for layout in self._layouts.values() if layout not in used]
        self.conn.executemany("DELETE FROM layouts WHERE id = ?", gone_layouts)
        self.conn.executemany("DELETE FROM layout_series WHERE layout_id = ?", gone_layouts)
        if gone_layouts:
            forgotten = {layout for (layout,) in gone_layouts}
            self._layouts = {k: v for k, v in self._layouts.items() if v not in forgotten}
        longest = max(t.retention for t in self.tiers) * 1000
        gone = [
            sid
            for (sid,) in self.conn.execute(
                "SELECT id FROM series WHERE last_ms < ?", (self.newest_ms - longest,)
            ).fetchall()
            if sid not in held
        ]
        self.conn.executemany("DELETE FROM series WHERE id = ?", [(sid,) for sid in gone])
        if gone:
            forgotten = set(gone)
            self._ids = {k: v for k, v in self._ids.items() if v not in forgotten}
            for sid in gone:
                self._last.pop(sid, None)

    def _trim(self) -> None:
        """Delete the oldest data, coarsest tier first, until the file fits max_bytes."""
        assert self.max_bytes is not None
        for tier in reversed(self.tiers):
            table, key = (tier.table, "ts") if tier.width else (RAW_TABLE, "ts_max")
            while history_db.db_bytes(self.conn) > self.max_bytes:
                oldest, newest = self.conn.execute(
                    # Two subqueries: each is one seek to an end of the key; together
                    # in one SELECT, min() and max() would scan the table.
                    f"SELECT (SELECT min({key}) FROM {table}), (SELECT max({key}) FROM {table})"
                ).fetchone()
                if oldest is None:
                    break  # this tier is empty: go on to the next finer one
                step = max(1, (newest - oldest) // TRIM_FRACTION)
                cur = self.conn.execute(f"DELETE FROM {table} WHERE {key} < ?", (oldest + step,))
                self.trimmed_rows += cur.rowcount
                history_db.release_free_pages(self.conn)
            else:
                return

    # -- closing -------------------------------------------------------------------
    def close(self) -> None:
        """Write out the open buckets (a restart merges into them) and close the file."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            rows: list[list[ClosedRow]] = [[] for _ in self.coarse]
            self._save_last()
            for group in self._groups.values():
                self._forget_group(group, rows)
            self._groups.clear()
            for upsert, closed in zip(self._upserts, rows, strict=True):
                self.conn.executemany(upsert, closed)
            self.conn.execute("COMMIT")
            # Folds the WAL back into the file so that it is one self-contained file.
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()
