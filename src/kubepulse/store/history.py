"""Metrics history in SQLite: every scrape recorded, kept in tiers, read by the dashboard.

    history = History(state_dir / "history.db")          # opens (or reopens) the file
    recorder = HistoryRecorder(metrics_store, history)
    ...                                                  # after store.store(node, ...):
    recorder.node_stored(node.name, pods)                # on the event loop, never blocks
    recorder.tick_done(seconds)                          # namespace totals, once a tick
    history.query("pod", "default", "web-0", "", start, end, step=60)
    history.close()

Writing happens on one thread behind a bounded queue: record() only appends to the
queue and returns, so the event loop never waits for SQLite or the disk. When the disk
cannot keep up and the queue is full, a batch is dropped and counted (stats()), never
waited for: the live API matters more than a complete history.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from kubepulse.model import PodSample
from kubepulse.store import history_db, history_read
from kubepulse.store.history_read import HistoryPoint, HistoryStats, Latest, Resource
from kubepulse.store.history_writer import HistoryWriter, Row
from kubepulse.store.points import MetricsStore
from kubepulse.store.tiers import DEFAULT_TIERS, Tier, check_tiers

log = logging.getLogger(__name__)

DEFAULT_QUEUE_BATCHES = 2048
"""Batches (one node's scrape each, ~10 KB) the queue holds: a whole tick at 2,000 nodes,
beyond which the disk is not keeping up."""

MAX_ROWS_PER_TRANSACTION = 100_000


class _Flush(threading.Event):
    """Queued behind the batches before it: set once they are committed."""


_Item = Sequence[Row] | _Flush | None  # None stops the writer


class History:
    def __init__(
        self,
        path: Path,
        tiers: tuple[Tier, ...] = DEFAULT_TIERS,
        max_bytes: int | None = None,
        queue_batches: int = DEFAULT_QUEUE_BATCHES,
        upkeep_every: float = 60.0,
    ) -> None:
        check_tiers(tiers)
        self.path, self.tiers, self.max_bytes = path, tiers, max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = HistoryWriter(path, tiers, max_bytes, upkeep_every)
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_batches)
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
    def record(self, rows: Sequence[Row]) -> bool:
        """Queue samples for writing; False when the queue was full and they were dropped."""
        if not rows:
            return True
        try:
            self._queue.put_nowait(rows)
        except queue.Full:
            self.dropped_rows += len(rows)
            self.dropped_batches += 1
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed. Blocks: not on the loop."""
        done = _Flush()
        self._queue.put(done, timeout=timeout)
        return done.wait(timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            rows: list[Row] = []
            flushes: list[_Flush] = []
            # Everything already waiting goes into one transaction: one commit (and one
            # fsync at checkpoints) per burst instead of one per node.
            while True:
                item = items.pop()
                if item is None:
                    stop = True
                elif isinstance(item, _Flush):
                    flushes.append(item)
                else:
                    rows.extend(item)
                if stop or len(rows) >= MAX_ROWS_PER_TRANSACTION:
                    break
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if rows:
                self.writing = True
                try:
                    self._writer.write(rows)
                except sqlite3.Error as err:
                    self.failed_rows += len(rows)
                    log.warning("history: dropped %d samples: %s", len(rows), err)
                finally:
                    self.writing = False
            for done in flushes:
                done.set()
        self._writer.close()

    def close(self) -> None:
        """Write what is queued, close the buckets, and close the file."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
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
        self, kind: str, resource: Resource, at: float | None = None, limit: int = 10
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


class HistoryRecorder:
    """Feeds a History from a MetricsStore: the rates the metrics API serves.

    node_stored() records one node's rates (node, pods as the sum of their containers,
    containers) right after the scrape manager stored the node. tick_done() records
    namespace totals once per tick, summed over the latest pods of every node, so that a
    namespace gets one point per tick instead of one per node.
    """

    def __init__(self, store: MetricsStore, history: History) -> None:
        self.store, self.history = store, history
        # node -> namespace -> [cpu, memory, newest timestamp] of that node's pods
        self._namespaces: dict[str, dict[str, list[float]]] = {}

    def node_stored(
        self, node_name: str, pods: Iterable[PodSample] | Iterable[tuple[str, str]]
    ) -> None:
        rows: list[Row] = []
        r = self.store.node(node_name)
        if r is not None:
            rows.append(
                ("node", "", node_name, "", r.timestamp, r.cpu_nanocores, r.working_set_bytes)
            )
        totals: dict[str, list[float]] = {}
        for p in pods:
            ns, name = (p.namespace, p.name) if isinstance(p, PodSample) else p
            rates = self.store.pod(node_name, ns, name)
            if rates is None:
                continue
            cpu = mem = 0
            for cname, c in rates.containers:
                rows.append(
                    (
                        "container",
                        ns,
                        name,
                        cname,
                        c.timestamp,
                        c.cpu_nanocores,
                        c.working_set_bytes,
                    )
                )
                cpu += c.cpu_nanocores
                mem += c.working_set_bytes
            rows.append(("pod", ns, name, "", rates.timestamp, cpu, mem))
            total = totals.setdefault(ns, [0, 0, 0.0])
            total[0] += cpu
            total[1] += mem
            total[2] = max(total[2], rates.timestamp)
        self._namespaces[node_name] = totals
        self.history.record(rows)

    def tick_done(self, seconds: float = 0.0) -> None:
        """Record namespace totals; nodes the store dropped no longer count."""
        for node in [n for n in self._namespaces if self.store.generation(n) == 0]:
            del self._namespaces[node]
        sums: dict[str, list[float]] = {}
        for per_node in self._namespaces.values():
            for ns, (cpu, mem, ts) in per_node.items():
                total = sums.setdefault(ns, [0, 0, 0.0])
                total[0] += cpu
                total[1] += mem
                total[2] = max(total[2], ts)
        self.history.record(
            [
                ("namespace", ns, "", "", ts, int(cpu), int(mem))
                for ns, (cpu, mem, ts) in sums.items()
            ]
        )
