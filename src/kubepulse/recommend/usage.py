"""A container's usage in one pod, as arrays: what the strategies compute from.

Strategies take a workload's pods one at a time (Pooled.add) and keep only what their
rules need of each (a few percentiles, a histogram), so that 150,000 containers over
14 days never sit in memory at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kubepulse.history.chunks import NANOCORES_PER_UNIT
from kubepulse.history.read import HistoryPoint, StepColumns
from kubepulse.recommend.settings import Recommendation, UsageSummary

MI = 1 << 20


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


def pod_usage(points: Sequence[HistoryPoint]) -> PodUsage:
    return PodUsage(
        t=np.array([p.timestamp for p in points], np.float64),
        cpu_millicores=np.array([p.cpu_nanocores / 1e6 for p in points], np.float64),
        memory_max_bytes=np.array([p.memory_max for p in points], np.float64),
    )


def from_columns(columns: StepColumns) -> PodUsage:
    """The history's steps (history.read.step_columns) as usage."""
    return PodUsage(
        t=columns.starts / 1000.0,
        cpu_millicores=columns.cpu_sum * (NANOCORES_PER_UNIT / 1e6) / columns.n,
        memory_max_bytes=columns.mem_max.astype(np.float64),
    )


class Pooled(Protocol):
    """A strategy's state for one container of one workload."""

    def add(self, pod: PodUsage) -> None: ...

    def result(self, containers_in_pod: int) -> Recommendation: ...


class Tally:
    """What -o wide shows of any strategy: points, span, maximums."""

    def __init__(self) -> None:
        self.points = 0
        self.first: float | None = None
        self.last: float | None = None
        self.cpu_max = 0.0
        self.memory_max = 0.0

    def add(self, pod: PodUsage) -> None:
        if not len(pod):
            return
        self.points += len(pod)
        first, last = float(pod.t[0]), float(pod.t[-1])
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)
        self.cpu_max = max(self.cpu_max, float(pod.cpu_millicores.max()))
        self.memory_max = max(self.memory_max, float(pod.memory_max_bytes.max()))

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
            reason=f"not enough data: {self.points} points of {required} required",
        )


def ceil_millicores(millicores: float) -> int:
    return math.ceil(millicores - 1e-9)


def ceil_mebibytes(count: float) -> int:
    """Up to a whole MiB, as KRR rounds memory (runner.py _round_value)."""
    return math.ceil(count / MI - 1e-9) * MI
