"""The VPA recommender's rules (vertical-pod-autoscaler/pkg/recommender), over the
history's points.

- CPU: every point is a sample of weight 0.1 (minSampleWeight, addCPUSample) in a
  decaying histogram with a half-life of 24 h (DefaultCPUHistogramDecayHalfLife).
- Memory: each pod's peak per 24-hour interval (container.go addMemorySample: the
  window starts at the pod's first sample, the peak is stamped at the window's end,
  weight 1.0) in a decaying histogram with a half-life of 24 h.
- target = p90, lower bound = p50, upper bound = p95 of each (config.go defaults),
  each plus the 15% safety margin (WithCPUMargin, SafetyMarginFraction 0.15).
- The bounds are scaled by the confidence in the history (estimator.go getConfidence:
  the lesser of its span in days and its samples / 1440): the upper bound by
  (1 + 1/confidence), the lower by (1 + 0.001/confidence)^-2 (logic/recommender.go).
- At least 25m CPU and 250Mi memory per pod, split evenly over its containers
  (PodMinCPUMillicores, PodMinMemoryMb, GetRecommendedPodResources).
- Amounts are whole millicores and bytes, truncated (resourceAmountFromFloat).

The target is both request and limit's basis: the VPA sets requests and keeps the
limit/request ratio, so the limit is left as it is (None here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kubepulse.recommend.histogram import (
    CPU_BUCKETS,
    HALF_LIFE,
    MEMORY_BUCKETS,
    MIN_SAMPLE_WEIGHT,
    Buckets,
    DecayingHistogram,
    decay_weights,
    reference_of,
    row_histograms,
)
from kubepulse.recommend.settings import Recommendation, Settings
from kubepulse.recommend.usage import MI, Floats, PodSummary, Tally, UsageBlock, summaries

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

TARGET, LOWER, UPPER = 0.9, 0.5, 0.95
SAFETY_MARGIN = 0.15
POD_MIN_CPU_MILLICORES = 25.0
POD_MIN_MEMORY_BYTES = 250.0 * MI
MEMORY_INTERVAL = 24 * 3600.0
"""DefaultMemoryAggregationInterval."""
CONFIDENCE_INTERVAL = 24 * 3600.0
"""ConfidenceIntervalCPU and ConfidenceIntervalMemory: a day."""


def amount(value: float) -> int:
    """resourceAmountFromFloat: negative is 0, the rest truncated."""
    return int(max(value, 0.0))


class MemoryPeaks(NamedTuple):
    """Each pod's peaks, one per interval, of a whole block (row after row)."""

    rows: Ints
    stamps: Floats
    """The time each peak is stamped with: its window's end."""
    peaks: Floats


def memory_peaks(block: UsageBlock, present: Bools) -> MemoryPeaks:
    """Each row's peaks: its first sample opens the window [t0, t0 + 24h); a later sample
    at or after the end moves the end on by whole intervals past it (addMemorySample)."""
    rows, columns = np.nonzero(present)  # row after row, each in time order
    t = block.t[columns]
    t0 = block.t[np.argmax(present, axis=1)][rows]
    windows = np.floor((t - t0) / MEMORY_INTERVAL)
    # t ascends along a row, so each (row, window) is one run of samples.
    opens = np.flatnonzero(
        np.concatenate([[True], (rows[1:] != rows[:-1]) | (windows[1:] != windows[:-1])])
    )
    if not len(rows):
        return MemoryPeaks(rows, t, t)
    peaks = np.maximum.reduceat(block.memory_max_bytes[rows, columns], opens)
    stamps = t0[opens] + (windows[opens] + 1) * MEMORY_INTERVAL
    return MemoryPeaks(rows[opens], stamps, peaks)


def scaled(base: int, multiplier: float, exponent: float, confidence_days: float) -> float:
    """WithCPUConfidenceMultiplier: base * (1 + multiplier/confidence)^exponent (inf or 0
    with no confidence at all, as Go's float division gives)."""
    if confidence_days <= 0:
        return math.inf if exponent > 0 else 0.0
    return base * float((1.0 + multiplier / confidence_days) ** exponent)


def with_margin(value: int) -> int:
    return value + amount(value * SAFETY_MARGIN)


class Decaying:
    """A decaying histogram filled pod by pod: weights are kept relative to a fixed
    anchor and moved to the histogram's own reference (its first sample's, rounded to
    the half-life) at the end, which is what shiftReferenceTimestamp does."""

    def __init__(self, buckets: Buckets, anchor: float) -> None:
        self.histogram = DecayingHistogram(buckets)
        self.anchor = anchor
        self.first: float | None = None

    def add(self, weights: Floats, first: float) -> None:
        """A pod's histogram (weights relative to the anchor), its first sample at
        `first`."""
        self.histogram.add(weights)
        self.first = first if self.first is None else min(self.first, first)

    def done(self) -> DecayingHistogram:
        if self.first is not None:
            self.histogram.scale(2.0 ** ((self.anchor - reference_of(self.first)) / HALF_LIFE))
            self.first = None
        return self.histogram


