"""A group's history in memory: the scrapes and buckets not yet sealed into chunks.

A group (a node, the namespaces) sends its layout's samples scrape after scrape. Each
scrape goes into the raw head and into the finest coarse tier's open bucket; a bucket
closes when a sample of a later one comes, goes into the next tier's open bucket, and
waits with the tier's other closed buckets. Every tier seals its rows into a chunk
when it has a few of them (chunks.py): small chunks, which the writer merges into
larger ones later (compact.py), so that what waits in memory stays small. flush()
seals everything, open buckets included (a bucket in parts: readers add them up).

Everything is driven by the samples' timestamps, never the clock, so the same samples
always give the same chunks. A sealed chunk records `through`: every sample of the
finer tier before that time is in the chunk or an earlier one. After a crash, which
loses what is in memory, the writer rebuilds each coarse tier from the finer tier's
chunks from there (writer.py): what a crash loses is the raw head, at most one chunk.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kubepulse.history import chunks
from kubepulse.history.chunks import FIELDS, Items
from kubepulse.history.codec import Ints
from kubepulse.history.head import RawHead

SeriesKey = tuple[str, str, str, str]
"""(kind, namespace, name, container); unused parts are ''."""

NO_BUCKET = 1 << 62
"""The start of a bucket that is not there: above every timestamp."""


class Sealed(NamedTuple):
    """A chunk to write: which tier (its width, 0 raw) and layout, the time it covers
    [start_ms, end_ms), `through` (module doc), how many samples or buckets it holds,
    the payload, and the rows it was encoded from (readers see them until committed)."""

    width: int
    group: GroupState
    start_ms: int
    end_ms: int
    through_ms: int
    samples: int
    payload: bytes
    starts: Ints
    """Raw: the timestamps (k, n), 0 where no sample. Coarse: the bucket starts (k,)."""
    values: Ints
    """Raw: cpu and memory (2, k, n). Coarse: the fields (FIELDS, k, n)."""

    @property
    def rows(self) -> int:
        """k: the scrapes or buckets it holds."""
        return len(self.starts)

    def items(self, position: int) -> Items:
        if self.width == 0:
            return raw_items(self.starts, self.values, position)
        return bucket_items(self.starts, self.values, position)


def raw_items(ts: Ints, values: Ints, position: int) -> Items:
    """One series' samples among raw rows: ts (k, n), values (2, k, n)."""
    column = ts[:, position]
    present = column > 0
    return chunks.samples(
        column[present], values[0][present, position], values[1][present, position]
    )


def bucket_items(starts: Ints, fields: Ints, position: int) -> Items:
    """One series' buckets among coarse rows: starts (k,), fields (FIELDS, k, n)."""
    mine = fields[:, :, position]
    present = mine[0] > 0
    return Items(starts[present], *(mine[f][present] for f in range(FIELDS)))


def merge(into: Ints, fields: Ints) -> None:
    """Add a part of a bucket to another part of it: counts and sums add, maxima max."""
    into[0] += fields[0]
    into[1] += fields[1]
    into[3] += fields[3]
    np.maximum(into[2], fields[2], out=into[2])
    np.maximum(into[4], fields[4], out=into[4])


def merge_scrape(into: Ints, present: Ints | int, cpu: Ints, mem: Ints) -> None:
    """merge() of a scrape's part: `present` 1 where a series has a sample, and its
    values there (0 elsewhere: nothing is negative, so the maxima stand)."""
    into[0] += present
    into[1] += cpu
    into[3] += mem
    np.maximum(into[2], cpu, out=into[2])
    np.maximum(into[4], mem, out=into[4])


class _Level:
    """A coarse tier's open bucket and closed buckets of one group."""

    __slots__ = ("closed", "open", "open_start", "rows", "starts", "width")

    def __init__(self, width_ms: int, rows: int) -> None:
        self.width, self.rows = width_ms, rows
        self.open_start = NO_BUCKET
        self.open: Ints | None = None
        self.starts: list[int] = []
        self.closed: list[Ints] = []


