"""From a source's history (and, with a cluster, its pods) to the table's rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubepulse.kube.objects import pod_from_object
from kubepulse.recommend import strategy
from kubepulse.recommend.owners import Object, Owners, Workload
from kubepulse.recommend.pressure import NONE, Pressure
from kubepulse.recommend.rows import ContainerRow, Values, current_values, recommended_values
from kubepulse.recommend.settings import Recommendation, Settings
from kubepulse.recommend.source import ContainerKey, UsageSource
from kubepulse.recommend.usage import Pooled, UsageBlock


@dataclass(frozen=True, slots=True)
class Scope:
    namespace: str | None
    """None: all namespaces."""
    selector: Callable[[Mapping[str, str]], bool] | None = None
    """Label selector of the pods (Kubernetes mode only)."""


def oom_killed(pod: Object, container: str) -> bool:
    """Whether the kubelet reports the container's last end as an OOM kill
    (ContainerStateTerminated.reason "OOMKilled")."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != container:
            continue
        for state in (status.get("lastState") or {}, status.get("state") or {}):
            if (state.get("terminated") or {}).get("reason") == "OOMKilled":
                return True
    return False


def _newest(pods: Sequence[Object]) -> Object:
    def created(pod: Object) -> str:
        return str((pod.get("metadata") or {}).get("creationTimestamp") or "")

    return max(pods, key=created)


def _current(pods: Sequence[Object], container: str) -> Values | None:
    if not pods:
        return None
    spec = pod_from_object(_newest(pods), keep_raw=False)
    found = next((c for c in spec.containers if c.name == container), None)
    return current_values(found) if found is not None else None


def group(
    keys: Sequence[ContainerKey], owners: Owners, scope: Scope
) -> dict[tuple[Workload, str], list[ContainerKey]]:
    """The containers with history, by workload and container name, in scope."""
    live = owners.live_pods()
    grouped: dict[tuple[Workload, str], list[ContainerKey]] = {}
    for key in keys:
        namespace, pod, container = key
        if scope.namespace is not None and namespace != scope.namespace:
            continue
        workload = owners.workload(namespace, pod)
        if scope.selector is not None and not any(
            scope.selector((p.get("metadata") or {}).get("labels") or {})
            for p in live.get(workload, [])
        ):
            continue
        grouped.setdefault((workload, container), []).append(key)
    return grouped


async def collect(
    source: UsageSource,
    owners: Owners,
    scope: Scope,
    settings: Settings,
    end: float,
) -> list[ContainerRow]:
    start = end - settings.history_seconds
    keys = await source.containers(start, end)
    grouped = group(keys, owners, scope)
    live = owners.live_pods()
    # vpa splits its per-pod minimums over the pod's containers: those of the pod spec
    # when a pod runs, else those with history.
    containers_of: dict[Workload, set[str]] = {}
    for workload, container in grouped:
        containers_of.setdefault(workload, set()).add(container)
    for workload, pods in live.items():
        spec = (_newest(pods).get("spec") or {}).get("containers") or []
        containers_of[workload] = {str(c.get("name")) for c in spec}
    group_of = {k: g for g, members in grouped.items() for k in members}
    pressure: dict[tuple[Workload, str], Pressure] = {}
    for key, found in (await source.pressure(list(group_of), start, end)).items():
        pressure[group_of[key]] = pressure.get(group_of[key], NONE) + found
    left = {g: len(members) for g, members in grouped.items()}
    chosen = strategy(settings, source.step, end)
    states: dict[tuple[Workload, str], Pooled[Any]] = {}
    pods_of: dict[tuple[Workload, str], int] = {}
    rows: list[ContainerRow] = []

    def each(keys: Sequence[ContainerKey], block: UsageBlock) -> None:
        for key, part in zip(keys, chosen.parts(block), strict=True):
            found = group_of[key]
            if part is not None:
                if found not in states:
                    states[found] = chosen.pooled()
                states[found].add(part)
                pods_of[found] = pods_of.get(found, 0) + 1
            left[found] -= 1
            # A group is answered as soon as all its pods are read: its state (vpa's
            # histograms) is not kept for the rest of the file.
            if left[found] == 0 and found in states:
                workload, container = found
                state = states.pop(found)
                rows.append(
                    _row(
                        workload,
                        container,
                        pods_of[found],
                        live.get(workload, []),
                        settings,
                        state.result(len(containers_of[workload])),
                        pressure.get(found, NONE),
                    )
                )

    await source.read(list(group_of), start, end, each)
    rows.sort(key=lambda r: (-r.size_of_change, r.workload, r.container))
    return rows


def _row(
    workload: Workload,
    container: str,
    count: int,
    pods: Sequence[Object],
    settings: Settings,
    rec: Recommendation,
    pressure: Pressure,
) -> ContainerRow:
    current = _current(pods, container)
    killed = pressure.oom_events > 0 or any(oom_killed(p, container) for p in pods)
    return ContainerRow(
        workload=workload,
        container=container,
        pods=count,
        replicas=len(pods) if pods else 1,
        current=current,
        recommendation=rec,
        recommended=recommended_values(
            rec, settings.strategy, current, killed, pressure.cpu_throttled
        ),
        oom_killed=killed,
        pressure=pressure,
    )


def no_owners() -> Owners:
    """Host mode: every pod its own workload."""
    return Owners.of([], [])
