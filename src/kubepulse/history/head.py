"""A group's raw scrapes not sealed yet, kept narrow: what recording costs a node.

A node's head holds up to RAW_SEAL scrapes of its series (32 x 91 for 30 pods of 2
containers) until they are sealed as a chunk. Kept as int64 timestamp, CPU and memory,
that is 24 bytes a sample, ~70 KB a node; here it is 16: timestamps as int32
milliseconds after the head's `base`, CPU as int32 microcores, memory as int64 bytes.
A value that does not fit (a timestamp more than 12 days from the head's first, a node
above 2,147 cores) widens its plane to int64 for the rest of that head, so nothing is
ever clipped. Readers and the sealer get int64, as every other part of the history.
"""

from __future__ import annotations

import numpy as np

from kubepulse.history.chunks import Items, samples
from kubepulse.history.codec import Ints

INT32_MAX = (1 << 31) - 1
HALF_RANGE = 1 << 30
"""A head's base lies this far before its first timestamp: ~12 days either side fit."""


class RawHead:
    __slots__ = ("base", "cpu", "mem", "rows", "ts")

    def __init__(self, rows: int, size: int, first_ms: int) -> None:
        self.base = first_ms - HALF_RANGE
        """ts stores t - base where a series has a sample, 0 where not (t > base)."""
        self.ts: np.ndarray = np.zeros((rows, size), np.int32)
        self.cpu: np.ndarray = np.zeros((rows, size), np.int32)
        self.mem: Ints = np.zeros((rows, size), np.int64)
        self.rows = 0

    def restart(self, first_ms: int) -> None:
        """Empty again after sealing (rows_int64 gave copies): the buffers are reused, not
        allocated anew every RAW_SEAL scrapes; widened planes go back to int32."""
        self.rows, self.base = 0, first_ms - HALF_RANGE
        if self.ts.dtype != np.int32:
            self.ts = np.zeros(self.ts.shape, np.int32)
        if self.cpu.dtype != np.int32:
            self.cpu = np.zeros(self.cpu.shape, np.int32)

    def add(self, ts: Ints, cpu: Ints, mem: Ints) -> None:
        """One scrape: ts in ms (0: no new sample), cpu in microcores, memory in bytes."""
        present = ts > 0
        stored = np.where(present, ts - self.base, 0)
        if self.ts.dtype == np.int32 and not _fits(stored, present):
            self.ts = np.where(self.ts > 0, self.ts.astype(np.int64) + self.base, 0)
            self.base = 0
            stored = ts
        if self.cpu.dtype == np.int32 and not _fits(cpu):
            self.cpu = self.cpu.astype(np.int64)
        k = self.rows
        self.ts[k], self.cpu[k], self.mem[k] = stored, cpu, mem
        self.rows = k + 1

    def full(self) -> bool:
        return self.rows >= len(self.ts)

    def rows_int64(self) -> tuple[Ints, Ints]:
        """The scrapes so far: ts (k, n) in ms, 0 where no sample; cpu and memory (2, k, n)."""
        k = self.rows
        ts = self.ts[:k].astype(np.int64)
        if self.base:
            ts = np.where(ts > 0, ts + self.base, 0)
        values = np.empty((2, k, ts.shape[1]), np.int64)
        values[0], values[1] = self.cpu[:k], self.mem[:k]
        return ts, values

    def items(self, position: int) -> Items:
        """One series' samples so far."""
        k = self.rows
        column = self.ts[:k, position]
        present = column > 0
        return samples(
            column[present].astype(np.int64) + self.base,
            self.cpu[:k, position][present].astype(np.int64),
            self.mem[:k, position][present],
        )


def _fits(values: Ints, present: np.ndarray | None = None) -> bool:
    """Whether values fit in int32; with `present`, those present must be >= 1 (0 is
    "no sample")."""
    if not len(values):
        return True
    if present is not None:
        chosen = values[present]
        return not len(chosen) or (int(chosen.min()) >= 1 and int(chosen.max()) <= INT32_MAX)
    return int(values.min()) >= -INT32_MAX and int(values.max()) <= INT32_MAX
