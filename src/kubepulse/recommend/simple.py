"""KRR's default strategy (robusta_krr/strategies/simple.py), over the history's points.

- CPU request: the chosen percentile of each pod's CPU usage, the highest of the pods
  (PercentileCPULoader is a quantile_over_time per pod, calculate_cpu_proposal takes
  their max); no CPU limit.
- Memory request = limit: the highest working set of all the pods plus the buffer
  (calculate_memory_proposal).
- Fewer points than required over all the pods: no recommendation, "not enough data".
- Rounded up to 1m and 1Mi, and at least 10m and 100Mi (runner.py _round_value,
  config.py cpu_min_value and memory_min_value).

quantile_over_time interpolates linearly between ranks, as numpy's default does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubepulse.recommend.settings import Recommendation, Settings
from kubepulse.recommend.usage import (
    MI,
    Floats,
    PodSummary,
    Tally,
    UsageBlock,
    ceil_mebibytes,
    ceil_millicores,
    summaries,
)

MIN_CPU_MILLICORES = 10
MIN_MEMORY_BYTES = 100 * MI
SHOWN_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def percentile_label(percentile: float) -> str:
    return f"p{percentile:g}"


def row_percentiles(values: Floats, percentiles: Sequence[float]) -> Floats:
    """np.percentile of each row's values that are not NaN (its default, linear
    method, step by step as numpy computes it, so that the results are the same to
    the bit), for a whole block at once: one sort instead of a call per row."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = (~np.isnan(values)).sum(axis=1)[:, None]
    quantiles = np.true_divide(np.asarray(percentiles, np.float64), 100)[None, :]
    virtual = (count - 1) * quantiles
    previous = np.floor(virtual)
    upper = virtual >= count - 1
    previous[upper] = count.repeat(len(percentiles), axis=1)[upper] - 1
    low = previous.astype(np.intp).clip(0)
    high = np.where(upper, low, low + 1).clip(0)
    # numpy's _get_indexes sets -1 (the last value) where the index reaches the end,
    # and _get_gamma takes the fraction from that -1.
    gamma = virtual - np.where(upper, -1.0, previous)
    a = np.take_along_axis(ordered, low, axis=1)
    b = np.take_along_axis(ordered, high, axis=1)
    difference = b - a
    found: Floats = a + difference * gamma
    late = gamma >= 0.5
    found[late] = (b - difference * (1 - gamma))[late]
    return found


@dataclass(frozen=True, slots=True)
class SimplePart:
    summary: PodSummary
    cpu_percentiles: Floats


class SimpleStrategy:
    def __init__(self, settings: Settings, step: float) -> None:
        self.settings, self.step = settings, step
        self.percentiles = sorted({*SHOWN_PERCENTILES, settings.cpu_percentile})

    def parts(self, block: UsageBlock) -> list[SimplePart | None]:
        if not len(block.t):
            return [None] * len(block)
        found = row_percentiles(block.cpu_millicores, self.percentiles)
        return [
            SimplePart(summary, found[i]) if summary is not None else None
            for i, summary in enumerate(summaries(block))
        ]

    def pooled(self) -> SimplePooled:
        return SimplePooled(self.settings, self.step, self.percentiles)


class SimplePooled:
    """Of each pod: its percentiles; of all: the highest of each, and the tally."""

    def __init__(self, settings: Settings, step: float, percentiles: list[float]) -> None:
        self.settings, self.step = settings, step
        self.percentiles = percentiles
        self.labels = [percentile_label(p) for p in percentiles]
        self.label = percentile_label(settings.cpu_percentile)
        self.highest = np.zeros(len(self.percentiles))
        self.tally = Tally()

    def add(self, pod: SimplePart) -> None:
        self.tally.add(pod.summary)
        self.highest = np.maximum(self.highest, pod.cpu_percentiles)

    def result(self, containers_in_pod: int) -> Recommendation:
        short = self.tally.not_enough(self.step, self.settings.points_required)
        if short is not None:
            return short
        shown = dict(zip(self.labels, self.highest.tolist(), strict=True))
        cpu = shown[self.label]
        memory = self.tally.memory_max * (1 + self.settings.memory_buffer_percentage / 100)
        memory_bytes = max(ceil_mebibytes(memory), MIN_MEMORY_BYTES)
        return Recommendation(
            cpu_request_millicores=max(ceil_millicores(cpu), MIN_CPU_MILLICORES),
            cpu_limit_millicores=None,
            memory_request_bytes=memory_bytes,
            memory_limit_bytes=memory_bytes,
            usage=self.tally.summary(self.step),
            cpu_percentiles_millicores=shown,
        )
