"""OOM kills and throttling in the history file: rises between readings, by hour, in
real SQLite files (history/pressure.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kubepulse.history.file import History
from kubepulse.history.pressure import HOUR_MS
from kubepulse.history.snapshot import HistorySnapshot
from kubepulse.history.tiers import parse_tiers
from kubepulse.model import CgroupCounters, PressureReading
from tests.history.test_history import CONTAINER, samples

T0 = 1_700_000_000.0 // 3600 * 3600  # an hour's start
WEB = ("default", "web-0", "app")
DB = ("default", "db-0", "postgres")


def read(h: History, node: str, at: float, **counters: CgroupCounters) -> None:
    keys = {"web": WEB, "db": DB}
    assert h.record_pressure(PressureReading(node, at, {keys[k]: c for k, c in counters.items()}))


def window(path: Path, start: float, end: float) -> dict[tuple[str, str, str], CgroupCounters]:
    snapshot = HistorySnapshot(path)
    try:
        return snapshot.pressure(start, end)
    finally:
        snapshot.close()


def test_the_first_reading_is_a_baseline_and_rises_are_summed_across_a_reset(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    h = History(path)
    try:
        # Counted before kubepulse looked: not placed in any hour.
        read(h, "node-a", T0 + 10, web=CgroupCounters(3, 1000, 400))
        read(h, "node-a", T0 + 70, web=CgroupCounters(4, 1600, 900))  # +1, +600, +500
        # The container restarted (a new cgroup): its counters start again from zero.
        read(h, "node-a", T0 + 130, web=CgroupCounters(0, 200, 50))  # +0, +200, +50
        read(h, "node-a", T0 + 190, web=CgroupCounters(1, 800, 50))  # +1, +600, +0
        assert h.flush(timeout=30)
    finally:
        h.close()
    assert window(path, T0, T0 + 3600) == {WEB: CgroupCounters(2, 1400, 550)}


def test_a_container_first_seen_after_the_baseline_counts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    h = History(path)
    try:
        read(h, "node-a", T0 + 10, web=CgroupCounters(0, 100, 0))
        # db-0 was made since the last reading: all it counts happened since.
        read(h, "node-a", T0 + 70, web=CgroupCounters(0, 700, 0), db=CgroupCounters(1, 0, 0))
        # Another node's first reading: a baseline, whatever it holds.
        read(h, "node-b", T0 + 80, db=CgroupCounters(5, 0, 0))
        assert h.flush(timeout=30)
    finally:
        h.close()
    assert window(path, T0, T0 + 3600) == {
        WEB: CgroupCounters(0, 600, 0),
        DB: CgroupCounters(1, 0, 0),
    }


def test_a_container_missing_from_one_reading_is_not_counted_from_zero_when_back(
    tmp_path: Path,
) -> None:
    """web-0's cgroup could not be read once: its OOM kill from before the gap is not
    counted again. Unseen for over an hour, a container of that name is a new one."""
    path = tmp_path / "h.db"
    h = History(path)
    try:
        read(h, "node-a", T0 + 10, web=CgroupCounters(1, 100, 0), db=CgroupCounters(1, 0, 0))
        read(h, "node-a", T0 + 70, db=CgroupCounters(1, 0, 0))  # web-0 not read
        read(h, "node-a", T0 + 130, web=CgroupCounters(1, 300, 0), db=CgroupCounters(1, 0, 0))
        # db-0 deleted; a db-0 made again two hours later counts from zero (2, not 2 - 1).
        read(h, "node-a", T0 + 2 * 3600, web=CgroupCounters(1, 300, 0))
        read(h, "node-a", T0 + 2 * 3600 + 60, db=CgroupCounters(2, 0, 0))
        assert h.flush(timeout=30)
    finally:
        h.close()
    assert window(path, T0, T0 + 3 * 3600) == {
        WEB: CgroupCounters(0, 200, 0),
        DB: CgroupCounters(2, 0, 0),
    }


def test_rises_are_kept_by_hour_and_a_window_reads_the_hours_it_touches(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    h = History(path)
    try:
        read(h, "node-a", T0, web=CgroupCounters(0, 0, 0))
        read(h, "node-a", T0 + 600, web=CgroupCounters(1, 0, 0))  # hour 0
        read(h, "node-a", T0 + 2 * 3600 + 5, web=CgroupCounters(3, 0, 0))  # hour 2
        assert h.flush(timeout=30)
    finally:
        h.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT hour_ms, oom_events FROM pressure ORDER BY hour_ms").fetchall()
    conn.close()
    t0_ms = int(T0 * 1000)
    assert rows == [(t0_ms, 1), (t0_ms + 2 * HOUR_MS, 2)]
    assert window(path, T0 + 2 * 3600 + 60, T0 + 3 * 3600) == {WEB: CgroupCounters(2, 0, 0)}
    assert window(path, T0 + 1800, T0 + 3599) == {WEB: CgroupCounters(1, 0, 0)}
    assert window(path, T0 + 3600, T0 + 7199) == {}
    assert window(path, T0, T0 + 3 * 3600) == {WEB: CgroupCounters(3, 0, 0)}


def test_nothing_risen_writes_no_row(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    h = History(path)
    try:
        for i in range(5):
            read(h, "node-a", T0 + 60 * i, web=CgroupCounters(2, 0, 0))
        assert h.flush(timeout=30)
    finally:
        h.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM pressure").fetchone() == (0,)
    conn.close()


def test_rows_older_than_the_longest_retention_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    h = History(path, tiers=parse_tiers("raw=10m,1m=2h"), upkeep_every=60, linger=0)
    try:
        read(h, "node-a", T0, web=CgroupCounters(0, 0, 0))
        read(h, "node-a", T0 + 60, web=CgroupCounters(1, 0, 0))
        h.record(samples(CONTAINER, T0, 5, 60))
        assert h.flush(timeout=30)
        assert window(path, T0, T0 + 60) == {WEB: CgroupCounters(1, 0, 0)}
        # Usage goes on for 4 hours: the 2-hour tier no longer reaches T0's hour.
        for hour in range(1, 5):
            h.record(samples(CONTAINER, T0 + hour * 3600, 2, 60))
            assert h.flush(timeout=30)
    finally:
        h.close()
    assert window(path, T0, T0 + 5 * 3600) == {}


def test_a_file_from_before_pressure_was_recorded_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    h = History(path)
    try:
        h.record(samples(CONTAINER, T0, 3, 60))
        assert h.flush(timeout=30)
    finally:
        h.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE pressure")
    conn.commit()
    conn.close()
    assert window(path, T0, T0 + 3600) == {}
    # Opening it to write adds the table; what was there stays.
    History(path).close()
    assert window(path, T0, T0 + 3600) == {}
    snapshot = HistorySnapshot(path)
    try:
        assert [key[1:] for key in snapshot.containers()] == [("default", "web-0", "app")]
    finally:
        snapshot.close()
