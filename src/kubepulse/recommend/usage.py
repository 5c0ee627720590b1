"""A container's usage in one pod, as arrays: what the strategies compute from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kubepulse.history.read import HistoryPoint
from kubepulse.recommend.settings import UsageSummary

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


def pod_usage(points: Sequence[HistoryPoint]) -> PodUsage:
    return PodUsage(
        t=np.array([p.timestamp for p in points], np.float64),
        cpu_millicores=np.array([p.cpu_nanocores / 1e6 for p in points], np.float64),
        memory_max_bytes=np.array([p.memory_max for p in points], np.float64),
    )


def span(pods: Sequence[PodUsage]) -> tuple[float | None, float | None]:
    """The oldest and newest step of all the pods."""
    found = [p for p in pods if len(p)]
    if not found:
        return None, None
    return min(float(p.t[0]) for p in found), max(float(p.t[-1]) for p in found)


def summarize(pods: Sequence[PodUsage], step: float) -> UsageSummary:
    found = [p for p in pods if len(p)]
    first, last = span(found)
    return UsageSummary(
        points=sum(len(p) for p in found),
        first=first,
        last=last,
        step_seconds=step,
        cpu_max_millicores=max((float(p.cpu_millicores.max()) for p in found), default=0.0),
        memory_max_bytes=round(max((float(p.memory_max_bytes.max()) for p in found), default=0)),
    )


def ceil_millicores(millicores: float) -> int:
    return math.ceil(millicores - 1e-9)


def ceil_mebibytes(count: float) -> int:
    """Up to a whole MiB, as KRR rounds memory (runner.py _round_value)."""
    return math.ceil(count / MI - 1e-9) * MI
