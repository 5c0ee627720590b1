"""Metrics history in SQLite: every scrape recorded, kept in tiers, read by the dashboard.

    history = History(state_dir / "history.db")          # opens (or reopens) the file
    recorder = HistoryRecorder(metrics_store, history)
    ...                                                  # after store.store(node, ...):
    recorder.node_stored(node.name)                      # on the event loop, never blocks
    recorder.tick_done()                                 # namespace totals, once a tick
    history.query("pod", "default", "web-0", "", start, end, step=60)
    history.close()

Writing happens on one thread behind a bounded queue: record() only appends to the
queue and returns, so the event loop never waits for SQLite or the disk. When the disk
cannot keep up and the queue is full, a batch is dropped and counted (stats()), never
waited for: the live API matters more than a complete history.

What it costs (bench/history_cost.py): the recorder reads each node's rates straight
from the store's points into four lists (served_pods), and the writer stores a node's
scrape as one row and updates buckets element-wise (history_writer), so that recording
1,000 nodes adds a small share to the CPU of scraping them.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubepulse.history import db as history_db
from kubepulse.history import read as history_read
from kubepulse.history.read import HistoryPoint, HistoryStats, Latest, Metric
from kubepulse.history.recorder import Batcher, NodeScrape, Tick
from kubepulse.history.tiers import DEFAULT_TIERS, Tier, check_tiers
from kubepulse.history.writer import Batch, HistoryWriter, Row, batches_of

log = logging.getLogger(__name__)

DEFAULT_QUEUE_BATCHES = 2048
"""Batches (one node's scrape each, ~10 KB) the queue holds: a whole tick at 2,000 nodes,
beyond which the disk is not keeping up."""

MAX_ROWS_PER_TRANSACTION = 100_000

DEFAULT_LINGER = 10.0
"""Seconds the writer waits for more batches after the first one before it writes them,
unless told sooner: HistoryRecorder tells it when a scrape cycle is over (commit_soon)."""


class _Flush(threading.Event):
    """Queued behind the batches before it: set once they are committed."""


@dataclass(frozen=True, slots=True)
class _Rows:
    """What record() queues: rows to put in batches on the writer's thread."""

    rows: Sequence[Row]
    group: str


_Work = Sequence[Batch] | _Rows | NodeScrape | Tick
_Item = _Work | _Flush | None  # None stops the writer


def _samples_in(item: _Work) -> int:
    """How many samples a queued item would have written (for the count of drops)."""
    if isinstance(item, NodeScrape):
        return 1 + item.pods.samples()
    if isinstance(item, Tick):
        return 0
    if isinstance(item, _Rows):
        return len(item.rows)
    return sum(len(b.keys) for b in item)


class History:
    def __init__(
        self,
        path: Path,
        tiers: tuple[Tier, ...] = DEFAULT_TIERS,
        max_bytes: int | None = None,
        queue_batches: int = DEFAULT_QUEUE_BATCHES,
        upkeep_every: float = 60.0,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        check_tiers(tiers)
        self.path, self.tiers, self.max_bytes = path, tiers, max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = HistoryWriter(path, tiers, max_bytes, upkeep_every)
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_batches)
        self.linger = linger
        self._hurry = threading.Event()
        self._batcher = Batcher()
        self.dropped_rows = 0
        self.dropped_batches = 0
        self.failed_rows = 0
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self.writing = False
        """True while the writer is inside a transaction (how long the disk takes)."""
        self._thread = threading.Thread(target=self._run, name="kubepulse-history", daemon=True)
        self._thread.start()

    # -- writing (any thread, never blocks) ----------------------------------------
    def record(self, rows: Sequence[Row], group: str = "") -> bool:
        """Queue samples for writing; False when the queue was full and they were dropped.
        `group`: what sends these series together again and again (a node's name), for
        the writer to store them as one row (history_writer)."""
        if not rows:
            return True
        return self._put(_Rows(rows, group))

    def record_batch(self, batch: Batch) -> bool:
        """record() of a batch already in columns."""
        return True if not batch.keys else self._put([batch])

    def record_scrape(self, scrape: NodeScrape) -> bool:
        """Queue a node's stored points, for the writer's thread to record their rates."""
        return self._put(scrape)

    def record_tick(self, tick: Tick) -> bool:
        """Queue the end of a scrape cycle (namespace totals), and write the cycle now."""
        queued = self._put(tick)
        self.commit_soon()
        return queued

    def _put(self, item: _Work) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped_rows += _samples_in(item)
            self.dropped_batches += 1
            return False
        if self._queue.qsize() * 2 > self._queue.maxsize:
            self._hurry.set()  # half full: write now rather than drop later
        return True

    def commit_soon(self) -> None:
        """Write what is queued now instead of after the linger (never blocks)."""
        self._hurry.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed. Blocks: not on the loop."""
        done = _Flush()
        self._queue.put(done, timeout=timeout)
        self._hurry.set()
        return done.wait(timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        stop = False
        while not stop:
            item: _Item = self._queue.get()
            batches: list[Batch] = []
            samples = 0
            flushes: list[_Flush] = []
            # A scrape cycle's batches go into one transaction, written in the quiet after
            # the cycle (commit_soon), or `linger` after the first batch: one commit (and
            # one fsync at checkpoints) per cycle instead of one per node, and the
            # writer's Python does not compete with the scrapes' for the interpreter
            # lock. The thread sleeps meanwhile instead of waking for every batch; a
            # flush, close or a half-full queue wakes it too.
            if item is not None and not isinstance(item, (_Flush, Tick)):
                self._hurry.wait(self.linger)
            self._hurry.clear()
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, _Flush):
                    flushes.append(item)
                else:
                    samples += self._take(item, batches)
                if stop or flushes or samples >= MAX_ROWS_PER_TRANSACTION:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batches:
                self.writing = True
                try:
                    self._writer.write(batches)
                except Exception as err:  # the disk, or a bug: never the thread's end
                    self.failed_rows += samples
                    log.warning("history: dropped %d samples: %s", samples, err)
                finally:
                    self.writing = False
            for done in flushes:
                done.set()
        self._writer.close()

    def _take(self, item: _Work, batches: list[Batch]) -> int:
        """Add a queued item's batches; returns how many samples they hold."""
        try:
            if isinstance(item, NodeScrape):
                found = [self._batcher.node(item)]
            elif isinstance(item, Tick):
                found = self._batcher.tick(item)
            elif isinstance(item, _Rows):
                found = batches_of(item.rows, item.group)
            else:
                found = list(item)
        except Exception as err:  # a bug: logged, never the thread's end
            self.failed_rows += _samples_in(item)
            log.warning("history: cannot record %s: %s", type(item).__name__, err)
            return 0
        found = [b for b in found if b.keys]  # a node's first scrape has no rates yet
        batches.extend(found)
        return sum(len(b.keys) for b in found)

    def close(self) -> None:
        """Write what is queued, close the buckets, and close the file."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._hurry.set()
        self._thread.join()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    # -- reading (any thread; each thread gets its own connection) -----------------
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = history_db.connect(self.path, writer=False)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def query(
        self,
        kind: str,
        namespace: str,
        name: str,
        container: str,
        start: float,
        end: float,
        step: float,
    ) -> list[HistoryPoint]:
        key = (kind, namespace, name, container)
        return history_read.query(self._reader(), self.tiers, key, start, end, step)

    def top(
        self, kind: str, resource: Metric, at: float | None = None, limit: int = 10
    ) -> list[Latest]:
        return history_read.top(self._reader(), self.tiers, kind, resource, at, limit)

    def namespaces_totals(self, at: float | None = None) -> dict[str, Latest]:
        return history_read.namespaces_totals(self._reader(), self.tiers, at)

    def stats(self) -> HistoryStats:
        conn = self._reader()
        rows, series = history_read.counts(conn, self.tiers)
        newest = history_db.newest_ms(conn)
        return HistoryStats(
            rows=rows,
            series=series,
            db_bytes=history_db.db_bytes(conn),
            wal_bytes=history_db.wal_bytes(self.path),
            max_bytes=self.max_bytes,
            dropped_rows=self.dropped_rows,
            failed_rows=self.failed_rows,
            trimmed_rows=self._writer.trimmed_rows,
            newest=newest / 1000 if newest is not None else None,
        )
