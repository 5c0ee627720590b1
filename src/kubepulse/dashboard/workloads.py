"""A workload's pods (a Deployment's, StatefulSet's, DaemonSet's, ReplicaSet's or Job's),
live and ended, and their usage summed step by step: the aggregate charts of a
workload's page. Which pods belong to which workload is kube/owners.py's rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kubepulse.kube.objects import Pod
from kubepulse.kube.owners import name_is_owned_by

MAX_POOLED = 300
"""Pods whose series are summed at most (each is one read of the history); a bigger
workload's page says it shows the sum of this many."""


def live_pods(pods: Iterable[Pod], namespace: str, kind: str, name: str) -> list[Pod]:
    """The served pods of this workload, by name."""
    owner = (kind, name)
    return sorted(
        (p for p in pods if p.namespace == namespace and p.owner == owner),
        key=lambda p: p.name,
    )


def ended_pods(
    seen: Mapping[tuple[str, str], float | None],
    live: set[str],
    namespace: str,
    kind: str,
    name: str,
) -> list[str]:
    """Pods the history saw that are no longer served and bear a name this workload's
    controller gives, newest first."""
    found = [
        (-(last or 0.0), pod)
        for (ns, pod), last in seen.items()
        if ns == namespace and pod not in live and name_is_owned_by(kind, name, pod)
    ]
    return [pod for _, pod in sorted(found)]


def summed(series: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """[[t, cpu, memory], ...] of several pods added step by step: the history aligns
    every series' steps to the same grid, so equal timestamps are the same step. A step
    where only some pods have points is the sum of those (pods come and go)."""
    totals: dict[float, list[float]] = {}
    for rows in series:
        for t, cpu, memory in rows:
            total = totals.get(t)
            if total is None:
                totals[t] = [t, cpu, memory]
            else:
                total[1] += cpu
                total[2] += memory
    return [totals[t] for t in sorted(totals)]
