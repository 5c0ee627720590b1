"""Pod churn: the writer keeps the series of its groups in memory, not every pod ever
made; a pod gone from memory is still read, listed and recognised from the file."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from kubepulse.history.file import History
from kubepulse.history.tiers import DEFAULT_TIERS
from kubepulse.history.writer import Batch, HistoryWriter

T0 = 1_699_999_980.0  # a whole minute: steps align to the epoch
SCRAPES = 240  # 4 hours, one scrape a minute
POD_LIFETIME = 5  # scrapes: a new job every 5 minutes, 48 in all
CPU = 250_000_000


def job_rows(s: int) -> list[tuple[str, str, str, str, float, int, int]]:
    t = T0 + 60 * s
    pod = f"job-{s // POD_LIFETIME}"
    return [
        ("node", "", "node-a", "", t, 2 * CPU, 200 << 20),
        ("pod", "default", pod, "", t, CPU, 100 << 20),
        ("container", "default", pod, "app", t, CPU, 100 << 20),
    ]


def series_in(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM series").fetchone()[0])


def churned(path: Path) -> History:
    """A History of 4 hours of node-a, a new job every 5 minutes, all written."""
    history = History(path)
    for s in range(SCRAPES):
        history.record(job_rows(s), group="node-a")
    assert history.flush(timeout=30)
    return history


def test_series_of_ended_pods_leave_memory_and_are_still_read_from_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    history = churned(path)
    try:
        writer = history._ready_writer()
        with writer.lock:
            in_memory = len(writer._ids)
        end = T0 + 60 * SCRAPES
        first = history.query("container", "default", "job-0", "app", T0, end, 60)
        pods = history.pods_since(T0)
        containers = history.containers_of("default", "job-0", T0)
    finally:
        history.close()
    jobs = SCRAPES // POD_LIFETIME
    assert series_in(path) == 1 + 2 * jobs
    # The node, the live job, and at most the last hour's jobs (12 of them) since the
    # last hourly save; it was every series of the file, 97.
    assert in_memory <= 1 + 2 * (60 // POD_LIFETIME + 1), in_memory
    assert [p.timestamp for p in first] == [T0 + 60 * s for s in range(POD_LIFETIME)]
    assert {p.cpu_nanocores for p in first} == {CPU}
    assert len(pods) == jobs
    assert pods[("default", "job-0")] == T0 + 60 * (POD_LIFETIME - 1)
    assert containers == ["app"]


def test_a_pod_back_after_it_left_memory_keeps_its_series_and_skips_a_resent_sample(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    churned(path).close()
    series = series_in(path)
    writer = HistoryWriter(path, DEFAULT_TIERS)
    try:
        assert len(writer._ids) <= 1 + 2 * (60 // POD_LIFETIME + 1)  # the last hour's
        keys = (("pod", "default", "job-0", ""), ("container", "default", "job-0", "app"))
        last = T0 + 60 * (POD_LIFETIME - 1)
        # job-0's last sample sent again (a node answering after a restart): not new.
        assert writer.write([Batch("node-b", keys, [last, last], [CPU, CPU], [1, 1])]) == 0
        assert writer.write([Batch("node-b", keys, [last + 60] * 2, [CPU, CPU], [1, 1])]) == 2
    finally:
        writer.close()
    assert series_in(path) == series  # job-0 kept its series
