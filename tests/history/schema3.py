"""The history format kubepulse wrote until schema 4 (a row of arrays per scrape and per
bucket), kept as it was for the tests: it writes the files that schema 4 migrates, and
its reader gives the points that schema 4 must give for the same samples."""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Sequence
from itertools import repeat
from operator import add, ge, gt, mul, not_, sub
from pathlib import Path

from kubepulse.history.db import connect, newest_ms
from kubepulse.history.read import HistoryPoint, pick_tier
from kubepulse.history.tiers import Tier
from kubepulse.history.writer import Batch, SeriesKey

SCHEMA_VERSION = 3
RAW_TABLE = "samples_raw"
FORGET_EVERY_MS = 3600 * 1000
TRIM_FRACTION = 8


def table(tier: Tier) -> str:
    return "samples_raw" if tier.width == 0 else f"samples_{tier.width}s"


def create_tables(conn: sqlite3.Connection, tiers: tuple[Tier, ...]) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
        " namespace TEXT NOT NULL, name TEXT NOT NULL, container TEXT NOT NULL,"
        " last_ms INTEGER NOT NULL DEFAULT 0,"
        " UNIQUE (kind, namespace, name, container))"
    )
    conn.execute("INSERT INTO meta VALUES ('schema', 3) ON CONFLICT DO NOTHING")
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
            f"CREATE TABLE IF NOT EXISTS {table(tier)} (id INTEGER PRIMARY KEY,"
            " layout INTEGER NOT NULL, ts INTEGER NOT NULL, size INTEGER NOT NULL,"
            " n BLOB NOT NULL, cpu_sum BLOB NOT NULL, cpu_max BLOB NOT NULL,"
            " mem_sum BLOB NOT NULL, mem_max BLOB NOT NULL)"
        )
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {table(tier)}_layout ON {table(tier)} (layout, ts)"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {table(tier)}_ts ON {table(tier)} (ts)")


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
        self.conn = connect(path, writer=True)
        create_tables(self.conn, tiers)
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
        self.newest_ms = newest_ms(self.conn) or 0
        self._upkeep_at = self._forget_at = self.newest_ms
        self._upserts = [
            f"INSERT INTO {table(t)} (layout, ts, size, n, cpu_sum, cpu_max, mem_sum, mem_max)"
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
            self.conn.execute(f"DELETE FROM {table(tier)} WHERE ts < ?", (cutoff,))
        # (Forgetting series and trimming to a size are left out: no test reaches them.)

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


def series_id(
    conn: sqlite3.Connection, kind: str, namespace: str, name: str, container: str
) -> int | None:
    row = conn.execute(
        "SELECT id FROM series WHERE kind = ? AND namespace = ? AND name = ? AND container = ?",
        (kind, namespace, name, container),
    ).fetchone()
    return int(row[0]) if row else None


def query(
    conn: sqlite3.Connection,
    tiers: tuple[Tier, ...],
    key: tuple[str, str, str, str],
    start: float,
    end: float,
    step: float,
) -> list[HistoryPoint]:
    """Points of one series in [start, end], one per step that holds data, oldest first.

    Steps are aligned to multiples of `step` since the epoch, so that the same step always
    buckets the same way, whatever the range.
    """
    if step <= 0:
        raise ValueError("step must be positive")
    sid = series_id(conn, *key)
    if sid is None or end < start:
        return []
    tier = pick_tier(tiers, newest_ms(conn) or 0, start, step)
    step_ms = max(1, round(step * 1000))
    lo = int(start * 1000) // step_ms * step_ms
    hi = int(end * 1000)
    steps: dict[int, list[float]] = {}  # step start -> [n, cpu sum, cpu max, mem sum, mem max]
    for layout, positions in _layouts_of(conn, sid):
        for _, (t, n, cpu_sum, cpu_max, mem_sum, mem_max) in _samples(
            conn, tier, layout, positions, lo, hi
        ):
            b = t - t % step_ms
            acc = steps.get(b)
            if acc is None:
                steps[b] = [n, cpu_sum, cpu_max, mem_sum, mem_max]
                continue
            acc[0] += n
            acc[1] += cpu_sum
            acc[3] += mem_sum
            acc[2] = max(acc[2], cpu_max)
            acc[4] = max(acc[4], mem_max)
    return [
        HistoryPoint(b / 1000, cs / n, ms / n, cm, mm)
        for b, (n, cs, cm, ms, mm) in sorted(steps.items())
    ]


Sample = tuple[int, int, int, int, int, int]
"""(timestamp or bucket start in ms, n, cpu sum, cpu max, memory sum, memory max)."""


def _samples(
    conn: sqlite3.Connection, tier: Tier, layout: int, positions: list[int], lo: int, hi: int
) -> list[tuple[int, Sample]]:
    """The samples (raw tier) or buckets (coarse tier) in [lo, hi] at these positions of a
    layout's rows (history_db), with their position: raw samples as buckets of one."""
    found: list[tuple[int, Sample]] = []
    if tier.width == 0:
        for ts_blob, cpu_blob, mem_blob in conn.execute(
            f"SELECT ts, cpu, mem FROM {RAW_TABLE} WHERE layout = ? AND ts_max >= ?"
            " AND ts_min <= ?",
            (layout, lo, hi),
        ):
            seconds, cpu, mem = array("d"), _ints(cpu_blob), _ints(mem_blob)
            seconds.frombytes(ts_blob)
            for j in positions:
                t = round(seconds[j] * 1000)
                if lo <= t <= hi:  # never a sample that was not new (-1 s)
                    found.append((j, (t, 1, cpu[j], cpu[j], mem[j], mem[j])))
        return found
    for row in conn.execute(
        f"SELECT ts, n, cpu_sum, cpu_max, mem_sum, mem_max FROM {table(tier)}"
        " WHERE layout = ? AND ts >= ? AND ts <= ?",
        (layout, lo, hi),
    ):
        t = row[0]
        n, cpu_sum, cpu_max, mem_sum, mem_max = (_ints(blob) for blob in row[1:])
        for j in positions:
            if n[j]:
                found.append((j, (t, n[j], cpu_sum[j], cpu_max[j], mem_sum[j], mem_max[j])))
    return found


def _ints(blob: bytes) -> array[int]:
    values = array("q")
    values.frombytes(blob)
    return values


def _layouts_of(conn: sqlite3.Connection, sid: int) -> list[tuple[int, list[int]]]:
    """(layout, the positions of the series in it) of every raw layout that holds it."""
    found = []
    for layout, blob in conn.execute(
        "SELECT l.id, l.ids FROM layout_series s JOIN layouts l ON l.id = s.layout_id"
        " WHERE s.series_id = ?",
        (sid,),
    ):
        found.append((layout, [j for j, x in enumerate(_ints(blob)) if x == sid]))
    return found
