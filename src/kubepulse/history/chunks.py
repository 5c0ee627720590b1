"""What a chunk's columns mean: a group's samples (raw tier) or buckets (coarse tiers).

A group (a node: its node, pods and containers; the namespaces) sends the same series,
its layout, scrape after scrape. One chunk holds a stretch of them:
- raw: k scrapes of n series, as columns ts[0..n) (milliseconds, whole seconds),
  cpu[0..n) (microcores) and mem[0..n) (bytes). A series without a new sample in a
  scrape repeats its last timestamp and values (it costs nothing), so a row is a sample
  when its timestamp is later than the row before (the first row: later than 0).
- coarse: k buckets of n series, as columns start (ms, the bucket's start), then
  n[0..n), cpu_avg, cpu_max, mem_avg, mem_max. A series without a sample in a bucket
  has n = 0 (its other values repeat the row before). A bucket can come in parts
  (before and after a restart, a late sample, a node whose pods changed): readers add
  up avg x n of the rows of one start, so an average over any wider step stays the
  average of its samples.

What is kept, and why not more (each digit below these is noise that costs bits in
every value, bench.history_density):
- time to the second (the writer drops the milliseconds): kubelet's Summary API gives
  seconds, and every step a chart asks is whole seconds, so no point moves;
- CPU of a raw sample to the microcore (a thousandth of kubectl's millicore); a
  bucket's average and maximum to 10 microcores (a hundredth of a millicore);
- memory to the byte; a bucket's average to the 4 KiB page (Linux counts pages).
The codec finds these steps by itself (a column's greatest common divisor).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kubepulse.history import codec
from kubepulse.history.codec import CorruptChunk, Ints

Bools = npt.NDArray[np.bool_]

NANOCORES_PER_UNIT = 1000
"""CPU is stored in microcores."""

BUCKET_CPU_STEP = 10
"""A bucket's CPU average and maximum are kept to 10 microcores."""
PAGE = 4096
"""A bucket's memory average is kept to the page."""

FIELDS = 5  # n, cpu_sum, cpu_max, mem_sum, mem_max (in memory and Items; sums stored as averages)


class Items(NamedTuple):
    """One series' samples or buckets, oldest first: a raw sample is a bucket of one
    (n 1, sum and max its value). CPU in microcores."""

    t: Ints
    n: Ints
    cpu_sum: Ints
    cpu_max: Ints
    mem_sum: Ints
    mem_max: Ints


def samples(t: Ints, cpu: Ints, mem: Ints) -> Items:
    """Raw samples as Items: each a bucket of one."""
    return Items(t, np.ones(len(t), np.int64), cpu, cpu, mem, mem)


def empty_items() -> Items:
    none = np.zeros(0, np.int64)
    return Items(none, none, none, none, none, none)


