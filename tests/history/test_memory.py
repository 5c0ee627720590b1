"""What recording history keeps in memory per node, measured with tracemalloc."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from kubepulse.history import writer as writer_module
from kubepulse.history.tiers import DEFAULT_TIERS
from kubepulse.history.writer import Batch, HistoryWriter

T0 = 1_700_000_100.0
NODES = 100
SCRAPES = 29


def node_keys(n: int) -> tuple[tuple[str, str, str, str], ...]:
    """A node, 30 pods of 2 containers, the pods: 91 series, as the recorder sends them."""
    pods = [(f"ns-{n % 7}", f"app-{n}-{i}") for i in range(30)]
    containers = [("container", ns, pod, c) for ns, pod in pods for c in ("app", "sidecar")]
    return (("node", "", f"node-{n:03d}", ""), *containers, *(("pod", ns, p, "") for ns, p in pods))


def test_a_recorded_node_keeps_under_90_kb_with_its_raw_scrapes_all_unsealed(
    tmp_path: Path,
) -> None:
    """Just before its raw scrapes are sealed (29 scrapes of 15 s in memory: a raw
    chunk spans at most 7.5 minutes of the default hour), a node of 91 series holds
    ~80 KB: its narrow head (16 bytes a sample), the coarse tiers' open and waiting
    buckets, its share of the writer's index. It was ~125 KB with an int64 head, a dict
    of positions per group and a list of holders per series."""
    layouts = [node_keys(n) for n in range(NODES)]
    rng = np.random.default_rng(3)
    writer = HistoryWriter(tmp_path / "history.db", DEFAULT_TIERS)
    try:
        tracemalloc.start()
        for s in range(SCRAPES):
            batches = []
            for n, keys in enumerate(layouts):
                t = T0 + s * 15 + n % 15
                cpu = rng.integers(1_000_000, 500_000_000, len(keys)).tolist()
                mem = rng.integers(10 << 20, 2 << 30, len(keys)).tolist()
                batches.append(Batch(keys[0][2], keys, [t] * len(keys), cpu, mem))
            writer.write(batches)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        writer.close()
    held = snapshot.filter_traces([tracemalloc.Filter(True, "*/kubepulse/history/*")])
    per_node = sum(stat.size for stat in held.statistics("filename")) / NODES
    assert 40_000 < per_node < 90_000, f"{per_node / 1000:.1f} KB a node"


def layouts_in(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        (count,) = conn.execute("SELECT count(*) FROM layouts").fetchone()
        return int(count)
    finally:
        conn.close()


def test_layouts_of_a_churning_node_are_not_all_kept_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose pod is replaced at every scrape has a new layout each time: the file
    keeps them all (its chunks use them), memory only the newest few. A layout seen
    again while remembered, or after a restart, keeps its id."""
    monkeypatch.setattr(writer_module, "LAYOUT_CACHE", 8)
    path = tmp_path / "history.db"
    node = ("node", "", "node-a", "")

    def scrape(w: HistoryWriter, s: int, pod: str) -> None:
        keys = (node, ("pod", "default", pod, ""))
        w.write([Batch("node-a", keys, [T0 + 15 * s] * 2, [1000, 2000], [10, 20])])

    writer = HistoryWriter(path, DEFAULT_TIERS)
    try:
        for s in range(50):
            scrape(writer, s, f"job-{s}")
        assert len(writer._layouts) <= 8
        scrape(writer, 50, "job-48")  # seen again, remembered: its id again
        scrape(writer, 51, "job-49")
    finally:
        writer.close()
    assert layouts_in(path) == 50
    writer = HistoryWriter(path, DEFAULT_TIERS)
    try:
        assert len(writer._layouts) == 8
        scrape(writer, 52, "job-47")  # after a restart: the newest layouts are known
    finally:
        writer.close()
    assert layouts_in(path) == 50
