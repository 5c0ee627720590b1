"""The raw head: scrapes kept narrow in memory read back exactly as int64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kubepulse.history.file import History
from kubepulse.history.groups import raw_items
from kubepulse.history.head import RawHead
from kubepulse.history.writer import Batch

T0_MS = 1_700_000_100_000
DAY_MS = 86_400_000

scrape = st.tuples(
    st.lists(st.sampled_from([0, 1, 2, 13 * DAY_MS, -13 * DAY_MS]), min_size=4, max_size=4),
    st.lists(st.integers(0, 1 << 40), min_size=4, max_size=4),
    st.lists(st.integers(0, 1 << 50), min_size=4, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(scrape, min_size=1, max_size=8), st.sampled_from([(1 << 31) - 1, 1 << 41]))
def test_a_head_gives_back_every_value_it_was_given_whatever_its_size(
    scrapes: list[tuple[list[int], list[int], list[int]]], cpu_modulus: int
) -> None:
    """Timestamps 13 days apart and CPU beyond int32 widen the head, never clip it."""
    ts_rows, cpu_rows, mem_rows = [], [], []
    for offsets, cpu, mem in scrapes:
        ts_rows.append([T0_MS + o if o else 0 for o in offsets])
        cpu_rows.append([c % cpu_modulus for c in cpu])
        mem_rows.append(mem)
    ts, cpu, mem = (np.array(rows, np.int64) for rows in (ts_rows, cpu_rows, mem_rows))
    head = RawHead(8, 4, int(ts[0].max()) or T0_MS)
    for _ in range(2):  # a new head, then the same one restarted after sealing
        for k in range(len(ts)):
            head.add(ts[k], cpu[k], mem[k])

        got_ts, got_values = head.rows_int64()
        assert got_ts.dtype == got_values.dtype == np.int64
        assert np.array_equal(got_ts, ts)
        assert np.array_equal(got_values, np.stack([cpu, mem]))
        for position in range(4):
            expected = raw_items(ts, np.stack([cpu, mem]), position)
            for got, want in zip(head.items(position), expected, strict=True):
                assert np.array_equal(got, want)
        head.restart(int(ts[0].max()) or T0_MS)
        assert head.ts.dtype == head.cpu.dtype == np.int32


def test_a_nodes_head_takes_16_bytes_a_sample_not_24() -> None:
    """30 pods of 2 containers: 91 series, 32 scrapes, 46.6 KB instead of 69.9 KB."""
    head = RawHead(32, 91, T0_MS)
    rng = np.random.default_rng(7)
    for k in range(32):
        ts = T0_MS + k * 15_000 + rng.integers(0, 10_000, 91)
        head.add(ts, rng.integers(0, 4_000_000, 91), rng.integers(0, 64 << 30, 91))
    assert head.full()
    assert head.ts.nbytes + head.cpu.nbytes + head.mem.nbytes == 32 * 91 * 16


def test_a_pod_on_two_nodes_layouts_reads_its_unsealed_samples_from_both(
    tmp_path: Path,
) -> None:
    """A StatefulSet pod moved to node-b while node-a's layout still holds it: both
    groups' unsealed samples are read, each once, and again once node-a lets go of it."""
    pod = ("pod", "db", "db-0", "")
    h = History(tmp_path / "history.db")
    try:
        t0 = T0_MS / 1000
        a_keys = (("node", "", "node-a", ""), pod)
        b_keys = (("node", "", "node-b", ""), pod)
        assert h.record_batch(Batch("node-a", a_keys, [t0, t0], [1000, 2000], [10, 20]))
        assert h.record_batch(Batch("node-b", b_keys, [t0, t0 + 15], [3000, 4000], [30, 40]))
        assert h.flush(timeout=10)
        points = h.query(*pod, t0, t0 + 60, step=15)
        assert [(p.timestamp, p.cpu_nanocores) for p in points] == [(t0, 2000), (t0 + 15, 4000)]

        # node-a's next scrape no longer holds the pod: only node-b's group does.
        a_now = (("node", "", "node-a", ""),)
        assert h.record_batch(Batch("node-a", a_now, [t0 + 15], [1000], [10]))
        assert h.record_batch(Batch("node-b", b_keys, [t0 + 30, t0 + 30], [3000, 5000], [30, 50]))
        assert h.flush(timeout=10)
        points = h.query(*pod, t0, t0 + 60, step=15)
        assert [(p.timestamp, p.cpu_nanocores) for p in points] == [
            (t0, 2000),
            (t0 + 15, 4000),
            (t0 + 30, 5000),
        ]
    finally:
        h.close()
