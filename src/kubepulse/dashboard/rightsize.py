"""The pod page's right-sizing hint: what each container would request, from its last
seven days, by the same rule `kubepulse recommend` uses (recommend/simple.py, KRR's
default strategy: the 95th percentile of CPU, the peak working set plus 15%).

Seven days of one container are ~670 points of the 15-minute tier: read once per pod
and kept for REUSE_SECONDS, since the page polls every few seconds and the answer
moves by at most one step in a quarter hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubepulse.history.sources import SeriesSource
from kubepulse.recommend import Settings, recommend_container

WINDOW_SECONDS = 7 * 86400
STEP_SECONDS = 900
"""The 15-minute tier: its steps are what the recommend command reads too."""
REUSE_SECONDS = 300.0
MAX_KEPT = 1000
"""Pods whose hints are kept; the oldest are let go beyond this."""
SETTINGS = Settings(history_seconds=WINDOW_SECONDS)


class RightSizer:
    def __init__(self, history: SeriesSource) -> None:
        self.history = history
        self._kept: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}

    async def hints(
        self, namespace: str, pod: str, containers: Sequence[str], now: float
    ) -> list[dict[str, Any]]:
        """Per container: the suggested CPU and memory request over the last seven days,
        or why there is none ("not enough data: ...")."""
        key = (namespace, pod)
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < REUSE_SECONDS:
            return kept[1]
        found = []
        for name in containers:
            points = await self.history.series(
                "container", namespace, pod, name, now - WINDOW_SECONDS, now, STEP_SECONDS
            )
            rec = recommend_container([points], SETTINGS, STEP_SECONDS)
            found.append(
                {
                    "name": name,
                    "cpu_request": rec.cpu_request_millicores,
                    "memory_request": rec.memory_request_bytes,
                    "cpu_p95": rec.cpu_percentiles_millicores.get("p95"),
                    "memory_max": rec.usage.memory_max_bytes,
                    "points": rec.usage.points,
                    "window_seconds": WINDOW_SECONDS,
                    "reason": rec.reason,
                }
            )
        if len(self._kept) >= MAX_KEPT:
            del self._kept[min(self._kept, key=lambda k: self._kept[k][0])]
        self._kept[key] = (now, found)
        return found
