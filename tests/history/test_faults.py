"""History under faults: damaged files, a full disk, kill -9, a bad value among good ones.

Each is a real SQLite file; the full disk is a real 20 MB tmpfs (root: mount).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kubepulse.history.file import History
from kubepulse.history.tiers import parse_tiers
from kubepulse.history.writer import Batch
from tests.history.damage import parametrize_damage
from tests.support import fill, wait_for
from tests.support import small_disk as disk

T0 = 1_700_000_100.0
TIERS = parse_tiers("raw=1h,1m=24h,15m=30d")


def node_batch(group: str, ts: float, pods: int = 30, seed: int = 0) -> Batch:
    """A node's scrape: the node, `pods` pods of two containers; values that vary."""
    rng = np.random.default_rng(seed)
    keys = [("node", "", group, "")]
    for p in range(pods):
        keys += [("container", "ns", f"{group}-p{p}", c) for c in ("app", "sidecar")]
        keys.append(("pod", "ns", f"{group}-p{p}", ""))
    cpu = (rng.integers(1, 10**6, len(keys)) * 1000).tolist()
    mem = (rng.integers(1, 1 << 20, len(keys)) * 4096).tolist()
    return Batch(group, tuple(keys), [ts] * len(keys), cpu, mem)


def feed_scrapes(h: History, nodes: int, scrapes: int, start: float = T0) -> None:
    for s in range(scrapes):
        for n in range(nodes):
            assert h.record_batch(node_batch(f"node-{n}", start + 15 * s, seed=s * 1000 + n))
        h.commit_soon()
    assert h.flush(timeout=60)


def raw_count(h: History, node: str, start: float, end: float) -> int:
    return len(h.query("node", "", node, "", start, end, 15))


# -- files that cannot be used -------------------------------------------------------
@parametrize_damage()
def test_a_file_that_cannot_be_used_is_moved_aside_and_a_new_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    path = tmp_path / "history.db"
    h = History(path, TIERS)
    feed_scrapes(h, 20, 70)  # a few MB of chunks
    h.close()
    damage(path)  # type: ignore[operator]
    kept = sorted(p.name for p in tmp_path.iterdir())
    with caplog.at_level(logging.WARNING):
        h = History(path, TIERS)
        try:
            feed_scrapes(h, 2, 4, start=T0 + 3600)
            assert raw_count(h, "node-0", T0 + 3600, T0 + 3700) == 4
        finally:
            h.close()
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("history.db.corrupt-")]
    assert f"moved it to {aside} and started a new {path}" in caplog.text
    assert aside.name.endswith("Z")
    assert len(kept) == 1 or aside.is_dir()  # nothing of the old file deleted
    assert "Traceback" not in caplog.text


# -- a full disk ------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MB tmpfs (root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with disk(tmp_path / "disk") as mount:
        yield mount