class GroupState:
    """The unsealed part of one group's history (the module doc)."""

    __slots__ = (
        "head",
        "head_start",
        "ids",
        "keys",
        "last",
        "layout",
        "levels",
        "raw_rows",
        "raw_span",
        "size",
        "written_ms",
    )

    def __init__(
        self,
        keys: tuple[SeriesKey, ...],
        ids: list[int],
        layout: int,
        raw: tuple[int, int],
        coarse: list[tuple[int, int]],
    ) -> None:
        """raw: (scrapes, milliseconds) a raw chunk holds at most; coarse: (width in
        seconds, buckets a chunk) of each coarse tier, finest first."""
        self.keys, self.ids, self.layout = keys, ids, layout
        self.raw_rows, self.raw_span = raw
        self.size = len(ids)
        self.last = np.zeros(self.size, np.int64)
        """Each series' newest timestamp written (ms; 0: none)."""
        self.written_ms = 0
        """The newest timestamp of any group when this one last wrote (data time)."""
        self.head: RawHead | None = None
        """The raw scrapes not sealed, filled row by row (one buffer a plane, not an
        array a scrape to stack when sealing)."""
        self.head_start = NO_BUCKET
        self.levels = [_Level(width * 1000, rows) for width, rows in coarse]

    def positions(self, sid: int) -> list[int]:
        """Where a series is in the layout: once, but a layout written by hand may hold
        it twice. Looked up when read (rarely), not kept: an index of every group's
        series would cost ~12 KB a node."""
        return [j for j, held in enumerate(self.ids) if held == sid]

    def add(self, ts: Ints, cpu: Ints, mem: Ints, sealed: list[Sealed]) -> None:
        """One scrape: ts in ms (0: no new sample), cpu in microcores, memory in bytes."""
        newest = int(ts.max())
        if self.head is None:
            self.head = RawHead(self.raw_rows, self.size, newest)
        elif not self.head.rows:
            self.head.restart(newest)
        self.head.add(ts, cpu, mem)
        self.head_start = min(self.head_start, newest)
        if self.levels:
            self._fold(ts, cpu, mem, sealed)
        if self.head.full() or newest - self.head_start >= self.raw_span:
            self._seal_raw(sealed)

    def _fold(self, ts: Ints, cpu: Ints, mem: Ints, sealed: list[Sealed]) -> None:
        """Put a scrape's samples into the finest coarse tier's buckets: one part per
        bucket its samples fall in (usually one; a scrape read across a boundary, two)."""
        width = self.levels[0].width
        present = ts > 0
        starts = ts - ts % width
        found = starts[present]
        if not len(found):
            return
        low, high = int(found.min()), int(found.max())
        level = self.levels[0]
        if low == high == level.open_start:
            # The usual scrape: its samples all in the open bucket, added in place.
            assert level.open is not None
            if len(found) == self.size:
                merge_scrape(level.open, 1, cpu, mem)
            else:
                had = present.astype(np.int64)
                merge_scrape(level.open, had, cpu * had, mem * had)
            return
        buckets = [low] if low == high else [int(s) for s in np.unique(found)]
        for start in buckets:
            mask = present if low == high else present & (starts == start)
            part = np.zeros((FIELDS, self.size), np.int64)
            part[0] = mask
            part[1] = part[2] = np.where(mask, cpu, 0)
            part[3] = part[4] = np.where(mask, mem, 0)
            self._add(0, start, part, sealed)

    def _add(self, i: int, start: int, part: Ints, sealed: list[Sealed]) -> None:
        level = self.levels[i]
        if level.open is None or start > level.open_start:
            self._close(i, sealed)
            level.open_start, level.open = start, part.copy()
        elif start == level.open_start:
            merge(level.open, part)
        else:  # late: its bucket was closed already; a part of its own, here and above
            self._closed(i, start, part, sealed)

    def _close(self, i: int, sealed: list[Sealed]) -> None:
        level = self.levels[i]
        if level.open is not None:
            start, part = level.open_start, level.open
            level.open_start, level.open = NO_BUCKET, None
            self._closed(i, start, part, sealed)

    def _closed(self, i: int, start: int, part: Ints, sealed: list[Sealed]) -> None:
        """A closed bucket (or part): kept to be sealed, and added to the next tier's."""
        level = self.levels[i]
        level.starts.append(start)
        level.closed.append(part)
        if i + 1 < len(self.levels):
            upper = self.levels[i + 1].width
            self._add(i + 1, start - start % upper, part, sealed)
        if len(level.closed) >= level.rows:
            self._seal(i, sealed)

    def _seal_raw(self, sealed: list[Sealed]) -> None:
        if self.head is None or not self.head.rows:
            return
        ts, values = self.head.rows_int64()
        self.head.rows = 0
        self.head_start = NO_BUCKET
        present = ts > 0
        count = int(present.sum())
        if not count:
            return
        start, end = int(ts[present].min()), int(ts.max()) + 1
        payload = chunks.encode_raw(ts, values[0], values[1])
        sealed.append(Sealed(0, self, start, end, end, count, payload, ts, values))

    def _seal(self, i: int, sealed: list[Sealed]) -> None:
        level = self.levels[i]
        if not level.closed:
            return
        starts = np.asarray(level.starts, np.int64)
        fields = np.stack(level.closed, axis=1)  # (FIELDS, k, n)
        level.starts, level.closed = [], []
        end = int(starts.max()) + level.width
        through = level.open_start if level.open is not None else end
        count = int((fields[0] > 0).sum())
        payload = chunks.encode_buckets(starts, fields)
        width = level.width // 1000
        sealed.append(
            Sealed(width, self, int(starts.min()), end, through, count, payload, starts, fields)
        )

    def flush(self, sealed: list[Sealed]) -> None:
        """Seal everything: the raw head, and every tier's buckets, open ones included."""
        self._seal_raw(sealed)
        for i in range(len(self.levels)):
            self._close(i, sealed)
            self._seal(i, sealed)

    def items(self, width: int, position: int) -> list[Items]:
        """A series' samples (width 0) or buckets of one tier, not yet sealed."""
        if width == 0:
            if self.head is None or not self.head.rows:
                return []
            return [self.head.items(position)]
        for level in self.levels:
            if level.width == width * 1000:
                found = []
                if level.closed:
                    starts = np.asarray(level.starts, np.int64)
                    found.append(bucket_items(starts, np.stack(level.closed, axis=1), position))
                if level.open is not None:
                    starts = np.asarray([level.open_start], np.int64)
                    found.append(bucket_items(starts, level.open[:, None, :], position))
                return found
        return []
