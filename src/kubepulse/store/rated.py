"""Usage another metrics API already served as rates (`kubepulse dashboard`).

NodeMetrics and PodMetrics carry rates over a window, not counters: they are kept as
they came, and read through the same interface as MetricsStore's (store/reading.py),
so the dashboard, the history and the exposition read both alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from kubepulse.store.rates import Columns, PodKey, PodRates, PodUsage, Rate

_NO_PODS: Mapping[PodKey, PodRates] = MappingProxyType({})


class RatesOfPods:
    """NodePods (store/reading.py) of rates as they were served."""

    __slots__ = ("rates",)

    def __init__(self, rates: Mapping[PodKey, PodRates]) -> None:
        self.rates = rates

    def __iter__(self) -> Iterator[PodKey]:
        return iter(self.rates)

    def pod_rates(self) -> Iterator[tuple[PodKey, PodRates]]:
        return iter(self.rates.items())

    def usage(self, columns: Columns | None = None) -> list[PodUsage]:
        found: list[PodUsage] = []
        for key, rates in self.rates.items():
            cpu = mem = 0
            for name, r in rates.containers:
                cpu += r.cpu_nanocores
                mem += r.working_set_bytes
                if columns is not None:
                    columns.names.append(name)
                    columns.ts.append(r.timestamp)
                    columns.cpu.append(r.cpu_nanocores)
                    columns.mem.append(r.working_set_bytes)
            found.append((key, cpu, mem, rates.timestamp, len(rates.containers)))
        return found

    def samples(self) -> int:
        return sum(len(r.containers) + 1 for r in self.rates.values())


def _servable(r: Rate) -> bool:
    """What MetricsStore would serve: a positive window, a rate that did not go back."""
    return r.window > 0 and r.cpu_nanocores >= 0


class RatedStore:
    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self._nodes: dict[str, Rate] = {}
        self._pods: dict[str, Mapping[PodKey, PodRates]] = {}
        self._generations: dict[str, int] = {}
        self._next_generation = itertools.count(1)

    # -- writing -------------------------------------------------------------------
    def store_usage(
        self, node_name: str, node: Rate | None, pods: Mapping[PodKey, PodRates]
    ) -> None:
        """One node's usage as the other API served it; it replaces everything stored
        for the node. Rates without a positive window are left out, as MetricsStore
        leaves them out, and so is a pod left with no container."""
        self._generations[node_name] = next(self._next_generation)
        if node is None or not _servable(node):
            self._nodes.pop(node_name, None)
        else:
            self._nodes[node_name] = node
        kept: dict[PodKey, PodRates] = {}
        for key, rates in pods.items():
            containers = tuple(c for c in rates.containers if _servable(c[1]))
            if containers:
                kept[key] = (
                    rates
                    if len(containers) == len(rates.containers)
                    else (PodRates(rates.timestamp, rates.window, containers))
                )
        self._pods[node_name] = kept

    def retain(self, node_names: set[str]) -> None:
        """Drop every node not in node_names."""
        for name in [n for n in self._nodes.keys() | self._pods.keys() if n not in node_names]:
            self._generations.pop(name, None)
            self._nodes.pop(name, None)
            self._pods.pop(name, None)

    # -- reading (UsageStore) ------------------------------------------------------
    def generation(self, node_name: str) -> int:
        return self._generations.get(node_name, 0)

    def node(self, name: str) -> Rate | None:
        return self._nodes.get(name)

    def pod(self, node_name: str, namespace: str, name: str) -> PodRates | None:
        return self._pods.get(node_name, _NO_PODS).get((namespace, name))

    def pods(self) -> dict[PodKey, PodRates]:
        return {key: r for pods in self._pods.values() for key, r in pods.items()}

    def node_pods(self, node_name: str) -> RatesOfPods:
        return RatesOfPods(self._pods.get(node_name, _NO_PODS))

    def node_names(self) -> set[str]:
        return set(self._nodes)

    def ready(self) -> bool:
        return bool(self._nodes) and any(self._pods.values())

    def points(self) -> dict[str, int]:
        containers = sum(len(r.containers) for p in self._pods.values() for r in p.values())
        return {"node": len(self._nodes), "container": containers}
