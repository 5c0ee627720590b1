"""The VPA recommender's decaying histogram, as vertical-pod-autoscaler/pkg/recommender/
util/histogram.go, histogram_options.go and decaying_histogram.go define it.

Buckets grow exponentially: bucket i starts at first * (ratio^i - 1) / (ratio - 1)
(NewExponentialHistogramOptions, ratio 1 + 5%: DefaultHistogramBucketSizeGrowth). A
sample's weight is multiplied by 2^((t - reference) / halfLife), the reference being a
multiple of the half-life (decayFactor), so that a sample one half-life older counts
half as much. Percentile() returns the END of the bucket where the cumulative weight
reaches the fraction, or the start of the last bucket, which has no end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

MIN_SAMPLE_WEIGHT = 0.1
"""aggregations_config.go minSampleWeight: each CPU sample's weight."""
EPSILON = 0.001 * MIN_SAMPLE_WEIGHT
"""aggregations_config.go epsilon: a bucket lighter than this counts as empty."""
BUCKET_GROWTH = 0.05
HALF_LIFE = 24 * 3600.0
"""DefaultCPUHistogramDecayHalfLife and DefaultMemoryHistogramDecayHalfLife."""


@dataclass(frozen=True, slots=True)
class Buckets:
    """NewExponentialHistogramOptions(maxValue, firstBucketSize, ratio, epsilon)."""

    max_value: float
    first: float
    ratio: float = 1.0 + BUCKET_GROWTH

    @property
    def count(self) -> int:
        return (
            math.ceil(math.log(self.max_value * (self.ratio - 1) / self.first + 1, self.ratio)) + 1
        )

    def find(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """FindBucket of each value: below the first bucket's size, bucket 0; beyond the
        last, the last."""
        safe = np.maximum(values, self.first)
        found = np.floor(np.log(safe * (self.ratio - 1) / self.first + 1) / math.log(self.ratio))
        found = np.where(values < self.first, 0, found)
        return np.minimum(found, self.count - 1).astype(np.int64)

    def start(self, bucket: int) -> float:
        if bucket == 0:
            return 0.0
        return self.first * (self.ratio**bucket - 1) / (self.ratio - 1)


CPU_BUCKETS = Buckets(max_value=1000.0, first=0.01)
"""cpuHistogramOptions: cores, from 10 millicores up to 1000 cores."""
MEMORY_BUCKETS = Buckets(max_value=1e12, first=1e7)
"""memoryHistogramOptions: bytes, from 10 MB up to 1 TB."""


def reference_of(first_sample: float, half_life: float = HALF_LIFE) -> float:
    """The reference time of a histogram whose first sample came at `first_sample`:
    decayFactor shifts the zero reference to the sample's time rounded to a multiple of
    the half-life (shiftReferenceTimestamp: Time.Round, half away from zero)."""
    return math.floor(first_sample / half_life + 0.5) * half_life


def decay_weights(
    t: npt.NDArray[np.float64], weight: float, reference: float, half_life: float = HALF_LIFE
) -> npt.NDArray[np.float64]:
    """weight * 2^((t - reference) / halfLife) for each sample time (decayFactor)."""
    return weight * np.exp2((t - reference) / half_life)


class Cumulative(NamedTuple):
    """What every percentile of a histogram reads (kept until it changes)."""

    low: int
    high: int
    partial: npt.NDArray[np.float64]
    """The weights from low, summed up to each bucket below high."""
    total: float
    empty: bool


class DecayingHistogram:
    def __init__(self, buckets: Buckets) -> None:
        self.buckets = buckets
        self.weights = np.zeros(buckets.count, np.float64)
        self._cumulative: Cumulative | None = None

    def add(self, weights: npt.NDArray[np.float64]) -> None:
        """Another histogram's weights (a pod's, row_histograms)."""
        self.weights += weights
        self._cumulative = None

    def scale(self, factor: float) -> None:
        self.weights *= factor
        self._cumulative = None

    @property
    def total(self) -> float:
        return float(self.weights.sum())

    def _min_max(self) -> tuple[int, int]:
        # AddSample moves minBucket/maxBucket to a bucket once its weight reaches
        # epsilon; weights only grow here, so the final weights decide.
        heavy = np.flatnonzero(self.weights >= EPSILON)
        if not len(heavy):
            return self.buckets.count - 1, 0
        return int(heavy[0]), int(heavy[-1])

    def empty(self) -> bool:
        low, _ = self._min_max()
        return bool(self.weights[low] < EPSILON)

    def percentile(self, fraction: float) -> float:
        """histogram.go Percentile: 0 when empty."""
        if self._cumulative is None:
            low, high = self._min_max()
            # Its loop adds the weights from minBucket up, one at a time: cumsum adds
            # them in the same order, so every partial sum is the same to the bit.
            self._cumulative = Cumulative(
                low, high, np.cumsum(self.weights[low:high]), self.total, self.empty()
            )
        found = self._cumulative
        if found.empty:
            return 0.0
        # The first bucket whose partial sum reaches the threshold (the sums never
        # fall: weights are not negative), else high.
        bucket = found.low + int(np.searchsorted(found.partial, fraction * found.total))
        if bucket < self.buckets.count - 1:
            return self.buckets.start(bucket + 1)
        return self.buckets.start(bucket)


def row_histograms(
    buckets: Buckets,
    rows: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    count: int,
) -> npt.NDArray[np.float64]:
    """(count, buckets) histograms, one a row of a block: sample i of `rows[i]` adds
    `weights[i]` to its value's bucket. bincount adds in the order given, as AddSample
    called sample after sample does."""
    flat = rows * buckets.count + buckets.find(values)
    found = np.bincount(flat, weights=weights, minlength=count * buckets.count)
    return found.astype(np.float64, copy=False).reshape(count, buckets.count)
