"""The library entry point the dashboard calls: recommend_container() over the points a
chart reads (History.query) gives what `kubepulse recommend` gives for the container."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubepulse.history.file import History
from kubepulse.recommend import Settings, recommend_container
from kubepulse.recommend.run import RecommendRequest, recommendations
from kubepulse.recommend.settings import Strategy
from tests.recommend.support import DAY, MIB, STEP, T0, container_rows, write_history

# Two pods of one container, bursty and diurnal, 3 days.
POINTS = 3 * int(DAY / STEP)
PODS = {
    "web-a": ([900 if i % 25 == 0 else 120 for i in range(POINTS)], 300 * MIB),
    "web-b": ([400 if i % 96 < 30 else 80 for i in range(POINTS)], 420 * MIB),
}


@pytest.mark.parametrize("strategy", ["simple", "vpa"])
def test_recommend_container_over_chart_points_matches_the_command(
    tmp_path: Path, strategy: Strategy
) -> None:
    rows = [
        r
        for pod, (cpu, memory) in PODS.items()
        for r in container_rows(
            "default", pod, "app", cpu, [memory - 7 * (i % 3) for i in range(POINTS)]
        )
    ]
    path = write_history(tmp_path / "h.db", rows)
    settings = Settings(strategy=strategy, history_seconds=3 * DAY)
    history = History(path)
    try:
        end = T0 + POINTS * STEP
        points = {
            pod: history.query("container", "default", pod, "app", T0, end, STEP) for pod in PODS
        }
    finally:
        history.close()
    by_command = {
        r.workload.name: r.recommendation
        for r in asyncio.run(recommendations(RecommendRequest(settings=settings, history=path)))
    }

    for pod in PODS:
        alone = recommend_container([points[pod]], settings, STEP)
        expected = by_command[pod]
        assert alone.usage.points == expected.usage.points == POINTS
        assert (alone.cpu_request_millicores, alone.memory_request_bytes) == (
            expected.cpu_request_millicores,
            expected.memory_request_bytes,
        )
        assert alone.cpu_percentiles_millicores == pytest.approx(
            expected.cpu_percentiles_millicores
        )
    # Both pods pooled as one workload's: simple takes the highest pod's numbers.
    pooled = recommend_container(list(points.values()), settings, STEP)
    assert pooled.usage.points == 2 * POINTS
    if strategy == "simple":
        assert pooled.cpu_request_millicores == max(
            r.cpu_request_millicores or 0 for r in by_command.values()
        )
        assert pooled.memory_request_bytes == max(
            r.memory_request_bytes or 0 for r in by_command.values()
        )
