"""History: real SQLite files, timestamps from the data (simulated hours, no waiting)."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubepulse.history.file import History
from kubepulse.history.read import pick_tier
from kubepulse.history.recorder import HistoryRecorder
from kubepulse.history.tiers import DEFAULT_TIERS, Tier, parse_tiers
from kubepulse.history.writer import Row
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore
from tests.support import wait_for

T0 = 1_700_000_100.0  # a whole number of 15 minutes since the epoch: buckets start at T0
MIB = 1 << 20

NODE = ("node", "", "node-a", "")
POD = ("pod", "default", "web-0", "")
CONTAINER = ("container", "default", "web-0", "app")
NAMESPACE = ("namespace", "default", "", "")


def samples(
    key: tuple[str, str, str, str],
    start: float,
    count: int,
    interval: float,
    cpu: Callable[[int], int] = lambda i: (1000 + i) * 1000,
    mem: Callable[[int], int] = lambda i: MIB + i,
) -> list[Row]:
    return [(*key, start + i * interval, cpu(i), mem(i)) for i in range(count)]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "history.db")
    yield h
    h.close()


def feed(h: History, rows: list[Row], batch: int = 500) -> None:
    for i in range(0, len(rows), batch):
        assert h.record(rows[i : i + batch])
    assert h.flush(timeout=10)


def oldest(path: Path, width: int) -> int | None:
    """The start (ms) of the oldest chunk of a tier."""
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT min(start_ms) FROM chunks WHERE width = ?", (width,))
        return found.fetchone()[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("key", [NODE, POD, CONTAINER, NAMESPACE], ids=lambda k: k[0])
def test_every_kind_of_series_reads_back_raw_samples(
    history: History, key: tuple[str, str, str, str]
) -> None:
    feed(history, samples(key, T0, 4, 15.0))
    points = history.query(*key, T0, T0 + 60, step=15)
    assert [(p.timestamp, p.cpu_nanocores, p.memory_bytes) for p in points] == [
        (T0 + 15 * i, (1000 + i) * 1000, MIB + i) for i in range(4)
    ]


def test_series_are_told_apart_by_every_label(history: History) -> None:
    other = ("container", "default", "web-0", "sidecar")
    feed(history, samples(CONTAINER, T0, 2, 15.0) + samples(other, T0, 2, 15.0, cpu=lambda i: 7000))
    assert {p.cpu_nanocores for p in history.query(*other, T0, T0 + 30, 15)} == {7000}
    assert history.query("container", "kube-system", "web-0", "app", T0, T0 + 30, 15) == []


def test_one_minute_tier_keeps_average_and_max_after_raw_expires(history: History) -> None:
    # 2 h of 15 s samples: the first hour has left the raw tier, the 1m tier answers.
    values = [100_000, 300_000, 200_000, 400_000]  # per minute: average 250 us, max 400 us
    feed(history, samples(NODE, T0, 480, 15.0, cpu=lambda i: values[i % 4]))
    first_hour = history.query(*NODE, T0, T0 + 3540, step=60)
    assert len(first_hour) == 60
    assert {(p.cpu_nanocores, p.cpu_max) for p in first_hour} == {(250_000.0, 400_000.0)}
    # Retention drops whole chunks: at most one chunk (an eighth of the hour) beyond it.
    assert history.stats().rows["raw"] <= 3600 * 9 / 8 / 15 + 1


def test_fifteen_minute_tier_averages_its_minutes(tmp_path: Path) -> None:
    # 26 h of one sample a minute: the first two hours are only in the 15m tier.
    h = History(tmp_path / "h.db")
    try:
        feed(h, samples(POD, T0, 26 * 60, 60.0, mem=lambda i: MIB * (i % 15)))
        points = h.query(*POD, T0, T0 + 7200 - 1, step=900)
        assert [p.timestamp for p in points] == [T0 + 900 * i for i in range(8)]
        assert {p.memory_bytes for p in points} == {MIB * 7.0}  # mean of 0..14 MiB
        assert {p.memory_max for p in points} == {MIB * 14.0}
        assert h.stats().rows["1m"] <= 24 * 60 + 1
    finally:
        h.close()


@pytest.mark.parametrize(
    ("age", "step", "width"),
    [
        (600, 15, 0),  # within the raw hour, a fine step: raw
        (600, 60, 60),  # within the raw hour, a minute step: the 1m tier reads less
        (600, 3600, 900),
        (7200, 15, 60),  # raw no longer reaches back: the finest that does
        (2 * 86400, 60, 900),
        (90 * 86400, 60, 900),  # beyond everything: the longest history
    ],
)
def test_query_picks_the_tier_for_range_and_step(age: int, step: int, width: int) -> None:
    newest = 10_000_000.0
    assert pick_tier(DEFAULT_TIERS, int(newest * 1000), newest - age, step).width == width


def test_retention_drops_rows_older_than_each_tier_keeps(tmp_path: Path) -> None:
    tiers = parse_tiers("raw=10m,1m=1h,15m=3h")
    h = History(tmp_path / "h.db", tiers=tiers)
    try:
        feed(h, samples(NODE, T0, 5 * 60, 60.0))  # 5 h
        newest = T0 + (5 * 60 - 1) * 60
        for tier in tiers:
            ts = oldest(h.path, tier.width)
            assert ts is not None
            # Upkeep runs every simulated minute and drops whole chunks, which span at
            # most an eighth of a tier's retention: nothing older than that beyond it.
            assert ts >= (newest - tier.retention * 9 / 8 - 60) * 1000, tier.label
        assert h.query(*NODE, T0, T0 + 3600, 60) == []
    finally:
        h.close()


def test_series_of_a_gone_pod_are_forgotten_after_the_longest_retention(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db", tiers=parse_tiers("raw=10m,1m=20m"))
    try:
        rows = sorted(samples(POD, T0, 5, 60.0) + samples(NODE, T0, 60, 60.0), key=lambda r: r[4])
        for row in rows:  # a transaction a sample, as scrapes come
            feed(h, [row])
        assert h.stats().series == 2  # looked for once an hour of data
        for row in samples(NODE, T0 + 3600, 10, 60.0):
            feed(h, [row])
        assert h.stats().series == 1
        assert h.query(*POD, T0, T0 + 3600, 60) == []
    finally:
        h.close()


def test_max_size_trims_oldest_of_coarsest_tier_first(tmp_path: Path) -> None:
    tiers = parse_tiers("raw=30m,1m=2h,15m=30d")
    max_bytes = 3 << 20  # the empty file is ten 64 KiB pages
    h = History(tmp_path / "h.db", tiers=tiers, max_bytes=max_bytes, linger=0)
    rng = random.Random(3)
    try:
        keys = [("pod", "ns", f"pod-{i}", "") for i in range(400)]
        for step in range(12 * 24 * 4):  # 4 days of 5-minute samples, values that vary
            ts = T0 + step * 300
            rows = [(*k, ts, rng.randrange(10**9), rng.randrange(1 << 32)) for k in keys]
            assert h.record(rows, group="node-a")
        assert h.flush(timeout=60)
        stats = h.stats()
        assert stats.db_bytes <= max_bytes
        assert stats.trimmed_rows > 0
        newest = T0 + (12 * 24 * 4 - 1) * 300
        assert (oldest(h.path, 900) or 0) > T0 * 1000  # the oldest days went
        raw = oldest(h.path, 0)
        assert raw is not None and raw >= (newest - 1800 * 9 / 8 - 300) * 1000  # finer kept
        assert stats.rows["raw"] >= 400 * 6  # 30 min of 5-min samples, all of them
        assert len(h.query(*keys[0], newest - 1800, newest, 300)) == 7
    finally:
        h.close()


def _tick(keys: list[tuple[str, str, str, str]], ts: float) -> list[Row]:
    return [(*k, ts, 1000, MIB) for k in keys]


def test_restart_keeps_history_and_completes_open_buckets(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    before = samples(NODE, T0, 10, 15.0, cpu=lambda i: 100_000 * i)  # 2.5 minutes
    after = samples(NODE, T0 + 150, 10, 15.0, cpu=lambda i: 100_000 * (i + 10))
    h = History(path)
    feed(h, before)
    h.close()
    h = History(path)
    try:
        # The last sample resent after the restart must not count twice.
        feed(h, [before[-1], *after])
        assert len(h.query(*NODE, T0, T0 + 300, 15)) == 20
        minutes = h.query(*NODE, T0, T0 + 239, 60)
        assert [p.cpu_nanocores for p in minutes] == [150e3, 550e3, 950e3, 1350e3]
        assert [p.cpu_max for p in minutes] == [300e3, 700e3, 1100e3, 1500e3]
    finally:
        h.close()


def test_a_file_of_another_schema_is_set_aside_and_a_new_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "h.db"
    History(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema'")
    h = History(path)
    try:
        feed(h, samples(NODE, T0, 4, 15.0))
        assert len(h.query(*NODE, T0, T0 + 60, 15)) == 4
    finally:
        h.close()
    (aside,) = tmp_path.glob("h.db.schema-99-*Z")
    with sqlite3.connect(aside) as conn:  # kept as it was, for a kubepulse that reads it
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (99,)
    assert f"moved it to {aside}" in caplog.text


def test_someone_elses_database_is_neither_written_nor_moved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kubepulse.history.file")
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.close()
    before = path.read_bytes()

    h = History(path)
    try:
        assert h.record(samples(NODE, T0, 4, 15.0))
        assert h.flush(timeout=30)
        said = (
            "it is a SQLite database that kubepulse did not make (its tables: notes):"
            " give the history a file of its own"
        )
        assert h.open_error == said
        assert h.dropped_rows == 4
        with pytest.raises(sqlite3.OperationalError, match="did not make"):
            h.query(*NODE, T0, T0 + 60, 15)
    finally:
        h.close()

    # Not a byte changed (no tables added, no journal mode), nothing moved aside.
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    assert "cannot open" in caplog.text and "did not make" in caplog.text
    assert "recording in" not in caplog.text


def test_the_log_says_recording_once_the_file_is_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kubepulse.history.file")
    h = History(tmp_path / "h.db")
    try:
        feed(h, samples(NODE, T0, 2, 15.0))
    finally:
        h.close()
    said = [r.getMessage() for r in caplog.records if "recording" in r.getMessage()]
    assert said == [f"history: recording in {tmp_path / 'h.db'}"]


async def test_slow_disk_never_blocks_the_event_loop_and_drops_are_counted(
    tmp_path: Path,
) -> None:
    h = History(tmp_path / "h.db", queue_batches=4)
    assert await asyncio.to_thread(h.flush, 10.0)  # opened
    # Another connection holds the write lock: the writer waits on it like on a slow disk.
    blocker = sqlite3.connect(h.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert h.record(samples(NODE, T0, 1, 15.0))
        h.commit_soon()  # as at the end of a scrape cycle
        await asyncio.to_thread(wait_for, lambda: h.writing, 5.0, "writer stuck on the lock")
        other_task = asyncio.Event()
        asyncio.get_running_loop().call_soon(other_task.set)
        accepted, slowest = [], 0.0
        for i in range(10):
            begun = time.perf_counter()
            accepted.append(h.record(samples(NODE, T0 + 15 * (i + 1), 1, 15.0)))
            slowest = max(slowest, time.perf_counter() - begun)
        await asyncio.wait_for(other_task.wait(), timeout=1.0)
        assert h.writing, "the writer was still stuck while the loop ran"
        assert accepted == [True] * 4 + [False] * 6
        assert slowest < 0.05
        assert (h.stats().dropped_rows, h.dropped_batches) == (6, 6)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await asyncio.to_thread(h.flush, 10.0)
    assert len(h.query(*NODE, T0, T0 + 300, 15)) == 5
    await asyncio.to_thread(h.close)


def test_readers_do_not_wait_for_an_open_write_transaction(history: History) -> None:
    feed(history, samples(NODE, T0, 4, 15.0))
    writer = sqlite3.connect(history.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM chunks")
    try:
        begun = time.monotonic()
        assert len(history.query(*NODE, T0, T0 + 60, 15)) == 4  # the committed data
        assert time.monotonic() - begun < 1.0  # no busy wait (busy_timeout is 10 s)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_concurrent_readers_see_growing_history_while_it_is_written(history: History) -> None:
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                seen.append(len(history.query(*NODE, T0, T0 + 10_000, 15)))
        except BaseException as err:
            errors.append(err)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(200):
            history.record(samples(NODE, T0 + 15 * i, 1, 15.0))
            if i % 20 == 0:
                history.flush(timeout=10)
        history.flush(timeout=10)
        wait_for(lambda: seen and seen[-1] == 200, 10, "a reader to see every sample")
    finally:
        done.set()
        for t in readers:
            t.join()
    assert errors == []
    assert min(seen) < 200  # some reads ran while writing went on


def test_recorder_records_the_rates_the_store_serves(history: History) -> None:
    store = MetricsStore(resolution=15.0)
    recorder = HistoryRecorder(store, history)
    for i, ts in enumerate((T0, T0 + 15, T0 + 30)):
        for node, namespace in (("node-a", "default"), ("node-b", "kube-system")):
            pods = (
                _pod(namespace, f"{node}-web", ts, i, ["app", "sidecar"]),
                _pod("default", f"{node}-job", ts, i, ["main"]),
            )
            store.store(
                node, NodeSample(node, T0 - 86400, Usage(ts, i * 15 * 10**9, 8 * MIB)), pods
            )
            recorder.node_stored(node)
        recorder.tick_done()
    assert history.flush(timeout=10)
    node = history.query("node", "", "node-a", "", T0, T0 + 30, 15)
    assert [(p.timestamp, p.cpu_nanocores) for p in node] == [(T0 + 15, 1e9), (T0 + 30, 1e9)]
    served = store.pod("node-a", "default", "node-a-web")
    assert served is not None
    app = history.query("container", "default", "node-a-web", "app", T0 + 30, T0 + 30, 15)
    assert app[0].cpu_nanocores == dict(served.containers)["app"].cpu_nanocores
    pod = history.query("pod", "default", "node-a-web", "", T0 + 30, T0 + 30, 15)
    assert pod[0].cpu_nanocores == sum(c.cpu_nanocores for _, c in served.containers)
    default = history.query("namespace", "default", "", "", T0 + 30, T0 + 30, 15)
    kube_system = history.query("namespace", "kube-system", "", "", T0 + 30, T0 + 30, 15)
    per_container = 2 * 10**8  # see _pod
    assert default[0].cpu_nanocores == 4 * per_container  # a-web (2) + 2 jobs
    assert kube_system[0].memory_bytes == 2 * 16 * MIB


def test_namespace_totals_forget_nodes_the_store_dropped(history: History) -> None:
    store = MetricsStore(resolution=15.0)
    recorder = HistoryRecorder(store, history)
    for i, ts in enumerate((T0, T0 + 15, T0 + 30)):
        for node in ("node-a", "node-b"):
            if node == "node-b" and i == 2:
                store.forget(node)
                continue
            pods = (_pod("default", f"{node}-web", ts, i, ["app"]),)
            store.store(node, None, pods)
            recorder.node_stored(node)
        recorder.tick_done()
    assert history.flush(timeout=10)
    total = history.query("namespace", "default", "", "", T0, T0 + 30, 15)
    assert [p.memory_bytes for p in total] == [2 * 16 * MIB, 16 * MIB]


def test_the_cluster_series_is_the_sum_of_the_nodes_it_still_has(history: History) -> None:
    store = MetricsStore(resolution=15.0)
    recorder = HistoryRecorder(store, history)
    cores = {"node-a": 1, "node-b": 3}  # each node's CPU rate, in cores
    for i, ts in enumerate((T0, T0 + 15, T0 + 30, T0 + 45)):
        for node, rate in cores.items():
            if node == "node-b" and i == 3:
                store.forget(node)
                continue
            usage = Usage(ts, i * 15 * rate * 10**9, rate * 100 * MIB)
            store.store(node, NodeSample(node, T0 - 86400, usage), ())
            recorder.node_stored(node)
        recorder.tick_done()
    assert history.flush(timeout=10)
    total = history.query("cluster", "", "", "", T0, T0 + 45, 15)
    assert [(p.timestamp, p.cpu_nanocores, p.memory_bytes) for p in total] == [
        (T0 + 15, 4e9, 400 * MIB),
        (T0 + 30, 4e9, 400 * MIB),
        (T0 + 45, 1e9, 100 * MIB),  # node-b is gone: its last rate no longer counts
    ]


def _pod(namespace: str, name: str, ts: float, i: int, containers: list[str]) -> PodSample:
    """Each container uses 0.2 cores and 16 MiB."""
    return PodSample(
        namespace,
        name,
        f"uid-{name}",
        T0 - 3600,
        tuple(
            ContainerSample(c, T0 - 3600, Usage(ts, i * 15 * 2 * 10**8, 16 * MIB))
            for c in containers
        ),
    )


@pytest.mark.parametrize(
    ("text", "tiers"),
    [
        ("raw=1h,1m=24h,15m=30d", DEFAULT_TIERS),
        ("raw=2h", (Tier(0, 7200),)),
        ("raw=10m, 30s=1h", (Tier(0, 600), Tier(30, 3600))),
    ],
)
def test_tiers_parse(text: str, tiers: tuple[Tier, ...]) -> None:
    assert parse_tiers(text) == tiers


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("1m=24h", "first tier must be raw"),
        ("raw=1h,1m=24h,90s=30d", "multiple"),
        ("raw=1h,1m=30m", "keeps less"),
        ("raw=1h,1m", "WIDTH=RETENTION"),
        ("raw=1y", "invalid duration"),
    ],
)
def test_bad_tiers_are_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_tiers(text)


def test_buckets_of_scrapes_read_apart_match_their_samples(tmp_path: Path) -> None:
    """Batches of many series, each sample a few seconds before its scrape (so scrapes
    straddle bucket boundaries), with repeated samples and one that comes after others
    of its scrape moved on to the next bucket: every coarse bucket holds the average and
    maximum of its samples (to the 10 microcores a bucket keeps: history/chunks.py)."""
    rng = random.Random(5)
    keys = [("container", "ns", f"pod-{i // 2}", f"c{i % 2}") for i in range(40)]
    lagging = {48: T0 + 712.0, 49: T0 + 712.0, 50: T0 + 719.5}  # keys[0]: late at 50
    written: dict[tuple[str, str, str, str], dict[float, int]] = {}
    h = History(tmp_path / "h.db")
    try:
        last: dict[tuple[str, str, str, str], float] = {}
        for scrape in range(80):  # 20 minutes of 15 s scrapes
            at = T0 + 15 * scrape + 4  # a bucket starts within every 4th scrape
            rows: list[Row] = []
            for key in keys:
                ts = round(at - rng.uniform(0, 8), 3)
                if scrape % 7 == 3 and key in last:
                    ts = last[key]  # not refreshed since the last scrape: a repeat
                if key == keys[0] and scrape in lagging:
                    ts = lagging[scrape]
                cpu = rng.randint(0, 10**6) * 1000
                if ts != last.get(key):
                    written.setdefault(key, {})[ts] = cpu
                last[key] = ts
                rows.append((*key, ts, cpu, rng.randint(0, 10**10)))
            assert h.record(rows, group="node-a")
        h.close()  # writes the open buckets
        h = History(tmp_path / "h.db")
        for width in (60, 900):
            for key in keys[:6]:
                expected: dict[float, list[int]] = {}
                for ts, cpu in written[key].items():
                    expected.setdefault(ts // width * width, []).append(cpu)
                points = h.query(*key, T0 - width, T0 + 1200, step=width)
                assert [p.timestamp for p in points] == sorted(expected)
                for p in points:
                    values = expected[p.timestamp]
                    assert abs(p.cpu_nanocores - sum(values) / len(values)) <= 5000
                    assert abs(p.cpu_max - max(values)) <= 5000
        minute = h.query(*keys[0], T0 + 660, T0 + 719.9, step=60)
        assert [p.timestamp for p in minute] == [T0 + 660]
        assert (T0 + 719.5) in written[keys[0]]  # the late sample is in that minute
    finally:
        h.close()


def test_a_file_of_schema_2_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with sqlite3.connect(path) as conn:  # what the last kubepulse wrote: a row per sample
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID")
        conn.execute("INSERT INTO meta VALUES ('schema', 2), ('newest_ms', 5)")
        conn.execute(
            "CREATE TABLE series (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
            " namespace TEXT NOT NULL, name TEXT NOT NULL, container TEXT NOT NULL,"
            " last_ms INTEGER NOT NULL DEFAULT 0, UNIQUE (kind, namespace, name, container))"
        )
        conn.execute("INSERT INTO series VALUES (1, 'node', '', 'node-a', '', 5)")
        conn.execute(
            "CREATE TABLE samples_raw (chunk INTEGER, series_id INTEGER, ts INTEGER,"
            " cpu INTEGER, mem INTEGER, PRIMARY KEY (chunk, series_id, ts)) WITHOUT ROWID"
        )
    h = History(path)
    try:
        feed(h, samples(NODE, T0, 4, 15.0))
        assert len(h.query(*NODE, T0, T0 + 60, 15)) == 4
        assert h.stats().series == 1
    finally:
        h.close()
