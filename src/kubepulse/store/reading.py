"""What every reader of live usage needs from a store, whatever fills it.

Two stores fill it: MetricsStore (points.py) from kubelet scrapes, whose rates come
from two points (rates.py), and RatedStore (rated.py) from another metrics API's
NodeMetrics and PodMetrics, already rates. The API, the exposition, the history's
recorder and the dashboard read either through these, and never see which.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from kubepulse.store.rates import Columns, PodKey, PodRates, PodUsage, Rate


class NodePods(Protocol):
    """One node's pods as stored by one scrape (or poll). Never changes: the store
    replaces it at the node's next one, so it can be read on any thread."""

    def __iter__(self) -> Iterator[PodKey]:
        """Every pod stored, servable or not."""
        ...

    def pod_rates(self) -> Iterator[tuple[PodKey, PodRates]]:
        """Every servable pod with the rates the API serves for it."""
        ...

    def usage(self, columns: Columns | None = None) -> list[PodUsage]:
        """Every servable pod as its containers' sums; with `columns`, every served
        container too (rates.pod_usage)."""
        ...

    def samples(self) -> int:
        """How many series (containers and pods) it would give the history."""
        ...


class UsageStore(Protocol):
    resolution: float

    def generation(self, node_name: str) -> int:
        """Changes whenever what is stored for the node does; 0 for an unknown node."""
        ...

    def node(self, name: str) -> Rate | None: ...

    def pod(self, node_name: str, namespace: str, name: str) -> PodRates | None: ...

    def pods(self) -> dict[PodKey, PodRates]:
        """Every servable pod."""
        ...

    def node_pods(self, node_name: str) -> NodePods: ...

    def node_names(self) -> set[str]: ...

    def ready(self) -> bool:
        """metrics-server's Ready(): some node and some container can be served."""
        ...

    def points(self) -> dict[str, int]:
        """Servable points by type, as metrics_server_storage_points counts them."""
        ...
