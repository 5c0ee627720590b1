"""The history writer: samples into the raw tier, buckets into the coarser ones, upkeep.

Runs on the history's own thread (history.py) and owns the only writing connection.
Everything is driven by the samples' timestamps, never the clock: a bucket closes when
a later sample of its series arrives, retention counts back from the newest sample seen,
and upkeep runs every `upkeep_every` seconds of data time. So the same samples always
give the same file, and tests feed hours of data without waiting.

Open buckets live in memory until they close; close() writes them out and a restart
merges into them (sums and counts add). A crash loses only the open buckets of the
coarse tiers; the raw tier still holds those samples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from kubepulse.store import history_db
from kubepulse.store.tiers import Tier

log = logging.getLogger(__name__)

SeriesKey = tuple[str, str, str, str]
"""(kind, namespace, name, container); unused parts are ''."""

Row = tuple[str, str, str, str, float, int, int]
"""(kind, namespace, name, container, timestamp in seconds, cpu nanocores, memory bytes)."""

# An open bucket: [start_ms, n, cpu_sum, cpu_max, mem_sum, mem_max]
_Bucket = list[int]

# Series without rows are looked for this often (data time): one seek per series and tier.
FORGET_EVERY_MS = 3600 * 1000

# Upkeep deletes at most this share of a tier per round when trimming to the maximum size.
TRIM_FRACTION = 8


class HistoryWriter:
    def __init__(
        self,
        path: Path,
        tiers: tuple[Tier, ...],
        max_bytes: int | None = None,
        upkeep_every: float = 60.0,
    ) -> None:
        self.path, self.tiers, self.max_bytes = path, tiers, max_bytes
        self.upkeep_every_ms = int(upkeep_every * 1000)
        self.conn = history_db.connect(path, writer=True)
        history_db.create_schema(self.conn, tiers)
        self._ids: dict[SeriesKey, int] = {
            (kind, ns, name, container): sid
            for sid, kind, ns, name, container in self.conn.execute(
                "SELECT id, kind, namespace, name, container FROM series"
            )
        }
        # The newest timestamp written per series: a repeated or older sample (a node
        # answering twice with the same reading, a resend after restart) is skipped so
        # that it is never counted twice in a bucket.
        self._last: dict[int, int] = dict(
            self.conn.execute("SELECT id, last_ms FROM series WHERE last_ms > 0")
        )
        self._open: list[dict[int, _Bucket]] = [{} for _ in tiers[1:]]
        self.newest_ms = history_db.newest_ms(self.conn) or 0
        self._upkeep_at = self._forget_at = self.newest_ms
        self._insert_raw = f"INSERT OR REPLACE INTO {tiers[0].table} VALUES (?, ?, ?, ?, ?)"
        self._upserts = [
            f"INSERT INTO {t.table} VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " n = n + excluded.n, cpu_sum = cpu_sum + excluded.cpu_sum,"
            " cpu_max = max(cpu_max, excluded.cpu_max),"
            " mem_sum = mem_sum + excluded.mem_sum, mem_max = max(mem_max, excluded.mem_max)"
            for t in tiers[1:]
        ]
        self.trimmed_rows = 0

    # -- writing -------------------------------------------------------------------
    def write(self, rows: Sequence[Row]) -> int:
        """Write samples in one transaction; returns how many were new."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            written = self._write(rows)
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

    def _write(self, rows: Sequence[Row]) -> int:
        ids, last = self._ids, self._last
        chunk_ms = self.tiers[0].chunk_ms
        raw: list[tuple[int, int, int, int, int]] = []
        for kind, ns, name, container, ts, cpu, mem in rows:
            key = (kind, ns, name, container)
            sid = ids.get(key)
            if sid is None:
                sid = ids[key] = self._new_series(key)
            ms = round(ts * 1000)
            if ms <= last.get(sid, -1):
                continue
            last[sid] = ms
            raw.append((ms // chunk_ms, sid, ms, cpu, mem))
        self.conn.executemany(self._insert_raw, raw)
        for tier, open_buckets, upsert in zip(
            self.tiers[1:], self._open, self._upserts, strict=True
        ):
            closed = self._bucket(tier.width * 1000, tier.chunk_ms, open_buckets, raw)
            self.conn.executemany(upsert, closed)
        if raw:
            self.newest_ms = max(self.newest_ms, max(r[2] for r in raw))
        return len(raw)

    @staticmethod
    def _bucket(
        width_ms: int,
        chunk_ms: int,
        open_buckets: dict[int, _Bucket],
        raw: list[tuple[int, int, int, int, int]],
    ) -> list[tuple[int, ...]]:
        """Add samples to their series' open bucket; returns the buckets they closed."""
        closed: list[tuple[int, ...]] = []
        for _, sid, ms, cpu, mem in raw:
            start = ms - ms % width_ms
            b = open_buckets.get(sid)
            if b is not None and b[0] == start:
                b[1] += 1
                b[2] += cpu
                b[4] += mem
                if cpu > b[3]:
                    b[3] = cpu
                if mem > b[5]:
                    b[5] = mem
                continue
            if b is not None:
                closed.append((b[0] // chunk_ms, sid, *b))
            open_buckets[sid] = [start, 1, cpu, cpu, mem, mem]
        return closed

    def _new_series(self, key: SeriesKey) -> int:
        row = self.conn.execute(
            "INSERT INTO series (kind, namespace, name, container) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO UPDATE SET kind = kind RETURNING id",
            key,
        ).fetchone()
        return int(row[0])

    # -- upkeep --------------------------------------------------------------------
    def _upkeep(self) -> None:
        self._upkeep_at = self.newest_ms
        self._close_stale_buckets()
        self.conn.executemany(
            "UPDATE series SET last_ms = ? WHERE id = ?",
            [(ms, sid) for sid, ms in self._last.items()],
        )
        for tier in self.tiers:
            cutoff = self.newest_ms - tier.retention * 1000
            self.conn.execute(
                f"DELETE FROM {tier.table} WHERE chunk <= ? AND ts < ?",
                (cutoff // tier.chunk_ms, cutoff),
            )
        if self.newest_ms - self._forget_at >= FORGET_EVERY_MS:
            self._forget_at = self.newest_ms
            self._forget_empty_series()
        if self.max_bytes is not None:
            self._trim()
        history_db.release_free_pages(self.conn)

    def _close_stale_buckets(self) -> None:
        """Write out buckets whose series went quiet (a deleted pod) once they are over."""
        for tier, open_buckets, upsert in zip(
            self.tiers[1:], self._open, self._upserts, strict=True
        ):
            over = self.newest_ms - tier.width * 1000
            stale = [sid for sid, b in open_buckets.items() if b[0] <= over]
            self.conn.executemany(
                upsert, [self._row(tier, sid, open_buckets.pop(sid)) for sid in stale]
            )

    def _save_last(self) -> None:
        self.conn.executemany(
            "UPDATE series SET last_ms = ? WHERE id = ?", [(ms, s) for s, ms in self._last.items()]
        )

    @staticmethod
    def _row(tier: Tier, sid: int, b: _Bucket) -> tuple[int, ...]:
        return (b[0] // tier.chunk_ms, sid, *b)

    def _forget_empty_series(self) -> None:
        """Drop series with no rows left in any tier and no open bucket (gone pods)."""
        held = set().union(*self._open) if self._open else set()
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
            while history_db.db_bytes(self.conn) > self.max_bytes:
                oldest, newest = self.conn.execute(
                    # Two subqueries: each is one seek to an end of the key; together
                    # in one SELECT, min() and max() would scan the table.
                    f"SELECT (SELECT min(chunk) FROM {tier.table}),"
                    f" (SELECT max(chunk) FROM {tier.table})"
                ).fetchone()
                if oldest is None:
                    break  # this tier is empty: go on to the next finer one
                step = max(1, (newest - oldest) // TRIM_FRACTION)
                cur = self.conn.execute(
                    f"DELETE FROM {tier.table} WHERE chunk < ?", (oldest + step,)
                )
                self.trimmed_rows += cur.rowcount
                history_db.release_free_pages(self.conn)
            else:
                return

    # -- closing -------------------------------------------------------------------
    def close(self) -> None:
        """Write out the open buckets (a restart merges into them) and close the file."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for tier, open_buckets, upsert in zip(
                self.tiers[1:], self._open, self._upserts, strict=True
            ):
                self.conn.executemany(
                    upsert, [self._row(tier, sid, b) for sid, b in open_buckets.items()]
                )
                open_buckets.clear()
            self._save_last()
            self.conn.execute("COMMIT")
            # Folds the WAL back into the file so that it is one self-contained file.
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()
