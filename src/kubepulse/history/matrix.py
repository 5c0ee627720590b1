"""Many series' buckets of one tier as one matrix: a row per series, a column per step.

What a reader of every container needs (`kubepulse recommend`): the series of a node
share its chunks (a layout), so they are decoded together, and a strategy computes
on the whole matrix at once instead of a series at a time.

A series is in every layout its node had while it lived (a layout changes when pods
come and go), so the layouts that share wanted series are read together (a family)
and their buckets put in one matrix; a bucket in two chunks (a chunk sealed at a
restart, or twice in the chunk after it) adds up, as history.read.step_columns adds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kubepulse.history.codec import Ints

MAX_ROWS = 1024
"""Series read at once (rows of a matrix): ~33 MB at 1,344 steps (14 days of 15
minutes), whatever one family holds."""


class StepMatrix(NamedTuple):
    """Buckets of several series over the same steps; n 0 where a series has none."""

    series: Ints
    """(m,) series ids, ascending."""
    starts: Ints
    """(k,) each step's start, ms, ascending."""
    n: Ints
    """(m, k) samples in each bucket."""
    cpu_sum: Ints
    """(m, k) in the stored unit (chunks.NANOCORES_PER_UNIT nanocores)."""
    mem_max: Ints


class Piece(NamedTuple):
    """One chunk's buckets of some of its series."""

    series: Ints
    starts: Ints
    n: Ints
    cpu_sum: Ints
    mem_max: Ints


def families(pairs: Iterable[tuple[int, int]], wanted: set[int]) -> list[list[int]]:
    """The wanted series grouped so that a series' layouts are all read with it: from
    (series, layout) pairs, the wanted series of each set of layouts that share one,
    oldest layout first, each group cut in slices of at most MAX_ROWS."""
    parent: dict[int, int] = {}

    def root(layout: int) -> int:
        while parent[layout] != layout:
            parent[layout] = parent[parent[layout]]
            layout = parent[layout]
        return layout

    first_layout: dict[int, int] = {}
    for sid, layout in pairs:
        if sid not in wanted:
            continue
        parent.setdefault(layout, layout)
        seen = first_layout.setdefault(sid, layout)
        a, b = root(seen), root(layout)
        if a != b:
            parent[max(a, b)] = min(a, b)
    grouped: dict[int, list[int]] = {}
    for sid in sorted(first_layout):
        grouped.setdefault(root(first_layout[sid]), []).append(sid)
    return [
        members[i : i + MAX_ROWS]
        for _, members in sorted(grouped.items())
        for i in range(0, len(members), MAX_ROWS)
    ]


def joined(pieces: Sequence[Piece], lo: int, hi: int) -> StepMatrix:
    """The pieces' buckets in [lo, hi] (ms) as one matrix over the steps any has."""
    series = np.unique(np.concatenate([p.series for p in pieces]))
    all_starts = np.concatenate([p.starts for p in pieces])
    one_layout = all(np.array_equal(p.series, series) for p in pieces)
    if one_layout and bool((all_starts[1:] > all_starts[:-1]).all()):
        # The usual case: one layout's chunks in order, nothing to add up; each
        # piece's steps in [lo, hi] are a slice of it (its starts ascend).
        spans = [_inside(p.starts, lo, hi) for p in pieces]
        return StepMatrix(
            series,
            np.concatenate([p.starts[i] for p, i in zip(pieces, spans, strict=True)]),
            *(
                np.concatenate([f[:, i] for f, i in zip(field, spans, strict=True)], axis=1)
                for field in _fields(pieces)
            ),
        )
    starts = np.unique(all_starts[(all_starts >= lo) & (all_starts <= hi)])
    shape = (len(series), len(starts))
    n, cpu_sum, mem_max = (np.zeros(shape, np.int64) for _ in range(3))
    for piece in pieces:
        inside = (piece.starts >= lo) & (piece.starts <= hi)
        rows = np.searchsorted(series, piece.series)[:, None]
        cols = np.searchsorted(starts, piece.starts[inside])[None, :]
        cells = (rows, cols)
        if len(np.unique(cols)) == cols.shape[1]:
            n[cells] += piece.n[:, inside]
            cpu_sum[cells] += piece.cpu_sum[:, inside]
            mem_max[cells] = np.maximum(mem_max[cells], piece.mem_max[:, inside])
        else:
            # A chunk written after a restart can hold the bucket it began in twice
            # (what was written before, what came after): both add up.
            np.add.at(n, cells, piece.n[:, inside])
            np.add.at(cpu_sum, cells, piece.cpu_sum[:, inside])
            np.maximum.at(mem_max, cells, piece.mem_max[:, inside])
    return StepMatrix(series, starts, n, cpu_sum, mem_max)


def _inside(starts: Ints, lo: int, hi: int) -> slice:
    return slice(
        int(np.searchsorted(starts, lo, "left")), int(np.searchsorted(starts, hi, "right"))
    )


def _fields(pieces: Sequence[Piece]) -> tuple[list[Ints], list[Ints], list[Ints]]:
    return [p.n for p in pieces], [p.cpu_sum for p in pieces], [p.mem_max for p in pieces]


def positions_of(layout_ids: Ints, wanted: npt.NDArray[np.int64]) -> Ints:
    """Where a layout holds the wanted series (sorted ids), in layout order."""
    return np.flatnonzero(np.isin(layout_ids, wanted))
