"""Right-sizing: requests and limits recommended from the usage history.

    from kubepulse.recommend import Settings, recommend_container
    rec = recommend_container([points_of_pod_a, points_of_pod_b], Settings(), step=900)

Each sequence is one pod's points of the same container (history.query's
HistoryPoints, oldest first): a workload's pods pooled. `simple` follows KRR's default
strategy, `vpa` the Vertical Pod Autoscaler's recommender (simple.py, vpa.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubepulse.history.read import HistoryPoint
from kubepulse.recommend.settings import Recommendation, Settings, UsageSummary
from kubepulse.recommend.simple import SimpleStrategy
from kubepulse.recommend.usage import Strategy, UsageBlock, pod_usage
from kubepulse.recommend.vpa import VpaStrategy

__all__ = ["Recommendation", "Settings", "UsageSummary", "recommend_container", "strategy"]


def strategy(settings: Settings, step: float, anchor: float) -> Strategy[Any]:
    """The chosen strategy, for a window whose points stand for `step` seconds each.
    `anchor`: a time near the window (the window's end)."""
    if settings.strategy == "vpa":
        return VpaStrategy(settings, step, anchor)
    return SimpleStrategy(settings, step)


def recommend_container(
    pods: Sequence[Sequence[HistoryPoint]],
    settings: Settings,
    step: float,
    containers_in_pod: int = 1,
) -> Recommendation:
    """The recommendation for one container of a workload, from each of its pods' points.

    `step`: the seconds each point stands for (the tier's width, for -o wide's window);
    `containers_in_pod`: how many containers share the pod (vpa splits its per-pod
    minimums over them)."""
    usage = [pod_usage(points) for points in pods if points]
    chosen = strategy(settings, step, anchor=max((float(u.t[-1]) for u in usage), default=0.0))
    state = chosen.pooled()
    for pod in usage:
        for part in chosen.parts(UsageBlock.of(pod)):
            if part is not None:
                state.add(part)
    return state.result(containers_in_pod)
