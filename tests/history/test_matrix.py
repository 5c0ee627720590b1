"""Reading many series as matrices (what `kubepulse recommend` reads) gives each series
exactly what reading it alone gives, through pod churn, restarts and damage."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from kubepulse.history import matrix
from kubepulse.history.file import History
from kubepulse.history.snapshot import HistorySnapshot
from kubepulse.history.writer import Row

DAY = 86400.0
T0 = 19676 * DAY
SCRAPE = 300.0
WIDTH = 900


def _rows_of(node: str, at: float, pods: list[str], rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    for pod in pods:
        for container in ("app", "sidecar"):
            cpu = rng.randrange(1, 400) * 1_000_000
            memory = rng.randrange(10, 500) * 4096 * 256
            rows.append(("container", "default", f"{node}-{pod}", container, at, cpu, memory))
    return rows


def _churning_history(path: Path, restart_at: float | None = None) -> None:
    """Two nodes over 2.5 days, a pod starting or ending every few hours (a new layout
    each time); with restart_at, the writer closed and opened again mid-bucket."""
    rng = random.Random(7)
    pods = {"a": ["p0", "p1", "p2"], "b": ["p0", "p1"]}
    history = History(path)
    try:
        steps = int(2.5 * DAY / SCRAPE)
        for i in range(steps):
            at = T0 + i * SCRAPE
            if restart_at is not None and at == restart_at:
                history.close()
                history = History(path)
            if i % 37 == 36:
                node = rng.choice("ab")
                if len(pods[node]) > 1 and rng.random() < 0.5:
                    pods[node].pop(rng.randrange(len(pods[node])))
                else:
                    pods[node].append(f"p{i}")
            for node, names in pods.items():
                assert history.record(_rows_of(node, at, names, rng), group=node)
            if i % 50 == 49:
                assert history.flush(timeout=30)
    finally:
        history.close()


def _compare(path: Path, start: float, end: float) -> int:
    snapshot = HistorySnapshot(path)
    try:
        ids = [sid for sid, *_ in snapshot.containers()]
        alone = snapshot.many(ids, WIDTH, start, end, WIDTH)
        seen = 0
        for found in snapshot.matrices(ids, WIDTH, start, end):
            for row, sid in enumerate(found.series.tolist()):
                present = found.n[row] > 0
                columns = alone.get(int(sid))
                assert columns is not None, f"series {sid} read alone has no bucket"
                np.testing.assert_array_equal(found.starts[present], columns.starts)
                np.testing.assert_array_equal(found.n[row][present], columns.n)
                np.testing.assert_array_equal(found.cpu_sum[row][present], columns.cpu_sum)
                np.testing.assert_array_equal(found.mem_max[row][present], columns.mem_max)
                seen += 1
        assert seen == len(alone)
        return seen
    finally:
        snapshot.close()


def test_each_series_of_a_matrix_reads_as_it_does_alone_through_pod_churn(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    _churning_history(path)
    snapshot = HistorySnapshot(path)
    layouts = len(set(snapshot.layouts().values()))
    snapshot.close()
    assert layouts > 4  # pods came and went: several layouts a node
    assert _compare(path, T0, T0 + 2.5 * DAY) > 10
    # A window that starts and ends inside the history, off the buckets' edges.
    assert _compare(path, T0 + 0.4 * DAY + 123, T0 + 1.7 * DAY - 77) > 5


def test_a_bucket_split_by_a_restart_adds_up_as_it_does_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    # Mid-bucket: the bucket at T0 + 1 day is written before and after the restart.
    _churning_history(path, restart_at=T0 + DAY + SCRAPE)
    assert _compare(path, T0, T0 + 2.5 * DAY) > 10


def test_a_series_in_many_layouts_is_one_row_and_families_stay_apart() -> None:
    # Series 1 is in layouts 10 and 11, 2 in 11; series 3 only in 12; 4 is not wanted.
    pairs = [(1, 10), (1, 11), (2, 11), (3, 12), (4, 12), (4, 10)]
    assert matrix.families(pairs, {1, 2, 3}) == [[1, 2], [3]]


def test_a_family_larger_than_a_matrix_is_cut_in_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(matrix, "MAX_ROWS", 2)
    pairs = [(sid, 1) for sid in range(5)]
    assert matrix.families(pairs, set(range(5))) == [[0, 1], [2, 3], [4]]
