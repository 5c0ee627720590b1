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

History never takes the API down. The file is opened on the writer's thread and
checked (`PRAGMA quick_check`); a file that is not a history kubepulse can use (damaged,
truncated, a directory, another schema) is moved aside as `history.db.corrupt-TIME`
(or `.schema-N-TIME`) with a WARNING naming both, and a new one started, also when
SQLite finds damage at run time. A file that cannot be opened or written (a full disk,
no permission) leaves the API running without history or with what is in memory, says
SQLite's words once, and is tried again every `retry_every` seconds.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubepulse.history import db as history_db
from kubepulse.history import read as history_read
from kubepulse.history.chunks import join
from kubepulse.history.db import ForeignDatabase, HistoryFileError
from kubepulse.history.read import Damage, HistoryHealth, HistoryPoint, HistoryStats
from kubepulse.history.recorder import Batcher, NodeScrape, Tick
from kubepulse.history.tiers import DEFAULT_TIERS, Tier, check_tiers
from kubepulse.history.writer import RAW_ROWS, RAW_SEAL, Batch, HistoryWriter, Row, batches_of
from kubepulse.model import PressureReading

log = logging.getLogger(__name__)

DEFAULT_QUEUE_BATCHES = 2048
"""Batches (one node's scrape each, ~10 KB) the queue holds: a whole tick at 2,000 nodes,
beyond which the disk is not keeping up."""

MAX_ROWS_PER_TRANSACTION = 100_000

DEFAULT_RETRY = 30.0
"""Seconds between attempts to open a file that could not be opened (a full disk)."""

OPEN_WAIT = 30.0
"""Seconds a reader waits for the file to be opened (checked, migrated) at start."""

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


_Work = Sequence[Batch] | _Rows | NodeScrape | Tick | PressureReading
_Item = _Work | _Flush | None  # None stops the writer


