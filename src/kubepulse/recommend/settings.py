"""What a recommendation is asked with, and what it answers: plain typed values.

The dashboard calls recommend_container() (__init__.py) with a container's points and
a Settings; the command line builds the same Settings from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Strategy = Literal["simple", "vpa"]
STRATEGIES: tuple[Strategy, ...] = ("simple", "vpa")

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Settings:
    strategy: Strategy = "simple"
    history_seconds: float = 14 * DAY
    """How far back the usage is read (KRR's --history_duration, 14 days)."""
    cpu_percentile: float = 95.0
    """simple: the percentile of CPU usage that becomes the request (KRR's default 95)."""
    memory_buffer_percentage: float = 15.0
    """simple: added to the peak working set for the memory request and limit."""
    points_required: int = 100
    """Fewer points than this over all of a container's pods: no recommendation."""


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """What the history held for a container in the window: the numbers -o wide shows
    beside a recommendation."""

    points: int
    """Points (one per step of each pod) the numbers came from."""
    first: float | None
    """Epoch seconds of the oldest and newest point used."""
    last: float | None
    step_seconds: float
    cpu_max_millicores: float = 0.0
    """The highest step average."""
    memory_max_bytes: int = 0

    @property
    def window_seconds(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return self.last - self.first + self.step_seconds


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One container's recommendation, with the numbers it came from.

    CPU in millicores, memory in bytes. A None request means "not enough data"
    (`reason` says why); a None limit means "no limit" (simple sets no CPU limit).
    """

    cpu_request_millicores: int | None
    cpu_limit_millicores: int | None
    memory_request_bytes: int | None
    memory_limit_bytes: int | None
    usage: UsageSummary
    cpu_percentiles_millicores: dict[str, float] = field(default_factory=dict)
    """The usage percentiles ("p50", "p90", "p95", "p99" and the chosen one), for -o wide
    and for the dashboard's band."""
    cpu_bounds_millicores: tuple[float, float] | None = None
    """vpa: its lower and upper bound (the upper may be inf with too short a history)."""
    memory_bounds_bytes: tuple[float, float] | None = None
    reason: str | None = None

    @property
    def enough_data(self) -> bool:
        return self.reason is None
