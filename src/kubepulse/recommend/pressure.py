"""Signs that a container needs more than its usage shows: OOM kills and CPU throttling.

A container the kernel killed for memory peaked above what the history holds (the kill
came before the sample), and a throttled one was held below what it asked for: both
are flagged and never given less than they have (rows.recommended_values).

The counters are the kubelet's cAdvisor ones: container_oom_events_total (the cgroup's
memory.events oom_kill), container_cpu_cfs_periods_total and
container_cpu_cfs_throttled_periods_total (cpu.stat nr_periods and nr_throttled).
"""

from __future__ import annotations

from dataclasses import dataclass

THROTTLED_SHARE = 0.25
"""Throttled in more than this share of its CFS periods: CPU-throttled (the threshold of
kubernetes-mixin's CPUThrottlingHigh alert)."""


@dataclass(frozen=True, slots=True)
class Pressure:
    """Counter increases over the window, summed over a workload's pods."""

    oom_events: int = 0
    periods: int = 0
    throttled_periods: int = 0

    def __add__(self, other: Pressure) -> Pressure:
        return Pressure(
            self.oom_events + other.oom_events,
            self.periods + other.periods,
            self.throttled_periods + other.throttled_periods,
        )

    @property
    def throttled_share(self) -> float | None:
        """Share of the CFS periods the container was throttled in; None without a quota
        (no periods counted)."""
        return self.throttled_periods / self.periods if self.periods else None

    @property
    def cpu_throttled(self) -> bool:
        share = self.throttled_share
        return share is not None and share > THROTTLED_SHARE


NONE = Pressure()
