"""A strategy computes a node's containers at once: the same numbers, to the bit, as it
computes each container alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
