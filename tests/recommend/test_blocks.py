"""A strategy computes a node's containers at once: the same numbers, to the bit, as it
computes each container alone (simple's percentiles, vpa's histograms)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kubepulse.recommend import vpa
from kubepulse.recommend.histogram import (
    CPU_BUCKETS,
    MEMORY_BUCKETS,
    MIN_SAMPLE_WEIGHT,
    decay_weights,
    reference_of,
)
from kubepulse.recommend.settings import Settings
from kubepulse.recommend.simple import SHOWN_PERCENTILES, row_percentiles
from kubepulse.recommend.usage import PodUsage, UsageBlock, summaries

values = st.floats(min_value=0, max_value=1e6, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(found=st.lists(st.lists(st.one_of(values, st.none()), min_size=7, max_size=7), min_size=1))
def test_percentiles_of_a_block_are_numpys_of_each_row(found: list[list[float | None]]) -> None:
    block = np.array([[np.nan if v is None else v for v in row] for row in found], np.float64)
    wanted = [*SHOWN_PERCENTILES, 97.5, 0.0, 100.0]
    got = row_percentiles(block, wanted)
    for i, row in enumerate(block):
        present = row[~np.isnan(row)]
        if len(present):
            # Bit for bit: a request rounds up from this, so 1 ulp can move it 1m.
            assert got[i].tolist() == np.percentile(present, wanted).tolist()


def test_a_blocks_summaries_are_each_rows_points_span_and_maxima() -> None:
    t = np.arange(6, dtype=np.float64) * 900
    nan = np.nan
    cpu = np.array([[nan, 5, 7, nan, 2, nan], [nan] * 6, [1, 1, 1, 1, 1, 9]], np.float64)
    memory = np.array([[nan, 10, 30, nan, 20, nan], [nan] * 6, [5, 5, 5, 5, 5, 6]], np.float64)
    block = UsageBlock(t, cpu, memory)

    first, none, last = summaries(block)

    assert none is None
    assert first is not None and last is not None
    assert (first.points, first.first, first.last) == (3, 900.0, 3600.0)
    assert (first.cpu_max, first.memory_max) == (7.0, 30.0)
    assert (last.points, last.first, last.last, last.cpu_max) == (6, 0.0, 4500.0, 9.0)
    row = block.row(0)
    assert isinstance(row, PodUsage)
    assert row.t.tolist() == [900.0, 1800.0, 3600.0]
    assert row.memory_max_bytes.tolist() == [10.0, 30.0, 20.0]


def pod_by_pod(usage: PodUsage, anchor: float) -> tuple[np.ndarray, np.ndarray]:
    """The VPA's histograms of one pod, sample after sample as the recommender adds
    them (AddSample, addMemorySample): the rule the block's arrays must give."""
    reference = reference_of(anchor)
    cpu = np.zeros(CPU_BUCKETS.count)
    for t, millicores in zip(usage.t, usage.cpu_millicores, strict=True):
        bucket = CPU_BUCKETS.find(np.array([np.floor(millicores) / 1000.0]))[0]
        cpu[bucket] += decay_weights(np.array([t]), MIN_SAMPLE_WEIGHT, reference)[0]
    memory = np.zeros(MEMORY_BUCKETS.count)
    peaks: dict[float, float] = {}
    t0 = usage.t[0]
    for t, found in zip(usage.t, usage.memory_max_bytes, strict=True):
        end = t0 + (np.floor((t - t0) / vpa.MEMORY_INTERVAL) + 1) * vpa.MEMORY_INTERVAL
        peaks[end] = max(peaks.get(end, 0.0), found)
    for end, peak in peaks.items():
        bucket = MEMORY_BUCKETS.find(np.array([np.floor(peak)]))[0]
        memory[bucket] += decay_weights(np.array([end]), 1.0, reference)[0]
    return cpu, memory


points = st.one_of(
    st.none(),
    st.tuples(
        st.floats(min_value=0, max_value=64_000, allow_nan=False),
        st.floats(min_value=0, max_value=64 * 2.0**30, allow_nan=False),
    ),
)


@settings(max_examples=60, deadline=None)
@given(found=st.lists(st.lists(points, min_size=300, max_size=300), min_size=1, max_size=4))
def test_vpa_histograms_of_a_block_are_each_pods_added_sample_by_sample(
    found: list[list[tuple[float, float] | None]],
) -> None:
    # 300 steps of 15 minutes: 3 days and a bit, so rows open their memory windows at
    # different times and cross several.
    t = 1_800_000_000.0 + np.arange(300) * 900.0
    cpu = np.array([[np.nan if p is None else p[0] for p in row] for row in found])
    memory = np.array([[np.nan if p is None else p[1] for p in row] for row in found])
    block = UsageBlock(t, cpu, memory)
    anchor = float(t[-1])

    parts = vpa.VpaStrategy(Settings(strategy="vpa"), 900.0, anchor).parts(block)

    for i, part in enumerate(parts):
        usage = block.row(i)
        if not len(usage):
            assert part is None
            continue
        assert part is not None
        cpu_weights, memory_weights = pod_by_pod(usage, anchor)
        assert part.cpu.tolist() == cpu_weights.tolist()
        assert part.memory.tolist() == memory_weights.tolist()
        assert part.cpu_first == usage.t[0]
        assert part.memory_first == usage.t[0] + vpa.MEMORY_INTERVAL
