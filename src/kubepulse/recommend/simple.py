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

import numpy as np

from kubepulse.recommend.settings import Recommendation, Settings
from kubepulse.recommend.usage import MI, PodUsage, Tally, ceil_mebibytes, ceil_millicores

MIN_CPU_MILLICORES = 10
MIN_MEMORY_BYTES = 100 * MI
SHOWN_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def percentile_label(percentile: float) -> str:
    return f"p{percentile:g}"


class SimplePooled:
    """Of each pod: its percentiles; of all: the highest of each, and the tally."""

    def __init__(self, settings: Settings, step: float) -> None:
        self.settings, self.step = settings, step
        self.percentiles = sorted({*SHOWN_PERCENTILES, settings.cpu_percentile})
        self.highest = np.zeros(len(self.percentiles))
        self.tally = Tally()

    def add(self, pod: PodUsage) -> None:
        if not len(pod):
            return
        self.tally.add(pod)
        found = np.percentile(pod.cpu_millicores, self.percentiles)
        self.highest = np.maximum(self.highest, found)

    def result(self, containers_in_pod: int) -> Recommendation:
        short = self.tally.not_enough(self.step, self.settings.points_required)
        if short is not None:
            return short
        shown = dict(
            zip(map(percentile_label, self.percentiles), self.highest.tolist(), strict=True)
        )
        cpu = shown[percentile_label(self.settings.cpu_percentile)]
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
