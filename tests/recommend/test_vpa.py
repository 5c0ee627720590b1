"""The vpa strategy against values worked out by hand from the VPA recommender's rules
(pkg/recommender/util/histogram*.go, model/aggregations_config.go, logic/*.go):

- CPU buckets start at 0.01 * (1.05^i - 1) / 0.05 cores, memory buckets at
  1e7 * (1.05^i - 1) / 0.05 bytes; a value v is in bucket floor(log_1.05(v * 0.05 /
  first + 1)), and a percentile is the END of the bucket where the weight reaches it;
- a CPU sample weighs 0.1 * 2^((t - ref) / 24h), ref the first sample's time rounded to
  a day; a memory peak (one per pod and 24 h, stamped at the window's end) weighs
  2^((end - ref) / 24h);
- target p90, lower p50, upper p95, + 15% (whole millicores and bytes, truncated);
  bounds times (1 + 1/c) and (1 + 0.001/c)^-2, c = min(days spanned, samples / 1440);
- at least 25m and 250Mi a pod, split over its containers.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from kubepulse.recommend import vpa
from kubepulse.recommend.rows import ContainerRow
from kubepulse.recommend.run import RecommendRequest, recommendations
from kubepulse.recommend.settings import Settings
from kubepulse.recommend.source import FileUsage
from kubepulse.recommend.usage import UsageBlock
from tests.recommend.support import DAY, MIB, STEP, T0, container_rows, write_history


def vpa_rows(path: Path, points_required: int = 100) -> dict[tuple[str, str], ContainerRow]:
    settings = Settings(strategy="vpa", points_required=points_required)
    found = asyncio.run(recommendations(RecommendRequest(settings=settings, history=path)))
    return {(r.workload.name, r.container): r for r in found}


def bucket_end(value: float, first: float) -> float:
    """Where a bucket holding `value` ends (the worked rule above, written out)."""
    index = math.floor(math.log(value * 0.05 / first + 1) / math.log(1.05))
    return first * (1.05 ** (index + 1) - 1) / 0.05


def plus_margin(amount: float) -> int:
    whole = int(amount)
    return whole + int(whole * 0.15)


# 100 points at 100m on day 0, then 100 points at 300m three days later: the later ones
# weigh 2^3 = 8 times as much, so they hold 8/9 of the weight.
OLD = container_rows("default", "web", "app", [100] * 100, [100 * MIB] * 100)
NEW = container_rows("default", "web", "app", [300] * 100, [100 * MIB] * 100, start=T0 + 3 * DAY)


def test_a_sample_three_half_lives_newer_weighs_eight_times_as_much(tmp_path: Path) -> None:
    path = write_history(tmp_path / "h.db", OLD + NEW)
    source = FileUsage(path)
    chosen = vpa.VpaStrategy(Settings(strategy="vpa"), STEP, anchor=T0 + 5 * DAY)
    state = chosen.pooled()

    def add(_keys: object, block: UsageBlock) -> None:
        for part in chosen.parts(block):
            if part is not None:
                state.add(part)

    async def read() -> None:
        keys = await source.containers(T0 - DAY, T0 + 5 * DAY)
        await source.read(keys, T0 - DAY, T0 + 5 * DAY, add)

    asyncio.run(read())
    histogram = state.cpu.done()

    weights = histogram.weights[histogram.weights > 0]
    # Each stretch: 0.1 * sum(2^(i*900/86400)) over its 100 points, times 2^3 for the new.
    stretch = 0.1 * sum(2 ** (i * STEP / DAY) for i in range(100))
    assert len(weights) == 2  # 100m's bucket and 300m's
    assert math.isclose(weights[0], stretch, rel_tol=1e-9)
    assert math.isclose(weights[1], 8 * stretch, rel_tol=1e-9)


def test_decay_moves_the_median_to_the_recent_usage_and_sets_target_and_bounds(
    tmp_path: Path,
) -> None:
    path = write_history(tmp_path / "h.db", OLD + NEW)

    row = vpa_rows(path)[("web", "app")]

    # Undecayed, half the weight is at 100m and p50 would be 100m's bucket; decayed,
    # 8/9 of it is at 300m, so p50, p90 and p95 all end 300m's bucket.
    end = bucket_end(0.3, 0.01) * 1000  # bucket 18: 305.39m
    assert row.recommendation.cpu_percentiles_millicores == pytest.approx(
        {"p50": end, "p90": end, "p95": end}, rel=1e-12
    )
    assert row.recommended is not None
    assert row.recommended.cpu_request == plus_margin(end) == 350
    # Confidence: 200 samples / 1440 = 0.139 days (fewer than the 4.03 days spanned).
    confidence = 200 / 1440
    bounds = row.recommendation.cpu_bounds_millicores
    assert bounds == (
        int(plus_margin(end) * (1 + 0.001 / confidence) ** -2),
        int(plus_margin(end) * (1 + 1 / confidence)),
    )


def test_memory_takes_one_peak_per_pod_and_day_weighted_by_its_age(tmp_path: Path) -> None:
    # Peaks of 300Mi, 500Mi and 200Mi on three days; windows open at the first sample
    # and their peaks are stamped at their ends (T0 + 1, 2, 3 days): weights 1, 2, 4.
    per_day = int(DAY / STEP)
    peaks = [300 * MIB, 500 * MIB, 200 * MIB]

    def memory(i: int) -> int:
        day = i // per_day
        return peaks[day] if i % per_day == 7 else 150 * MIB + day

    rows = container_rows("default", "web", "app", [50] * (3 * per_day), memory)
    row = vpa_rows(write_history(tmp_path / "h.db", rows))[("web", "app")]

    # Weight 7 in all. p50 (3.5): 200Mi's bucket alone holds 4. p90 and p95 (6.3, 6.65):
    # 200Mi + 300Mi hold 5, 500Mi's bucket reaches 7.
    assert row.recommended is not None
    assert row.recommended.memory_request == plus_margin(bucket_end(500 * MIB, 1e7))
    lower, _ = row.recommendation.memory_bounds_bytes or (0, 0)
    confidence = min((3 * per_day - 1) * STEP / DAY, 3 * per_day / 1440)
    expected_lower = int(plus_margin(bucket_end(200 * MIB, 1e7)) * (1 + 0.001 / confidence) ** -2)
    assert lower == max(expected_lower, 250 * MIB)  # the pod's minimum, one container


def test_a_quiet_pod_gets_the_minimums_split_over_its_containers(tmp_path: Path) -> None:
    rows = container_rows("default", "idle", "app", [1] * 120, [5 * MIB] * 120)
    rows += container_rows("default", "idle", "sidecar", [1] * 120, [5 * MIB] * 120)

    found = vpa_rows(write_history(tmp_path / "h.db", rows))

    for container in ("app", "sidecar"):
        rec = found[("idle", container)].recommended
        assert rec is not None
        assert rec.cpu_request == int(25 / 2)  # 12m: 25m a pod, two containers
        assert rec.memory_request == int(250 * MIB / 2)
        assert rec.cpu_limit is None and rec.memory_limit is None  # none set, none made


def test_vpa_also_refuses_to_guess_from_too_few_points(tmp_path: Path) -> None:
    rows = container_rows("default", "new", "app", [100] * 10, [100 * MIB] * 10)

    row = vpa_rows(write_history(tmp_path / "h.db", rows))[("new", "app")]

    assert row.recommended is None
    assert row.recommendation.reason == "not enough data: 10 points of 100 required"


PER_DAY = int(DAY / STEP)  # 96 points a day
CPU_FIRST, MEMORY_FIRST = 0.01, 1e7
# name -> (CPU millicores, memory MiB of each point, and the values whose buckets hold
# the target (p90): worked out from the weights above, in the comments.
SHAPES: dict[str, tuple[list[float], list[int], float, float]] = {
    # One bucket holds all the weight.
    "steady": ([200] * 200, [300] * 200, 200, 300),
    # Bursts of 1000m in 10 of 200 points (a little over 5% of the weight, the later
    # points weighing more): p90 stays in 50m's bucket. Memory peaks a day are 400Mi.
    "bursty": (
        [1000 if i % 20 == 19 else 50 for i in range(200)],
        [400 if i % 20 == 19 else 100 for i in range(200)],
        50,
        400,
    ),
    # A third of each day at 800m: over 10% of the weight, so p90 is 800m's bucket.
    "diurnal": (
        [800 if i % PER_DAY < PER_DAY // 3 else 100 for i in range(4 * PER_DAY)],
        [600 if i % PER_DAY < PER_DAY // 3 else 200 for i in range(4 * PER_DAY)],
        800,
        600,
    ),
    # A leak over 4 days: daily peaks 195, 291, 387 and 483Mi weigh 1, 2, 4 and 8; p90
    # (13.5 of 15) is reached in the last one's bucket.
    "leak": ([100] * (4 * PER_DAY), [100 + i for i in range(4 * PER_DAY)], 100, 483),
    # 700Mi until a restart at point 150, then 50Mi growing 1Mi a point: daily peaks
    # 700, 700, 187 and 199Mi weigh 1, 2, 4, 8; the two recent ones hold 12 of 15, so
    # p90 (13.5) still reaches the 700Mi before the restart.
    "restarted": ([300] * 300, [700 if i < 150 else 50 + i - 150 for i in range(300)], 300, 700),
}


def test_each_usage_shape_gets_the_target_of_its_decayed_buckets(tmp_path: Path) -> None:
    rows = [
        r
        for name, (cpu, memory, _, _) in SHAPES.items()
        for r in container_rows("default", name, "app", cpu, [m * MIB for m in memory])
    ]
    found = vpa_rows(write_history(tmp_path / "h.db", rows))

    for name, (_, _, cpu_at, memory_at) in SHAPES.items():
        rec = found[(name, "app")].recommended
        assert rec is not None, name
        cpu = plus_margin(bucket_end(cpu_at / 1000, CPU_FIRST) * 1000)
        memory = plus_margin(bucket_end(memory_at * MIB, MEMORY_FIRST))
        assert (rec.cpu_request, rec.memory_request) == (max(cpu, 25), max(memory, 250 * MIB)), name
