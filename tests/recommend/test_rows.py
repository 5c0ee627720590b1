"""What is set from a recommendation, given what the container has now: vpa keeps each
limit's ratio to its request; an OOM-killed container keeps its memory and a
CPU-throttled one its CPU."""

from __future__ import annotations

from kubepulse.recommend.pressure import Pressure
from kubepulse.recommend.rows import Values, recommended_values
from kubepulse.recommend.settings import Recommendation, UsageSummary
from tests.recommend.support import MIB

NOW = Values(cpu_request=500, cpu_limit=1000, memory_request=512 * MIB, memory_limit=1024 * MIB)
# Less of both than the container has now.
LESS = Recommendation(200, None, 256 * MIB, 256 * MIB, UsageSummary(500, 0.0, 1.0, 900.0))


def test_vpa_keeps_each_limits_ratio_to_its_request() -> None:
    assert recommended_values(LESS, "vpa", NOW, oom_killed=False) == Values(
        200, 400, 256 * MIB, 512 * MIB
    )


def test_a_throttled_container_keeps_its_cpu_and_an_oom_killed_one_its_memory() -> None:
    vpa = recommended_values(LESS, "vpa", NOW, oom_killed=False, cpu_throttled=True)
    assert vpa == Values(500, 1000, 256 * MIB, 512 * MIB)
    simple = recommended_values(LESS, "simple", NOW, oom_killed=True, cpu_throttled=True)
    # simple sets no CPU limit (what throttled it), and keeps the request and the memory.
    assert simple == Values(500, None, 512 * MIB, 1024 * MIB)


def test_throttled_means_over_a_quarter_of_the_cfs_periods() -> None:
    assert Pressure(periods=100, throttled_periods=26).cpu_throttled
    assert not Pressure(periods=100, throttled_periods=25).cpu_throttled
    assert not Pressure(oom_events=3).cpu_throttled  # no quota: no periods, no share
    assert Pressure(oom_events=1) + Pressure(periods=4, throttled_periods=2) == Pressure(1, 4, 2)
