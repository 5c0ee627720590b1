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

What it costs (bench/history_cost.py): the recorder reads each node's rates straight
from the store's points into four lists (served_pods), and the writer stores a node's
scrape as one row and updates buckets element-wise (history_writer), so that recording
1,000 nodes adds a small share to the CPU of scraping them.
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from kubepulse.store import history_db, history_read
from kubepulse.store.history_read import HistoryPoint, HistoryStats, Latest, Resource
from kubepulse.store.history_writer import Batch, HistoryWriter, Row, SeriesKey, batches_of
from kubepulse.store.points import Containers, MetricsStore, Rate
from kubepulse.store.tiers import DEFAULT_TIERS, Tier, check_tiers

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


class NodeScrape(NamedTuple):
    """What HistoryRecorder queues for a stored node: its rate and its pods' points (a
    mapping the store replaces at the node's next scrape and never changes)."""

    name: str
    rate: Rate | None
    pods: Mapping[PodKey, Containers]


class Tick(NamedTuple):
    """The end of a scrape cycle: namespace totals are due; these nodes are gone."""

    dropped: tuple[str, ...]


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
        return 1 + sum(len(c) + 1 for c in item.pods.values())
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
        self._batcher = _Batcher()
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


PodKey = tuple[str, str]


def window(seconds: float) -> float:
    """round(seconds, 3) of a positive number, as rate() rounds a window, without going
    through a decimal string (as round() with digits does) unless it is near a tie.

    When seconds x 1000 is within a quarter of the whole number n, round() gives the
    double nearest n / 1000, and so does the division. Between two kubelet timestamps
    (whole milliseconds, ~2e-7 s apart as doubles near 1.7e9) it always is.
    """
    ms = seconds * 1000.0
    whole = int(ms + 0.5)
    if -0.25 < ms - whole < 0.25:
        return whole / 1000
    return round(seconds, 3)


class Columns:
    """Served containers of a node as columns, in the order they were read."""

    __slots__ = ("cpu", "mem", "names", "ts")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ts: list[float] = []
        self.cpu: list[int] = []
        self.mem: list[int] = []


PodUsage = tuple[PodKey, int, int, float, int]
"""(pod, nanocores, bytes, earliest timestamp, containers) of a servable pod: its served
containers' sums, as its PodMetrics serves them, at the time of the earliest of them
(PodRates.timestamp), and how many they are."""


def pod_usage(pods: Mapping[PodKey, Containers], columns: Columns | None = None) -> list[PodUsage]:
    """Every servable pod of one node, straight from its stored points; with `columns`,
    also every served container of those pods, appended in pod order.

    The rules of MetricsStore.pod_rates (every container needs two points; a container
    whose start time or counter went back, or whose window is not positive, is left
    out; a pod with no container left is not servable) without building the rates:
    this runs for every container of every node after each scrape (the history) and
    for every node scraped since a dashboard's last poll.
    """
    found: list[PodUsage] = []
    names = tss = cpus = mems = None
    if columns is not None:
        names, tss, cpus, mems = columns.names, columns.ts, columns.cpu, columns.mem
    # Containers read together share their timestamps: one window for a run of them.
    span, seconds = -1.0, 0.0
    for key, containers in pods.items():
        cpu = mem = served = 0
        earliest = math.inf
        for name, (last, prev) in containers.items():
            if prev is None:
                break
            last_ts, last_start, last_cpu, last_mem = last
            prev_ts, prev_start, prev_cpu, _ = prev
            if last_ts - prev_ts != span:
                span = last_ts - prev_ts
                seconds = window(span) if span > 0 else 0.0
            used = last_cpu - prev_cpu
            if last_start < prev_start or used < 0 or seconds <= 0:
                continue
            rate = int(used / seconds)
            cpu += rate
            mem += last_mem
            served += 1
            if last_ts < earliest:
                earliest = last_ts
            if names is not None:
                names.append(name)
                tss.append(last_ts)  # type: ignore[union-attr]
                cpus.append(rate)  # type: ignore[union-attr]
                mems.append(last_mem)  # type: ignore[union-attr]
        else:
            if served:
                found.append((key, cpu, mem, earliest, served))
            continue
        if names is not None and served:  # not servable after all: its containers go
            del names[-served:], tss[-served:], cpus[-served:], mems[-served:]  # type: ignore[index]
    return found


