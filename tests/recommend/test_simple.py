"""The simple strategy (KRR's) over real history files: expectations computed from its
rules (per-pod percentile, highest pod; peak + buffer; 1m and 1Mi up; 10m and 100Mi
at least), never copied from an output."""

from __future__ import annotations

import asyncio
import io
import json
import math
import random
from pathlib import Path

import numpy as np

from kubepulse.recommend import report
from kubepulse.recommend.rows import ContainerRow
from kubepulse.recommend.run import RecommendRequest, recommendations
from kubepulse.recommend.settings import Settings
from tests.recommend.support import DAY, MIB, STEP, T0, container_rows, write_history


def rows_of(path: Path, **settings: object) -> list[ContainerRow]:
    request = RecommendRequest(settings=Settings(**settings), history=path)  # type: ignore[arg-type]
    return asyncio.run(recommendations(request))


def one(path: Path, pod: str, container: str, **settings: object) -> ContainerRow:
    return next(
        r for r in rows_of(path, **settings) if r.workload.name == pod and r.container == container
    )


def test_cpu_request_is_the_95th_percentile_and_memory_the_peak_plus_15_percent(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    cpu = [rng.randrange(50, 400) for _ in range(400)]  # whole millicores, stored exactly
    memory = [rng.randrange(100, 300) * MIB + rng.randrange(MIB) for _ in range(400)]
    path = write_history(tmp_path / "h.db", container_rows("default", "web", "app", cpu, memory))

    row = one(path, "web", "app")

    rec = row.recommended
    assert rec is not None
    assert rec.cpu_request == math.ceil(np.percentile(cpu, 95))
    assert rec.cpu_limit is None  # simple sets no CPU limit
    peak = max(memory) * 1.15
    assert rec.memory_request == rec.memory_limit == math.ceil(peak / MIB) * MIB
    assert row.recommendation.usage.points == 400
    assert row.recommendation.usage.step_seconds == STEP  # the 15-minute tier
    assert row.recommendation.usage.window_seconds == 400 * STEP


def test_the_percentile_and_buffer_are_the_ones_asked_for(tmp_path: Path) -> None:
    cpu = list(range(1, 201))  # 1m .. 200m
    memory = [200 * MIB] * 200
    path = write_history(tmp_path / "h.db", container_rows("default", "web", "app", cpu, memory))

    rec = one(path, "web", "app", cpu_percentile=50.0, memory_buffer_percentage=40.0).recommended

    assert rec is not None
    assert rec.cpu_request == math.ceil(np.percentile(cpu, 50))  # 100.5m -> 101m
    assert rec.memory_request == math.ceil(200 * 1.4) * MIB


def test_pods_of_one_workload_give_the_highest_of_their_percentiles(tmp_path: Path) -> None:
    quiet = [10 + i % 20 for i in range(150)]
    busy = [200 + i % 50 for i in range(150)]
    path = write_history(
        tmp_path / "h.db",
        container_rows("default", "quiet", "app", quiet, [50 * MIB] * 150)
        + container_rows("default", "busy", "app", busy, [300 * MIB] * 150),
    )

    rows = {r.workload.name: r for r in rows_of(path)}

    busy_rec = rows["busy"].recommended
    assert busy_rec is not None and busy_rec.cpu_request == math.ceil(np.percentile(busy, 95))
    # Each pod is its own workload here (no cluster): the quiet one is not pulled up.
    quiet_rec = rows["quiet"].recommended
    assert quiet_rec is not None and quiet_rec.cpu_request == math.ceil(np.percentile(quiet, 95))
    assert list(rows) == ["busy", "quiet"]  # sorted by the size of the change


def test_a_container_with_too_few_points_gets_not_enough_data_not_a_guess(
    tmp_path: Path,
) -> None:
    path = write_history(
        tmp_path / "h.db",
        container_rows("default", "new", "app", [100] * 99, [100 * MIB] * 99)
        + container_rows("default", "old", "app", [100] * 100, [100 * MIB] * 100),
    )

    rows = {r.workload.name: r for r in rows_of(path)}

    assert rows["new"].recommended is None
    assert rows["new"].recommendation.reason == "not enough data: 99 points of 100 required"
    assert rows["old"].recommended is not None
    assert rows["new"] == rows_of(path)[-1]  # rows without a recommendation come last


def test_points_outside_the_history_duration_are_not_used(tmp_path: Path) -> None:
    # Two days: a busy first day, then a quiet one; a one-day window sees the quiet one.
    per_day = int(DAY / STEP)
    cpu = [900] * per_day + [100] * per_day
    path = write_history(
        tmp_path / "h.db", container_rows("default", "web", "app", cpu, [100 * MIB] * len(cpu))
    )

    row = one(path, "web", "app", history_seconds=DAY - 1, points_required=50)

    assert row.recommended is not None and row.recommended.cpu_request == 100
    assert row.recommendation.usage.points == per_day
    assert row.recommendation.usage.first == T0 + DAY


def test_a_pod_that_ended_before_the_window_is_left_out_not_an_error(tmp_path: Path) -> None:
    # "old" ran on day 0 only (its chunks end before a one-day window on day 2); the file
    # still lists its series. Both strategies pass over it.
    per_day = int(DAY / STEP)
    rows = container_rows("default", "old", "app", [300] * per_day, [100 * MIB] * per_day)
    rows += container_rows(
        "default", "web", "app", [100] * 2 * per_day, [100 * MIB] * 2 * per_day, start=T0 + DAY
    )
    path = write_history(tmp_path / "h.db", rows)

    for strategy in ("simple", "vpa"):
        found = rows_of(path, strategy=strategy, history_seconds=DAY - 1, points_required=50)
        assert [r.workload.name for r in found] == ["web"]


def test_tiny_usage_gets_krr_minimums_of_10m_and_100mi(tmp_path: Path) -> None:
    path = write_history(
        tmp_path / "h.db", container_rows("default", "idle", "app", [1] * 120, [MIB] * 120)
    )

    rec = one(path, "idle", "app").recommended

    assert rec is not None and (rec.cpu_request, rec.memory_request) == (10, 100 * MIB)


PER_DAY = int(DAY / STEP)  # 96 points a day
# name -> (CPU millicores, memory bytes) of each point, and the expected CPU request and
# memory request = limit, worked out by hand from the rules above.
SCENARIOS: dict[str, tuple[list[float], list[int], int, int]] = {
    # 200m and 300Mi throughout: 200m; 300Mi * 1.15 = 345Mi.
    "steady": ([200] * 200, [300 * MIB] * 200, 200, 345 * MIB),
    # 50m with a 1000m burst every 20th point (10 of 200): sorted, ranks 0..189 are 50m,
    # p95's rank 0.95 * 199 = 189.05 lies 5% of the way to 1000m: 97.5m -> 98m.
    # Memory bursts to 400Mi with them: 460Mi.
    "bursty": (
        [1000 if i % 20 == 19 else 50 for i in range(200)],
        [400 * MIB if i % 20 == 19 else 100 * MIB for i in range(200)],
        98,
        460 * MIB,
    ),
    # 8 busy hours a day at 800m and 600Mi, 16 quiet at 100m and 200Mi, for 4 days: a
    # third of the points are busy, so p95 is 800m; 600Mi * 1.15 = 690Mi.
    "diurnal": (
        [800 if i % PER_DAY < PER_DAY // 3 else 100 for i in range(4 * PER_DAY)],
        [600 * MIB if i % PER_DAY < PER_DAY // 3 else 200 * MIB for i in range(4 * PER_DAY)],
        800,
        690 * MIB,
    ),
    # A leak: 100Mi growing by 1Mi a point to 499Mi; the peak is the last: 573.85Mi -> 574Mi.
    "leak": ([100] * 400, [(100 + i) * MIB for i in range(400)], 100, 574 * MIB),
    # Restarted after 150 points: 700Mi before, 50Mi..199Mi after; the peak before the
    # restart still counts: 805Mi. CPU 0 while it restarted (5 points) is among the lowest.
    "restarted": (
        [0 if 150 <= i < 155 else 300 for i in range(300)],
        [700 * MIB if i < 150 else (50 + i - 150) * MIB for i in range(300)],
        300,
        805 * MIB,
    ),
}


def test_each_usage_shape_gets_the_requests_its_rules_give(tmp_path: Path) -> None:
    rows = [
        r
        for name, (cpu, memory, _, _) in SCENARIOS.items()
        for r in container_rows("default", name, "app", cpu, memory)
    ]
    found = {r.workload.name: r for r in rows_of(write_history(tmp_path / "h.db", rows))}

    for name, (_, _, cpu_request, memory_request) in SCENARIOS.items():
        rec = found[name].recommended
        assert rec is not None, name
        assert (rec.cpu_request, rec.memory_request) == (cpu_request, memory_request), name
        assert rec.memory_limit == memory_request and rec.cpu_limit is None


def test_rows_are_sorted_by_the_size_of_their_change(tmp_path: Path) -> None:
    # Host mode: what is set now is unknown, so the whole recommendation is the change;
    # cores and GiB weigh the same.
    rows = container_rows("default", "small", "app", [100] * 150, [100 * MIB] * 150)
    rows += container_rows("default", "cpu-heavy", "app", [1500] * 150, [100 * MIB] * 150)
    rows += container_rows("default", "memory-heavy", "app", [100] * 150, [2048 * MIB] * 150)
    rows += container_rows("default", "new", "app", [100] * 5, [100 * MIB] * 5)

    order = [r.workload.name for r in rows_of(write_history(tmp_path / "h.db", rows))]

    # memory-heavy: 2355.2Mi -> 2.3 GiB; cpu-heavy: 1.5 cores; small: 0.1 cores;
    # new: not enough data, last.
    assert order == ["memory-heavy", "cpu-heavy", "small", "new"]


def test_json_written_an_item_at_a_time_is_the_whole_document(tmp_path: Path) -> None:
    rows = container_rows("default", "web", "app", [100] * 150, [100 * MIB] * 150)
    rows += container_rows("default", "new", "app", [100] * 5, [100 * MIB] * 5)
    found = rows_of(write_history(tmp_path / "h.db", rows))
    settings = Settings()

    for some in (found, found[:1], []):
        out = io.BytesIO()
        report.write_json(some, settings, out)
        text = out.getvalue().decode()
        assert json.loads(text) == json.loads(json.dumps(report.document(some, settings)))
        assert text.endswith("}\n") and '\n  "items": [' in text
    assert len(json.loads(out.getvalue())["items"]) == 0


def test_not_enough_data_counts_its_points_in_words(tmp_path: Path) -> None:
    rows = container_rows("default", "one", "app", [100], [100 * MIB])
    rows += container_rows("default", "two", "app", [100] * 2, [100 * MIB] * 2)
    found = {
        r.workload.name: r.recommendation.reason
        for r in rows_of(write_history(tmp_path / "h.db", rows))
    }

    assert found == {
        "one": "not enough data: 1 point of 100 required",
        "two": "not enough data: 2 points of 100 required",
    }
