"""The latest two points of every node and container, and the rates between them.

This is metrics-server's storage (pkg/storage/{node,pod}.go) with one change: results
are stored per node as each scrape finishes, so a slow node never holds back the rest.
The rules are upstream's:
- a new point replaces `last` only if it is newer; otherwise the stored `prev` is kept
  when it is still older than the new point;
- a container keeps its `prev` only if its start time is before the stored `last`
  timestamp (otherwise it restarted and starts over);
- a container that started less than a resolution ago (but at least 10 s ago) gets a
  synthetic `prev` of zero CPU at its start time, so it has a value after one scrape;
- a pod is served only when every container has two points; its timestamp and window
  come from the container with the earliest timestamp;
- a decrease of start time or cumulative CPU skips that node or container.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping
from sys import intern
from types import MappingProxyType

from kubepulse.model import NodeSample, PodSample
from kubepulse.store.rates import (
    Columns,
    Containers,
    PodKey,
    PodRates,
    PodUsage,
    Point,
    Rate,
    node_pod_rates,
    pod_rates,
    pod_usage,
    rate,
)
from kubepulse.store.rates import point as point_of

log = logging.getLogger(__name__)

FRESH_CONTAINER_MIN_RESOLUTION = 10.0  # freshContainerMinMetricsResolution

# Point(...) without the Python-level __new__ NamedTuple generates: the store makes one
# per container per scrape, ~600,000 every 15 s at 5,000 nodes.
_new_point = tuple.__new__


def _next_prev(new: Point, last: Point | None, prev: Point | None) -> Point | None:
    if last is None:
        return None
    if new.timestamp > last.timestamp:
        return last
    if prev is not None and prev.timestamp < new.timestamp:
        return prev
    return None


# Containers of one pod: name -> (last, prev)
_Containers = dict[str, tuple[Point, Point | None]]
_NO_PODS: Mapping[PodKey, Containers] = MappingProxyType({})


class MetricsStore:
    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self._nodes: dict[str, tuple[Point, Point | None]] = {}
        # node name -> (namespace, pod name) -> containers
        self._pods: dict[str, dict[tuple[str, str], _Containers]] = {}
        # node name -> a number that changes whenever anything stored for it does, so
        # readers can keep what they derived from a node until its next scrape.
        self._generations: dict[str, int] = {}
        self._next_generation = itertools.count(1)

    # -- writing -------------------------------------------------------------------
    def store(self, node_name: str, node: NodeSample | None, pods: tuple[PodSample, ...]) -> None:
        """Store one node's scrape; it replaces everything stored for that node."""
        self._generations[node_name] = next(self._next_generation)
        if node is None:
            self._nodes.pop(node_name, None)
        else:
            new = point_of(node.usage, node.start_time)
            node_last, node_prev = self._nodes.get(node_name, (None, None))
            self._nodes[node_name] = (new, _next_prev(new, node_last, node_prev))
        old_pods = self._pods.get(node_name, {})
        new_pods: dict[tuple[str, str], _Containers] = {}
        # The container rules (module docstring) inlined: this loop runs for every
        # container of every node each resolution.
        resolution, fresh_min = self.resolution, FRESH_CONTAINER_MIN_RESOLUTION
        empty: _Containers = {}
        point, new_point = Point, _new_point
        # Equal timestamps of one scrape share one float (a kubelet stamps many
        # containers alike), and a container's unchanged start time the stored one:
        # 32 bytes a point less, at hundreds of thousands of points.
        stamps: dict[float, float] = {}
        shared = stamps.setdefault
        for pod in pods:
            # Namespaces and container names repeat across pods: one string each.
            key = (intern(pod.namespace), pod.name)
            if key in new_pods:
                continue  # duplicate pod in one scrape: keep the first, as upstream
            old = old_pods.get(key, empty)
            containers: _Containers = {}
            for c in pod.containers:
                name = intern(c.name)
                if name in containers:
                    continue
                u, start = c.usage, c.start_time
                stamp = shared(u.timestamp, u.timestamp)
                stored = old.get(name)
                if stored is not None and stored[0].start_time == start:
                    start = stored[0].start_time
                new = new_point(
                    point, (stamp, start, u.cpu_usage_core_nanoseconds, u.working_set_bytes)
                )
                prev: Point | None = None
                if start < stamp and fresh_min <= stamp - start < resolution:
                    # Started less than a resolution ago: a synthetic zero at its start.
                    prev = new_point(point, (start, start, 0, u.working_set_bytes))
                elif stored is not None:
                    last, prev_stored = stored
                    if start < last.timestamp:  # else it restarted since the stored point
                        if stamp > last.timestamp:
                            prev = last
                        elif prev_stored is not None and prev_stored.timestamp < stamp:
                            prev = prev_stored
                containers[name] = (new, prev)
            new_pods[key] = containers
        self._pods[node_name] = new_pods

    def forget(self, node_name: str) -> None:
        self._generations.pop(node_name, None)
        self._nodes.pop(node_name, None)
        self._pods.pop(node_name, None)

    def retain(self, node_names: set[str]) -> None:
        """Drop every node not in node_names (failed this cycle, or no longer a target)."""
        for name in [n for n in self._nodes.keys() | self._pods.keys() if n not in node_names]:
            self.forget(name)

    # -- reading -------------------------------------------------------------------
    def generation(self, node_name: str) -> int:
        """Changes with every store() or forget() of the node; 0 for an unknown node."""
        return self._generations.get(node_name, 0)

    def node(self, name: str) -> Rate | None:
        last, prev = self._nodes.get(name, (None, None))
        if last is None or prev is None:
            return None
        return rate(last, prev)

    def pod(self, node_name: str, namespace: str, name: str) -> PodRates | None:
        containers = self._pods.get(node_name, {}).get((namespace, name))
        return pod_rates(containers) if containers else None

    def node_pods(self, node_name: str) -> PointsOfPods:
        """One node's pods as its last scrape stored them (store() replaces, never
        mutates), for readers that derive their own form once per generation."""
        return PointsOfPods(self._pods.get(node_name, _NO_PODS))

    def pods(self) -> dict[tuple[str, str], PodRates]:
        """Every servable pod, keyed by (namespace, name)."""
        found: dict[tuple[str, str], PodRates] = {}
        for node_pods in self._pods.values():
            found.update(node_pod_rates(node_pods))
        return found

    def node_names(self) -> set[str]:
        return set(self._nodes)

    def has_two_points(self, node_name: str) -> bool:
        return self._nodes.get(node_name, (None, None))[1] is not None

    def ready(self) -> bool:
        """metrics-server's Ready(): some node and some container have two points."""
        nodes = any(prev is not None for _, prev in self._nodes.values())
        pods = any(
            prev is not None
            for node_pods in self._pods.values()
            for containers in node_pods.values()
            for _, prev in containers.values()
        )
        return nodes and pods

    def points(self) -> dict[str, int]:
        """Servable points by type, as metrics_server_storage_points counts them."""
        containers = sum(
            1
            for node_pods in self._pods.values()
            for containers in node_pods.values()
            for _, prev in containers.values()
            if prev is not None
        )
        nodes = sum(1 for _, prev in self._nodes.values() if prev is not None)
        return {"node": nodes, "container": containers}


class PointsOfPods:
    """NodePods (store/reading.py) from stored points: the rates computed as read."""

    __slots__ = ("points",)

    def __init__(self, points: Mapping[PodKey, Containers]) -> None:
        self.points = points

    def __iter__(self) -> Iterator[PodKey]:
        return iter(self.points)

    def pod_rates(self) -> Iterator[tuple[PodKey, PodRates]]:
        return iter(node_pod_rates(self.points))

    def usage(self, columns: Columns | None = None) -> list[PodUsage]:
        return pod_usage(self.points, columns)

    def samples(self) -> int:
        return sum(len(c) + 1 for c in self.points.values())