_PodKeys = tuple[list[str], tuple[SeriesKey, ...], SeriesKey]


class _Batcher:
    """Turns NodeScrapes and Ticks into batches, on the writer's thread: the rates of a
    node's containers, its pods as their sums, and a tick's namespace totals."""

    def __init__(self) -> None:
        # node -> namespace -> [cpu, memory, newest timestamp] of that node's pods
        self._namespaces: dict[str, dict[str, list[float]]] = {}
        # node -> pod -> (its served containers' names, their series keys, its own key):
        # the same tuples scrape after scrape, so the writer sees the same layout at once.
        self._keys: dict[str, dict[PodKey, _PodKeys]] = {}

    def node(self, scrape: NodeScrape) -> Batch:
        node_name, r = scrape.name, scrape.rate
        columns = Columns()
        usage = pod_usage(scrape.pods, columns)
        keys: list[SeriesKey] = []
        ts: list[float] = []
        cpu: list[int] = []
        mem: list[int] = []
        if r is not None:
            keys.append(("node", "", node_name, ""))
            ts.append(r.timestamp)
            cpu.append(r.cpu_nanocores)
            mem.append(r.working_set_bytes)
        before, now = self._keys.get(node_name, {}), {}
        names, at = columns.names, 0
        pod_keys: list[SeriesKey] = []
        for key, _, _, _, count in usage:  # the pods' containers, then the pods
            served = names[at : at + count]
            at += count
            known = before.get(key)
            if known is None or known[0] != served:
                containers = tuple([("container", key[0], key[1], n) for n in served])
                known = (served, containers, ("pod", key[0], key[1], ""))
            now[key] = known
            keys += known[1]
            pod_keys.append(known[2])
        self._keys[node_name] = now
        keys += pod_keys
        ts += columns.ts
        cpu += columns.cpu
        mem += columns.mem
        totals: dict[str, list[float]] = {}
        for key, c, m, earliest, _ in usage:
            ts.append(earliest)
            cpu.append(c)
            mem.append(m)
            total = totals.get(key[0])
            if total is None:
                totals[key[0]] = [c, m, earliest]
            else:
                total[0] += c
                total[1] += m
                if earliest > total[2]:
                    total[2] = earliest
        self._namespaces[node_name] = totals
        return Batch(node_name, tuple(keys), ts, cpu, mem)

    def tick(self, tick: Tick) -> list[Batch]:
        for node in tick.dropped:
            self._namespaces.pop(node, None)
            self._keys.pop(node, None)
        sums: dict[str, list[float]] = {}
        for per_node in self._namespaces.values():
            for ns, (cpu, mem, ts) in per_node.items():
                total = sums.setdefault(ns, [0, 0, 0.0])
                total[0] += cpu
                total[1] += mem
                total[2] = max(total[2], ts)
        return batches_of(
            [
                ("namespace", ns, "", "", ts, int(cpu), int(mem))
                for ns, (cpu, mem, ts) in sums.items()
            ],
            group="namespaces",
        )


class HistoryRecorder:
    """Feeds a History from a MetricsStore: the rates the metrics API serves.

    node_stored() records one node's rates (node, containers, and pods as the sum of
    their containers at their earliest container's time) right after the scrape manager
    stored the node, as one batch of the node's group. tick_done() records namespace
    totals once per tick, summed over the latest pods of every node, so that a
    namespace gets one point per tick instead of one per node.

    On the event loop both only queue what the store holds (the points the store will
    replace, never change): the rates are computed on the writer's thread, in the quiet
    after the scrape cycle, so that recording adds almost nothing to the scrapes' time.
    """

    def __init__(self, store: MetricsStore, history: History) -> None:
        self.store, self.history = store, history
        self._nodes: set[str] = set()

    def node_stored(self, node_name: str, pods: object = None) -> None:
        """Record what the store now serves for the node (`pods`, the scrape's, is not
        needed: the store holds exactly them)."""
        self._nodes.add(node_name)
        store = self.store
        self.history.record_scrape(
            NodeScrape(node_name, store.node(node_name), store.node_pods(node_name))
        )

    def tick_done(self, seconds: float = 0.0) -> None:
        """Record namespace totals; nodes the store dropped no longer count. Then the
        cycle is written."""
        dropped = tuple(n for n in self._nodes if self.store.generation(n) == 0)
        self._nodes.difference_update(dropped)
        self.history.record_tick(Tick(dropped))