def _samples_in(item: _Work) -> int:
    """How many samples a queued item would have written (for the count of drops)."""
    if isinstance(item, NodeScrape):
        return 1 + item.pods.samples()
    if isinstance(item, Tick):
        return 0
    if isinstance(item, PressureReading):
        return len(item.counters)
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
        raw_rows: int = RAW_ROWS,
        raw_seal: int = RAW_SEAL,
        retry_every: float = DEFAULT_RETRY,
    ) -> None:
        check_tiers(tiers)
        self.path, self.tiers, self.max_bytes = path, tiers, max_bytes
        self._writer_args = (tiers, max_bytes, upkeep_every, raw_rows, raw_seal)
        self._writer: HistoryWriter | None = None
        self._generation = 0
        """Counts the files opened: a reader's connection to an older one is replaced."""
        self.retry_every = retry_every
        self.open_error: str | None = None
        """Why the file cannot be opened now (SQLite's or the OS's words)."""
        self._next_try = 0.0
        self._opened = threading.Event()
        """Set once the first attempt to open the file is over, whatever came of it."""
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_batches)
        self.linger = linger
        self._hurry = threading.Event()
        self._batcher = Batcher()
        self.dropped_rows = 0
        self.dropped_batches = 0
        self.failed_rows = 0
        self.damage = Damage()
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
        the writer to store them as one layout (writer.py)."""
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

    def record_pressure(self, reading: PressureReading) -> bool:
        """Queue a read of a node's OOM and throttling counters (history/pressure.py)."""
        return self._put(reading)

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
        """Wait until everything queued so far is written (or kept in memory while the
        disk refuses it). Blocks: not on the loop."""
        done = _Flush()
        self._queue.put(done, timeout=timeout)
        self._hurry.set()
        return done.wait(timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        try:
            self._open()
        except Exception as err:  # a bug: logged, never the thread's end
            log.warning("history: cannot open %s: %s", self.path, err)
            self.open_error = str(err)
        self._opened.set()
        stop = False
        while not stop:
            item: _Item = self._queue.get()
            batches: list[Batch] = []
            readings: list[PressureReading] = []
            samples = 0
            flushes: list[_Flush] = []
            # A scrape cycle's batches are taken in the quiet after the cycle
            # (commit_soon), or `linger` after the first batch: the writer's Python
            # does not compete with the scrapes' for the interpreter lock. The thread
            # sleeps meanwhile instead of waking for every batch; a flush, close or a
            # half-full queue wakes it too.
            if item is not None and not isinstance(item, (_Flush, Tick)):
                self._hurry.wait(self.linger)
            self._hurry.clear()
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, _Flush):
                    flushes.append(item)
                elif isinstance(item, PressureReading):
                    readings.append(item)
                else:
                    samples += self._take(item, batches)
                if stop or flushes or samples >= MAX_ROWS_PER_TRANSACTION:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batches, samples, readings)
            for done in flushes:
                done.set()
        if self._writer is not None:
            self._writer.close()

    def _write(
        self, batches: list[Batch], samples: int, readings: Sequence[PressureReading] = ()
    ) -> None:
        writer = self._writer
        if writer is None:
            writer = self._retry()
        if writer is None:
            self.dropped_rows += samples
            return
        self.writing = True
        try:
            if readings:
                writer.take_pressure(readings)
            writer.write(batches)
        except HistoryFileError as err:  # SQLite found damage: a new file
            self.failed_rows += samples
            self._set_aside(writer, str(err))
        except Exception as err:  # a bug: logged, never the thread's end
            self.failed_rows += samples
            log.warning("history: dropped %d samples: %s", samples, err)
        finally:
            self.writing = False

    def _take(self, item: _Work, batches: list[Batch]) -> int:
        """Add a queued item's batches; returns how many samples they hold."""
        try:
            if isinstance(item, NodeScrape):
                found = [self._batcher.node(item)]
            elif isinstance(item, Tick):
                found = self._batcher.tick(item)
            elif isinstance(item, _Rows):
                found = batches_of(item.rows, item.group)
            elif isinstance(item, PressureReading):
                found = []  # not batches: _run hands them to the writer apart
            else:
                found = list(item)
        except Exception as err:  # a bug: logged, never the thread's end
            self.failed_rows += _samples_in(item)
            log.warning("history: cannot record %s: %s", type(item).__name__, err)
            return 0
        found = [b for b in found if b.keys]  # a node's first scrape has no rates yet
        batches.extend(found)
        return sum(len(b.keys) for b in found)

    # -- opening, and what goes wrong with the file --------------------------------
    def _open(self) -> HistoryWriter | None:
        """Open the file, setting aside one that cannot be used; None when it cannot be
        opened now (the reason in open_error, tried again later)."""
        self._next_try = time.monotonic() + self.retry_every
        for _ in range(3):  # a file set aside, then a new one: never a loop
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.path.is_dir() or (self.path.exists() and not self.path.is_file()):
                    raise HistoryFileError(f"{self.path} is not a file")
                writer = HistoryWriter(self.path, *self._writer_args)
            except HistoryFileError as err:
                self._set_aside(None, str(err))
                continue
            except ForeignDatabase as err:
                self._cannot_open(err)
                return None
            except sqlite3.DatabaseError as err:
                if not _damaged(err):
                    self._cannot_open(err)
                    return None
                self._set_aside(None, f"history file is damaged: {err}")
                continue
            except OSError as err:
                self._cannot_open(err)
                return None
            if self.open_error is not None:
                log.warning("history: %s opened; recording again", self.path)
            elif self._generation == 0:
                # Said here, once the file is open: a file that cannot be used says so
                # in a WARNING instead, and nothing claims it is being recorded.
                log.info("history: recording in %s", self.path)
            self.open_error = None
            self._generation += 1
            self._writer = writer
            return writer
        return None

    def _cannot_open(self, err: Exception) -> None:
        why = f"{err}{_free_space(self.path)}"
        if self.open_error != why:
            log.warning(
                "history: cannot open %s: %s; the API goes on without history,"
                " trying again every %g s",
                self.path,
                why,
                self.retry_every,
            )
        self.open_error = why

    def _retry(self) -> HistoryWriter | None:
        if time.monotonic() < self._next_try:
            return None
        return self._open()

    def _set_aside(self, writer: HistoryWriter | None, why: str) -> None:
        """Move the file (and its -wal and -shm) aside, never deleting it."""
        if writer is not None:
            self._writer = None
            writer.abandon()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        schema = _SCHEMA.search(why)
        suffix = f"schema-{schema.group(1)}-{stamp}" if schema else f"corrupt-{stamp}"
        aside = self.path.with_name(f"{self.path.name}.{suffix}")
        try:
            os.rename(self.path, aside)
            for extra in ("-wal", "-shm"):
                if Path(f"{self.path}{extra}").exists():
                    os.rename(f"{self.path}{extra}", f"{aside}{extra}")
        except OSError as err:
            log.warning("history: %s; cannot move it aside: %s", why, err)
            self.open_error = str(err)
            return
        log.warning("history: %s: moved it to %s and started a new %s", why, aside, self.path)

    def close(self) -> None:
        """Write what is queued, seal what is in memory, and close the file."""
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
    def _ready_writer(self) -> HistoryWriter:
        if not self._opened.wait(OPEN_WAIT):
            raise sqlite3.OperationalError("the history file is still being opened")
        writer = self._writer
        if writer is None:
            raise sqlite3.OperationalError(self.open_error or "the history file is closed")
        return writer

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation != self._generation:
            conn.close()
            conn = None
        if conn is None:
            conn = history_db.connect(self.path, writer=False)
            self._local.conn, self._local.generation = conn, self._generation
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
        """Points of one series in [start, end], one per step that holds data, oldest
        first. Steps are aligned to multiples of `step` since the epoch, so that the same
        step always buckets the same way, whatever the range."""
        if step <= 0:
            raise ValueError("step must be positive")
        if end < start:
            return []
        writer = self._ready_writer()
        conn = self._reader()
        step_ms = max(1, round(step * 1000))
        lo, hi = int(start * 1000) // step_ms * step_ms, int(end * 1000)
        # The file and the writer's memory at one moment: the writer commits under the
        # same lock, so a chunk is read from one or the other, never both or neither.
        key = (kind, namespace, name, container)
        with writer.lock:
            width = history_read.pick_tier(self.tiers, writer.newest_ms, start, step).width
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT 1 FROM meta LIMIT 1").fetchone()
                # The writer keeps the series of its groups; an ended pod's is in the file.
                sid = writer.series_id(key)
                if sid is None:
                    row = history_db.series_row(conn, key)
                    sid = row[0] if row is not None else None
                memory = writer.unsealed(sid, width) if sid is not None else []
            except BaseException:
                conn.execute("COMMIT")
                raise
        try:
            found = (
                history_read.stored(conn, sid, width, lo, hi, self.damage)
                if sid is not None
                else []
            )
        finally:
            conn.execute("COMMIT")
        return history_read.steps(join(found + memory), lo, hi, step_ms)

    def pods_since(self, since: float) -> dict[tuple[str, str], float]:
        """Pods with samples since `since` (seconds): (namespace, name) -> last seen."""
        writer = self._ready_writer()
        since_ms = int(since * 1000)
        with writer.lock:
            in_memory = writer.pods_since(since_ms)
        # Then the file, without the writer's lock (a scan of every pod): a series the
        # writer lets go after the lock was released has its last sample saved by a
        # commit before, so it is in one or the other.
        found = {
            (ns, name): int(ms)
            for ns, name, ms in self._reader().execute(
                "SELECT namespace, name, last_ms FROM series WHERE kind = 'pod' AND last_ms >= ?",
                (since_ms,),
            )
        }
        for key, ms in in_memory.items():
            found[key] = max(ms, found.get(key, 0))
        return {key: ms / 1000 for key, ms in found.items()}

    def containers_of(self, namespace: str, pod: str, since: float) -> list[str]:
        """The containers of a pod with samples written since `since` (seconds)."""
        writer = self._ready_writer()
        since_ms = int(since * 1000)
        with writer.lock:  # memory first, then the file (pods_since says why)
            found = writer.containers_of(namespace, pod, since_ms)
        found.update(
            c
            for (c,) in self._reader().execute(
                "SELECT container FROM series WHERE kind = 'container' AND namespace = ?"
                " AND name = ? AND last_ms >= ?",
                (namespace, pod, since_ms),
            )
        )
        return sorted(found)

    def health(self) -> HistoryHealth:
        """What /metrics says of the history: counters and sizes that cost no query."""
        writer = self._writer
        try:
            size = self.path.stat().st_size if writer is not None else 0
        except OSError:
            size = 0
        return HistoryHealth(
            open=writer is not None,
            file_bytes=size + history_db.wal_bytes(self.path),
            dropped_rows=self.dropped_rows,
            failed_rows=self.failed_rows
            + (writer.failed_rows + writer.lost_rows if writer is not None else 0),
            trimmed_rows=writer.trimmed_rows if writer is not None else 0,
            damaged_chunks=self.damage.chunks + (writer.damaged if writer is not None else 0),
            write_failing=writer is not None and writer.write_error is not None,
        )

    def stats(self) -> HistoryStats:
        writer = self._ready_writer()
        conn = self._reader()
        rows, sizes, series = history_read.counts(conn, self.tiers)
        newest = history_db.newest_ms(conn)
        return HistoryStats(
            rows=rows,
            payload_bytes=sizes,
            series=series,
            db_bytes=history_db.db_bytes(conn),
            wal_bytes=history_db.wal_bytes(self.path),
            max_bytes=self.max_bytes,
            dropped_rows=self.dropped_rows,
            failed_rows=self.failed_rows + writer.failed_rows + writer.lost_rows,
            trimmed_rows=writer.trimmed_rows,
            damaged_chunks=self.damage.chunks + writer.damaged,
            newest=newest / 1000 if newest is not None else None,
            write_error=writer.write_error,
        )


_SCHEMA = re.compile(r"has schema (\d+)")


def _free_space(path: Path) -> str:
    """What a full disk adds to SQLite's message, which may say only "disk I/O error"
    (its shared-memory file could not grow)."""
    try:
        found = os.statvfs(path.parent)
    except OSError:
        return ""
    free = found.f_bavail * found.f_frsize
    return f" ({free} bytes free on its disk)" if free < (1 << 20) else ""


def _damaged(err: sqlite3.DatabaseError) -> bool:
    text = str(err)
    return "malformed" in text or "not a database" in text or "corrupt" in text
