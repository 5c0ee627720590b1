"""The pod page's right-sizing hint, and the Right-sizing view's table: what each
container would request, from its last seven days, by the same rule `kubepulse
recommend` uses (recommend/simple.py, KRR's default strategy: the 95th percentile of
CPU, the peak working set plus 15%), beside what it requests now (recommend/rows.py:
a limit without a request stands for the request, as the API server defaults it).

Seven days of one container are ~670 points of the 15-minute tier: read once per pod
and kept for REUSE_SECONDS, since the page polls every few seconds and the answer
moves by at most one step in a quarter hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubepulse.history.sources import SeriesSource
from kubepulse.kube.objects import Pod
from kubepulse.recommend import Settings, recommend_container
from kubepulse.recommend.rows import change_size, current_values

WINDOW_SECONDS = 7 * 86400
STEP_SECONDS = 900
"""The 15-minute tier: its steps are what the recommend command reads too."""
REUSE_SECONDS = 300.0
MAX_KEPT = 1000
"""Pods whose hints are kept; the oldest are let go beyond this."""
SETTINGS = Settings(history_seconds=WINDOW_SECONDS)
MAX_PODS = 300
"""Pods the Right-sizing view reads at once (each a week of each container, kept for
REUSE_SECONDS): beyond this the view asks for a namespace."""


class RightSizer:
    def __init__(self, history: SeriesSource) -> None:
        self.history = history
        self._kept: dict[tuple[str, ...], tuple[float, list[dict[str, Any]]]] = {}

    async def hints(
        self, namespace: str, pod: str, containers: Sequence[str], now: float
    ) -> list[dict[str, Any]]:
        """Per container: the suggested CPU and memory request over the last seven days,
        or why there is none ("not enough data: ...")."""
        return await self.pooled((namespace, pod), namespace, [pod], containers, now)

    def kept(self, key: tuple[str, ...], now: float) -> bool:
        """Whether pooled() would answer `key` from what it keeps, reading nothing."""
        kept = self._kept.get(key)
        return kept is not None and now - kept[0] < REUSE_SECONDS

    async def pooled(
        self,
        key: tuple[str, ...],
        namespace: str,
        pods: Sequence[str],
        containers: Sequence[str],
        now: float,
    ) -> list[dict[str, Any]]:
        """hints() of a workload: each container's points of all its pods pooled, as
        `kubepulse recommend` pools a workload's replicas. `key` names what is kept."""
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < REUSE_SECONDS:
            return kept[1]
        found: list[dict[str, Any]] = []
        for name in containers:
            points = [
                await self.history.series(
                    "container", namespace, pod, name, now - WINDOW_SECONDS, now, STEP_SECONDS
                )
                for pod in pods
            ]
            rec = recommend_container(points, SETTINGS, STEP_SECONDS)
            found.append(
                {
                    "name": name,
                    "cpu_request": rec.cpu_request_millicores,
                    "memory_request": rec.memory_request_bytes,
                    "cpu_p50": rec.cpu_percentiles_millicores.get("p50"),
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

    async def table(self, pods: Sequence[Pod], now: float) -> list[dict[str, Any]]:
        """A row per container of the pods: its requests now, the suggestion and the
        change, largest change first (`kubepulse recommend`'s order); rows without a
        suggestion last."""
        rows = []
        for pod in pods:
            specs = {c.name: c for c in pod.containers}
            for hint in await self.hints(pod.namespace, pod.name, list(specs), now):
                current = current_values(specs[hint["name"]])
                row = {
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    **hint,
                    "cpu_current": current.cpu_request,
                    "memory_current": current.memory_request,
                    "cpu_change": None,
                    "memory_change": None,
                    "size_of_change": -1.0,
                }
                if hint["reason"] is None:
                    cpu = hint["cpu_request"] - (current.cpu_request or 0)
                    memory = hint["memory_request"] - (current.memory_request or 0)
                    row |= {
                        "cpu_change": cpu,
                        "memory_change": memory,
                        "size_of_change": change_size(cpu, memory),
                    }
                rows.append(row)
        rows.sort(key=lambda r: (-r["size_of_change"], r["namespace"], r["pod"], r["name"]))
        return rows