@pytest.mark.root
def test_a_full_disk_at_start_leaves_history_off_then_it_opens_once_there_is_room(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    filler = fill(small_disk)
    path = small_disk / "history.db"
    with caplog.at_level(logging.WARNING):
        h = History(path, TIERS, retry_every=0.2, linger=0)
        try:
            assert h.record_batch(node_batch("node-0", T0))
            assert h.flush(timeout=10)  # nothing waits on a history that cannot open
            with pytest.raises(sqlite3.OperationalError, match=r"full|unable to open"):
                h.query("node", "", "node-0", "", T0, T0 + 60, 15)
            assert "the API goes on without history" in caplog.text
            filler.unlink()
            wait_for(lambda: _records(h, T0 + 15), 10, "history to open once there is room")
        finally:
            h.close()
    assert "Traceback" not in caplog.text


def _records(h: History, ts: float) -> bool:
    h.record_batch(node_batch("node-0", ts))
    h.flush(timeout=10)
    try:
        return raw_count(h, "node-0", ts, ts) == 1
    except sqlite3.OperationalError:
        return False


@pytest.mark.root
def test_a_full_disk_at_run_time_keeps_chunks_in_memory_and_writes_them_later(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_disk / "history.db"
    h = History(path, TIERS, linger=0)
    try:
        feed_scrapes(h, 10, 40)
        filler = fill(small_disk)
        with caplog.at_level(logging.WARNING):
            feed_scrapes(h, 10, 40, start=T0 + 600)  # seals chunks the disk refuses
            assert h.stats().write_error is not None
            assert "database or disk is full" in caplog.text  # SQLite's own words
            assert "cannot rollback" not in caplog.text
            # Readers still see every sample: the refused chunks are read from memory.
            assert raw_count(h, "node-3", T0, T0 + 1200) == 80
            filler.unlink()
            feed_scrapes(h, 10, 1, start=T0 + 1200)
            assert h.stats().write_error is None
        h.close()
        h = History(path, TIERS)
        assert raw_count(h, "node-3", T0, T0 + 1200) == 81  # nothing was lost
        assert h.stats().failed_rows == 0
    finally:
        h.close()
    assert "Traceback" not in caplog.text


@pytest.mark.root
def test_closing_while_the_disk_is_full_is_clean_and_says_what_was_not_written(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_disk / "history.db"
    h = History(path, TIERS, linger=0)
    feed_scrapes(h, 10, 40)
    fill(small_disk)
    with caplog.at_level(logging.WARNING):
        feed_scrapes(h, 10, 5, start=T0 + 600)
        h.close()  # no exception
    assert "samples not written at exit" in caplog.text
    assert "Traceback" not in caplog.text


# -- one bad value among good ones -----------------------------------------------------
def test_a_batch_that_cannot_be_stored_is_skipped_and_the_others_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = History(tmp_path / "h.db", TIERS, linger=0)
    try:
        good, bad = node_batch("node-good", T0), node_batch("node-bad", T0)
        bad = bad._replace(mem=[2**64, *bad.mem[1:]])  # a wrapped subtraction
        with caplog.at_level(logging.WARNING):
            assert h.record_batch(bad)
            assert h.record_batch(good)
            assert h.flush(timeout=10)
        assert raw_count(h, "node-good", T0, T0) == 1
        assert raw_count(h, "node-bad", T0, T0) == 0
        assert h.stats().failed_rows == len(bad.keys)
        assert "skipped node-bad's samples" in caplog.text
    finally:
        h.close()


# -- kill -9 ---------------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from kubepulse.history.file import History
    from kubepulse.history.tiers import parse_tiers
    from tests.history.test_faults import node_batch, T0
    from pathlib import Path
    h = History(Path(sys.argv[1]), parse_tiers("raw=1h,1m=24h,15m=30d"), linger=0)
    s = 0
    while True:
        for n in range(20):
            h.record_batch(node_batch(f"node-{n}", T0 + 15 * s, seed=s * 100 + n))
        h.flush(60)
        print(s, flush=True)
        s += 1
    """
)


@pytest.mark.parametrize("scrapes", [37, 95, 130, 301])
def test_kill_9_while_writing_loses_at_most_the_chunks_being_written(
    tmp_path: Path, scrapes: int
) -> None:
    """A writer killed after `scrapes` scrapes: the file opens, passes quick_check, holds
    every scrape but the last raw chunk's (32 scrapes at most), and its coarse tiers,
    rebuilt from the raw chunks, agree with them."""
    path = tmp_path / "h.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            assert ready, "the writer did not get that far in 120 s"
            line = proc.stdout.readline()
            assert line, "the writer stopped"
            if int(line) >= scrapes:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    done = scrapes  # at least this many were flushed (into memory or the file)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    h = History(path, TIERS)
    try:
        seen = h.stats().newest  # the newest sample the writer had at its last commit
        assert seen is not None
        start = max(T0, seen - 3000)  # within the raw hour
        raw = h.query("node", "", "node-7", "", start, seen, 15)
        assert [p.timestamp for p in raw] == [raw[0].timestamp + 15 * i for i in range(len(raw))]
        newest = raw[-1].timestamp
        assert newest >= T0 + 15 * (done - 32)  # at most a raw chunk lost
        # The minutes the raw chunks hold, rebuilt: each minute's average and maximum
        # are its raw samples' (whole minutes only: the first and last may be partial),
        # to the 10 microcores a bucket keeps (history/chunks.py).
        first = -(-start // 60) * 60
        minutes = h.query("node", "", "node-7", "", first, newest - 60, 60)
        for m in minutes:
            inside = [p for p in raw if m.timestamp <= p.timestamp < m.timestamp + 60]
            assert len(inside) == 4
            assert abs(m.cpu_max - max(p.cpu_max for p in inside)) <= 5000
            average = sum(p.cpu_nanocores for p in inside) / len(inside)
            assert abs(m.cpu_nanocores - average) <= 5000
        whole = {p.timestamp // 60 * 60 for p in raw}
        assert [m.timestamp for m in minutes] == sorted(
            t for t in whole if first <= t <= newest - 60
        )
    finally:
        h.close()


# -- a damaged chunk -------------------------------------------------------------------
def test_a_damaged_chunk_is_skipped_and_counted_in_metrics(tmp_path: Path) -> None:
    """Bytes changed inside one chunk (the file itself stays sound): that chunk's points
    are left out, the others' served, and /metrics counts it."""
    from prometheus_client import generate_latest

    from kubepulse.selfmetrics import SelfMetrics
    from kubepulse.store.points import MetricsStore

    h = History(tmp_path / "h.db", TIERS, linger=0)
    feed_scrapes(h, 2, 80)
    h.close()
    conn = sqlite3.connect(tmp_path / "h.db")
    (first, count), last = (
        conn.execute("SELECT min(id), count(*) FROM chunks WHERE width = 0").fetchone(),
        conn.execute("SELECT max(id) FROM chunks WHERE width = 0").fetchone()[0],
    )
    assert count >= 2 and last != first
    payload = bytearray(
        conn.execute("SELECT payload FROM chunks WHERE id = ?", (first,)).fetchone()[0]
    )
    payload[len(payload) // 2] ^= 0xFF
    conn.execute("UPDATE chunks SET payload = ? WHERE id = ?", (bytes(payload), first))
    conn.commit()
    conn.close()
    h = History(tmp_path / "h.db", TIERS)
    try:
        found = [raw_count(h, f"node-{n}", T0, T0 + 15 * 80) for n in range(2)]
        assert 0 < min(found) < max(found) == 80  # one node lost that chunk, not the other
        assert h.health().damaged_chunks >= 1
        metrics = SelfMetrics(MetricsStore(15.0), 15.0)
        metrics.watch_history(h)
        text = generate_latest(metrics.registry).decode()
        assert "kubepulse_history_open 1.0" in text
        damaged = next(x for x in text.splitlines() if x.startswith("kubepulse_history_damaged"))
        assert float(damaged.split()[-1]) >= 1
    finally:
        h.close()