@dataclass(frozen=True, slots=True)
class VpaPart:
    """What the VPA keeps of a pod: its two histograms, weighted relative to the
    anchor's reference, and when each began."""

    summary: PodSummary
    cpu: Floats
    cpu_first: float
    memory: Floats
    memory_first: float


class VpaStrategy:
    def __init__(self, settings: Settings, step: float, anchor: float) -> None:
        self.settings, self.step, self.anchor = settings, step, anchor

    def parts(self, block: UsageBlock) -> list[VpaPart | None]:
        """Every row's histograms at once: a bincount each for the block."""
        if not len(block.t):
            return [None] * len(block)
        found = summaries(block)
        reference = reference_of(self.anchor)
        present = ~np.isnan(block.cpu_millicores)
        rows, columns = np.nonzero(present)
        # Samples are whole millicores (ContainerUsageSample.Usage is a ResourceAmount).
        cores = np.floor(block.cpu_millicores[rows, columns]) / 1000.0
        cpu_weights = decay_weights(block.t, MIN_SAMPLE_WEIGHT, reference)[columns]
        cpu = row_histograms(CPU_BUCKETS, rows, cores, cpu_weights, len(block))
        peaks = memory_peaks(block, present)
        memory = row_histograms(
            MEMORY_BUCKETS,
            peaks.rows,
            np.floor(peaks.peaks),
            decay_weights(peaks.stamps, 1.0, reference),
            len(block),
        )
        # A row's first peak is stamped first (rows come in order, their stamps ascend).
        firsts = np.flatnonzero(np.diff(peaks.rows, prepend=-1))
        memory_first = np.full(len(block), np.nan)
        memory_first[peaks.rows[firsts]] = peaks.stamps[firsts]
        return [
            VpaPart(summary, cpu[i], summary.first, memory[i], float(memory_first[i]))
            if summary is not None
            else None
            for i, summary in enumerate(found)
        ]

    def pooled(self) -> VpaPooled:
        return VpaPooled(self.settings, self.step, self.anchor)


class VpaPooled:
    def __init__(self, settings: Settings, step: float, anchor: float) -> None:
        """anchor: any time near the window (the weights' scale until result())."""
        self.settings, self.step = settings, step
        self.cpu = Decaying(CPU_BUCKETS, reference_of(anchor))
        self.memory = Decaying(MEMORY_BUCKETS, reference_of(anchor))
        self.tally = Tally()

    def add(self, pod: VpaPart) -> None:
        self.tally.add(pod.summary)
        self.cpu.add(pod.cpu, pod.cpu_first)
        self.memory.add(pod.memory, pod.memory_first)

    def confidence(self) -> float:
        """getConfidence: min(lifespan in days, samples / minutes in a day)."""
        first, last = self.tally.first, self.tally.last
        if first is None or last is None:
            return 0.0
        return min(
            (last - first) / CONFIDENCE_INTERVAL, self.tally.points / (CONFIDENCE_INTERVAL / 60)
        )

    def result(self, containers_in_pod: int) -> Recommendation:
        short = self.tally.not_enough(self.step, self.settings.points_required)
        if short is not None:
            return short
        cpu, memory = self.cpu.done(), self.memory.done()
        days = self.confidence()
        share = 1.0 / max(1, containers_in_pod)
        min_cpu = amount(POD_MIN_CPU_MILLICORES * share)
        min_memory = amount(POD_MIN_MEMORY_BYTES * share)

        cores = {f: cpu.percentile(f) for f in (LOWER, TARGET, UPPER)}
        bytes_at = {f: memory.percentile(f) for f in (LOWER, TARGET, UPPER)}

        def cpu_at(fraction: float) -> int:
            return with_margin(amount(cores[fraction] * 1000.0))

        def memory_at(fraction: float) -> int:
            return with_margin(amount(bytes_at[fraction]))

        return Recommendation(
            cpu_request_millicores=max(cpu_at(TARGET), min_cpu),
            cpu_limit_millicores=None,
            memory_request_bytes=max(memory_at(TARGET), min_memory),
            memory_limit_bytes=None,
            usage=self.tally.summary(self.step),
            cpu_percentiles_millicores={
                "p50": cores[LOWER] * 1000.0,
                "p90": cores[TARGET] * 1000.0,
                "p95": cores[UPPER] * 1000.0,
            },
            cpu_bounds_millicores=(
                max(amount(scaled(cpu_at(LOWER), 0.001, -2.0, days)), min_cpu),
                max(_upper(cpu_at(UPPER), days), float(min_cpu)),
            ),
            memory_bounds_bytes=(
                max(amount(scaled(memory_at(LOWER), 0.001, -2.0, days)), min_memory),
                max(_upper(memory_at(UPPER), days), float(min_memory)),
            ),
        )


def _upper(base: int, days: float) -> float:
    found = scaled(base, 1.0, 1.0, days)
    return found if math.isinf(found) else float(amount(found))
