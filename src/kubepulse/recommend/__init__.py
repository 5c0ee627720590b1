"""Right-sizing: requests and limits recommended from the usage history.

    from kubepulse.recommend import Settings, recommend_container
    rec = recommend_container([points_of_pod_a, points_of_pod_b], Settings(), step=900)

Each sequence is one pod's points of the same container (history.query's
HistoryPoints, oldest first): a workload's pods pooled. `simple` follows KRR's default
strategy, `vpa` the Vertical Pod Autoscaler's recommender (simple.py, vpa.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from kubepulse.history.read import HistoryPoint
from kubepulse.recommend.settings import Recommendation, Settings, UsageSummary
from kubepulse.recommend.simple import SimplePooled
from kubepulse.recommend.usage import Pooled, pod_usage
from kubepulse.recommend.vpa import VpaPooled

__all__ = ["Recommendation", "Settings", "UsageSummary", "pooled", "recommend_container"]


def pooled(settings: Settings, step: float, anchor: float) -> Pooled:
    """The chosen strategy's state for one container of a workload, to add its pods'
    usage to one at a time. `anchor`: a time near the window (the window's end)."""
    if settings.strategy == "vpa":
        return VpaPooled(settings, step, anchor)
    return SimplePooled(settings, step)


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
    state = pooled(settings, step, anchor=max((float(u.t[-1]) for u in usage), default=0.0))
    for pod in usage:
        state.add(pod)
    return state.result(containers_in_pod)
