"""A container's usage in one pod, as arrays: what the strategies compute from.

Strategies take a node's containers at once (a UsageBlock: a row per pod's container),
keep only what their rules need of each row (a few percentiles, a histogram: its part,
computed for the whole block in a few array operations), and pool a workload's pods
part by part (Pooled.add), so that 150,000 containers over 14 days never sit in memory
at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from kubepulse.history.chunks import NANOCORES_PER_UNIT
from kubepulse.history.matrix import StepMatrix
from kubepulse.history.read import HistoryPoint, StepColumns
from kubepulse.recommend.settings import Recommendation, UsageSummary

MI = 1 << 20
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PodUsage:
    """One pod's points of one container, oldest first."""

    t: npt.NDArray[np.float64]
    """Epoch seconds of each step's start."""
    cpu_millicores: npt.NDArray[np.float64]
    """The step's average CPU (the 15-minute tier: the average over 15 minutes)."""
    memory_max_bytes: npt.NDArray[np.float64]
    """The step's highest working set."""

    def __len__(self) -> int:
        return len(self.t)


NO_USAGE = PodUsage(np.zeros(0), np.zeros(0), np.zeros(0))


@dataclass(frozen=True, slots=True)
class UsageBlock:
    """Several pods' usage of their containers over the same steps: a row each, NaN
    where one has no point (a node's containers, read together from the history)."""

    t: npt.NDArray[np.float64]
    """(k,) epoch seconds of each step's start."""
    cpu_millicores: npt.NDArray[np.float64]
    """(m, k)."""
    memory_max_bytes: npt.NDArray[np.float64]
    """(m, k)."""

    def __len__(self) -> int:
        return len(self.cpu_millicores)

    def row(self, i: int) -> PodUsage:
        present = ~np.isnan(self.cpu_millicores[i])
        return PodUsage(
            self.t[present], self.cpu_millicores[i][present], self.memory_max_bytes[i][present]
        )

    @staticmethod
    def of(pod: PodUsage) -> UsageBlock:
        return UsageBlock(pod.t, pod.cpu_millicores[None, :], pod.memory_max_bytes[None, :])


def pod_usage(points: Sequence[HistoryPoint]) -> PodUsage:
    return PodUsage(
        t=np.array([p.timestamp for p in points], np.float64),
        cpu_millicores=np.array([p.cpu_nanocores / 1e6 for p in points], np.float64),
        memory_max_bytes=np.array([p.memory_max for p in points], np.float64),
    )


def _cpu_millicores(
    cpu_sum: npt.NDArray[np.int64], n: npt.NDArray[Any], out: Floats | None = None
) -> Floats:
    """A step's average CPU from its sum (the stored unit) and its samples; with out,
    only where a step has samples."""
    scaled = cpu_sum * (NANOCORES_PER_UNIT / 1e6)
    if out is None:
        found: Floats = scaled / n
        return found
    np.divide(scaled, n, out=out, where=n > 0)
    return out


def from_columns(columns: StepColumns) -> PodUsage:
    """The history's steps (history.read.step_columns) as usage."""
    return PodUsage(
        t=columns.starts / 1000.0,
        cpu_millicores=_cpu_millicores(columns.cpu_sum, columns.n),
        memory_max_bytes=columns.mem_max.astype(np.float64),
    )


def from_matrix(found: StepMatrix, start: float) -> UsageBlock:
    """The history's matrix (history.matrix) as usage, steps before `start` left out
    (source.since's rule), NaN where a step has no sample."""
    t = found.starts / 1000.0
    keep = slice(int(np.searchsorted(t, start, "left")), None)  # t ascends
    n = found.n[:, keep]
    cpu = _cpu_millicores(found.cpu_sum[:, keep], n, out=np.full(n.shape, np.nan))
    memory = np.full(n.shape, np.nan)
    np.copyto(memory, found.mem_max[:, keep], where=n > 0, casting="unsafe")
    return UsageBlock(t[keep], cpu, memory)


@dataclass(frozen=True, slots=True)
class PodSummary:
    """What -o wide shows of one pod's usage, whatever the strategy."""

    points: int
    first: float
    last: float
    cpu_max: float
    memory_max: float


def summaries(block: UsageBlock) -> list[PodSummary | None]:
    """Each row's summary, None for a row with no point: the whole block at once."""
    present = ~np.isnan(block.cpu_millicores)
    points = present.sum(axis=1)
    if not len(block.t):
        return [None] * len(block)
    first = block.t[np.argmax(present, axis=1)]
    last = block.t[len(block.t) - 1 - np.argmax(present[:, ::-1], axis=1)]
    cpu_max = np.fmax.reduce(block.cpu_millicores, axis=1)
    memory_max = np.fmax.reduce(block.memory_max_bytes, axis=1)
    return [
        PodSummary(p, f, la, c, m) if p else None
        for p, f, la, c, m in zip(
            points.tolist(),
            first.tolist(),
            last.tolist(),
            cpu_max.tolist(),
            memory_max.tolist(),
            strict=True,
        )
    ]


Part = TypeVar("Part")
Part_contra = TypeVar("Part_contra", contravariant=True)


class Pooled(Protocol[Part_contra]):
    """A strategy's state for one container of one workload."""

    def add(self, pod: Part_contra) -> None: ...

    def result(self, containers_in_pod: int) -> Recommendation: ...


class Strategy(Protocol[Part]):
    """A strategy: what it keeps of each pod's usage (its part, computed for a whole
    block at once), and its state pooling a workload's pods."""

    def parts(self, block: UsageBlock) -> Sequence[Part | None]:
        """A part for each row, None for a row with no point."""
        ...

    def pooled(self) -> Pooled[Part]: ...


class Tally:
    """What -o wide shows of any strategy: points, span, maximums."""

    def __init__(self) -> None:
        self.points = 0
        self.first: float | None = None
        self.last: float | None = None
        self.cpu_max = 0.0
        self.memory_max = 0.0

    def add(self, pod: PodSummary) -> None:
        self.points += pod.points
        self.first = pod.first if self.first is None else min(self.first, pod.first)
        self.last = pod.last if self.last is None else max(self.last, pod.last)
        self.cpu_max = max(self.cpu_max, pod.cpu_max)
        self.memory_max = max(self.memory_max, pod.memory_max)

    def summary(self, step: float) -> UsageSummary:
        return UsageSummary(
            points=self.points,
            first=self.first,
            last=self.last,
            step_seconds=step,
            cpu_max_millicores=self.cpu_max,
            memory_max_bytes=round(self.memory_max),
        )

    def not_enough(self, step: float, required: int) -> Recommendation | None:
        """The answer for too few points over all the pods, or None when there are
        enough (both strategies: no guess from too little)."""
        if self.points >= required:
            return None
        return Recommendation(
            None,
            None,
            None,
            None,
            usage=self.summary(step),
            reason=f"not enough data: {self.points} {'point' if self.points == 1 else 'points'}"
            f" of {required} required",
        )


def ceil_millicores(millicores: float) -> int:
    return math.ceil(millicores - 1e-9)


def ceil_mebibytes(count: float) -> int:
    """Up to a whole MiB, as KRR rounds memory (runner.py _round_value)."""
    return math.ceil(count / MI - 1e-9) * MI