def join(parts: list[Items]) -> Items:
    if not parts:
        return empty_items()
    if len(parts) == 1:
        return parts[0]
    return Items(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def _forward_fill(values: Ints, present: Bools) -> Ints:
    """Each absent row (axis 0) takes the value of the last present one before it."""
    rows = np.arange(values.shape[0])[:, None]
    last = np.maximum.accumulate(np.where(present, rows, 0), axis=0)
    return np.take_along_axis(values, last, axis=0)


def encode_raw(ts: Ints, cpu: Ints, mem: Ints) -> bytes:
    """k scrapes (rows) of n series (columns); ts 0 where a series had no new sample."""
    present = ts > 0
    filled_ts = np.maximum.accumulate(ts, axis=0)
    columns = np.concatenate(
        [filled_ts.T, _forward_fill(cpu, present).T, _forward_fill(mem, present).T]
    )
    n = ts.shape[1]
    return codec.encode(columns, [codec.DELTA2] * n + [codec.DELTA] * (2 * n))


def decode_raw(payload: bytes, series: int, position: int) -> Items:
    """One series' samples of a raw chunk of `series` columns."""
    found = codec.decode(payload, (position, series + position, 2 * series + position))
    ts, cpu, mem = found[position], found[series + position], found[2 * series + position]
    present = np.diff(ts, prepend=0) > 0
    return samples(ts[present], cpu[present], mem[present])


def raw_columns(payload: bytes, series: int) -> tuple[Ints, Ints, Ints]:
    """Every series of a raw chunk: (ts, cpu, mem) as (k, n) arrays, ts 0 where a series
    had no new sample (the writer's own form, for rebuilding coarse tiers)."""
    found = codec.decode_matrix(payload)
    if len(found) != 3 * series:
        raise CorruptChunk(f"a raw chunk of {len(found)} columns, not {3 * series}")
    ts, cpu, mem = found[:series].T, found[series : 2 * series].T, found[2 * series :].T
    fresh = np.diff(ts, axis=0, prepend=np.zeros((1, series), np.int64)) > 0
    return np.where(fresh, ts, 0), cpu, mem


def _rounded(values: Ints, step: int) -> Ints:
    """To the nearest multiple of step (half up)."""
    return (values + step // 2) // step * step


def _average(sums: Ints, n: Ints, step: int) -> Ints:
    """sums / n to the nearest multiple of step (half up), in integers: rounded once."""
    return (2 * sums + n * step) // (2 * n * step) * step


def encode_buckets(starts: Ints, fields: Ints) -> bytes:
    """k buckets: their starts (k,) and fields (FIELDS, k, n): n, sums and maxima."""
    present = fields[0] > 0
    n = np.maximum(fields[0], 1)
    stored = np.stack(
        [
            fields[0],
            _average(fields[1], n, BUCKET_CPU_STEP),
            _rounded(fields[2], BUCKET_CPU_STEP),
            _average(fields[3], n, PAGE),
            fields[4],
        ]
    )
    filled = [stored[0]] + [_forward_fill(stored[f], present) for f in range(1, FIELDS)]
    series = fields.shape[2]
    columns = np.concatenate([starts[None, :], *(f.T for f in filled)])
    return codec.encode(columns, [codec.DELTA2] + [codec.DELTA] * (FIELDS * series))


def decode_buckets(payload: bytes, series: int, position: int) -> Items:
    """One series' buckets of a coarse chunk of `series` series (those with n > 0)."""
    wanted = (0, *(1 + f * series + position for f in range(FIELDS)))
    found = codec.decode(payload, wanted)
    starts = found[0]
    n, cpu_avg, cpu_max, mem_avg, mem_max = (found[i] for i in wanted[1:])
    present = n > 0
    n = n[present]
    return Items(
        starts[present],
        n,
        cpu_avg[present] * n,
        cpu_max[present],
        mem_avg[present] * n,
        mem_max[present],
    )


def bucket_columns(payload: bytes, series: int) -> tuple[Ints, Ints]:
    """Every series of a coarse chunk: starts (k,) and fields (FIELDS, k, n), zero where
    a series has no sample (n 0)."""
    found = codec.decode_matrix(payload)
    if len(found) != 1 + FIELDS * series:
        raise CorruptChunk(f"a coarse chunk of {len(found)} columns, not {1 + FIELDS * series}")
    starts = found[0]
    fields = found[1:].reshape(FIELDS, series, -1).transpose(0, 2, 1).copy()
    fields[1] *= fields[0]  # averages back to sums
    fields[3] *= fields[0]
    fields[:, fields[0] == 0] = 0
    return starts, fields


def bucket_fields(payload: bytes, series: int, positions: Ints) -> tuple[Ints, Ints, Ints, Ints]:
    """Some series of a coarse chunk (their positions in its layout): starts (k,), and
    n, cpu_sum and mem_max (len(positions), k), zero where a series has no sample. Only
    the columns a reader of usage needs are decoded."""
    columns, _rows = codec.shape(payload)
    if columns != 1 + FIELDS * series:
        raise CorruptChunk(f"a coarse chunk of {columns} columns, not {1 + FIELDS * series}")
    wanted = len(positions)
    # Field f of the series at position p is column 1 + f * series + p (encode_buckets).
    picked = np.concatenate([[0], *(1 + f * series + positions for f in (0, 1, 4))])
    found = codec.decode_matrix(payload, picked.tolist())
    n = found[1 : 1 + wanted]
    cpu_sum = found[1 + wanted : 1 + 2 * wanted] * n  # averages back to sums
    mem_max = found[1 + 2 * wanted :]
    mem_max[n == 0] = 0
    return found[0], n, cpu_sum, mem_max
