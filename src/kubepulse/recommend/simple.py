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

import numpy as np

from kubepulse.recommend.settings import Recommendation, Settings
from kubepulse.recommend.usage import MI, PodUsage, ceil_mebibytes, ceil_millicores, summarize

MIN_CPU_MILLICORES = 10
MIN_MEMORY_BYTES = 100 * MI
SHOWN_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def cpu_percentile(pods: Sequence[PodUsage], percentile: float) -> float:
    """The percentile of each pod's CPU, the highest of them (millicores)."""
    return max(
        (float(np.percentile(p.cpu_millicores, percentile)) for p in pods if len(p)), default=0.0
    )


def percentile_label(percentile: float) -> str:
    return f"p{percentile:g}"


def not_enough(pods: Sequence[PodUsage], settings: Settings, step: float) -> Recommendation | None:
    """The answer for too few points, or None when there are enough."""
    usage = summarize(pods, step)
    if usage.points >= settings.points_required:
        return None
    return Recommendation(
        None,
        None,
        None,
        None,
        usage=usage,
        reason=f"not enough data: {usage.points} points of {settings.points_required} required",
    )


def recommend(pods: Sequence[PodUsage], settings: Settings, step: float) -> Recommendation:
    short = not_enough(pods, settings, step)
    if short is not None:
        return short
    cpu = cpu_percentile(pods, settings.cpu_percentile)
    usage = summarize(pods, step)
    memory = usage.memory_max_bytes * (1 + settings.memory_buffer_percentage / 100)
    memory_bytes = max(ceil_mebibytes(memory), MIN_MEMORY_BYTES)
    shown = sorted({*SHOWN_PERCENTILES, settings.cpu_percentile})
    return Recommendation(
        cpu_request_millicores=max(ceil_millicores(cpu), MIN_CPU_MILLICORES),
        cpu_limit_millicores=None,
        memory_request_bytes=memory_bytes,
        memory_limit_bytes=memory_bytes,
        usage=usage,
        cpu_percentiles_millicores={percentile_label(q): cpu_percentile(pods, q) for q in shown},
    )
