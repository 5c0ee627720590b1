"""What the dashboard's views read about pods, kept between requests.

At 5,000 nodes and 150,000 pods a dict per pod is too slow for a page polled every few
seconds (~4 s for the overview). PodIndex keeps what the views need between requests:
each node's pod usage as plain tuples, recomputed only for nodes stored since (their
UsageStore.generation), with per-node namespace sums; and the inventory's pods by key
and by node until the inventory hands out another list. While the dashboard is
watched, the server has the index digest each scrape cycle in the quiet after it
(PodIndex.tick_done), so that a poll only serialises (bench/dashboard_overview.py).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
import weakref
from functools import cached_property
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from kubepulse.kube.inventory import Inventory
from kubepulse.kube.objects import Pod
from kubepulse.store.rates import PodRates
from kubepulse.store.reading import NodePods, UsageStore

log = logging.getLogger(__name__)

TOP = 10


PodKey = tuple[str, str]

PodTotals = tuple[int, int]
"""A servable pod's (nanocores, bytes), summed over its containers as its PodMetrics sums
them. A plain tuple: there is one per pod."""

Ranked = list[tuple[int, PodKey]]
"""(value, pod) highest first."""


def millicores(nanocores: float) -> float:
    return round(nanocores / 1_000_000, 3)


def sum_spec(pod: Pod, attr: str, field: str) -> int | None:
    """The pod's summed requests or limits; None when any container sets none."""
    total = 0
    for c in pod.containers:
        value = getattr(getattr(c, attr), field)
        if value is None:
            return None
        total += value
    return total if pod.containers else None


class Access(NamedTuple):
    """What the signed-in user may see. Everything in local mode; in Kubernetes mode the
    dashboard sets it from the user's own RBAC (SelfSubjectAccessReview) on each request."""

    nodes: bool = True
    namespaces: frozenset[str] | None = None
    """The namespaces whose pods the user may see; None: all of them."""

    def sees(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces


EVERYTHING = Access()


class NodeDigest(NamedTuple):
    """What the views need from one node's stored pods, until the node is stored again."""

    node: str
    generation: int
    pods: dict[PodKey, PodTotals]
    namespaces: dict[str, list[int]]
    """Namespace -> [nanocores, bytes] summed over the node's servable pods."""


def digest(node_name: str, generation: int, pods: NodePods) -> NodeDigest:
    """Every servable pod of one node with its summed usage, straight from the points
    (history.pod_usage), and the node's namespace sums."""
    found: dict[PodKey, PodTotals] = {}
    sums: dict[str, list[int]] = {}
    for key, cpu, mem, _, _ in pods.usage():
        found[key] = (cpu, mem)
        total = sums.get(key[0])
        if total is None:
            sums[key[0]] = [cpu, mem]
        else:
            total[0] += cpu
            total[1] += mem
    return NodeDigest(node_name, generation, found, sums)


class Inventoried(NamedTuple):
    source: list[Pod]
    """The list inventory.pods() returned: the index is rebuilt when it hands out another."""
    by_key: dict[PodKey, Pod]
    by_node: dict[str, list[Pod]]
    namespaces: dict[str, int]
    """Namespace -> how many of by_key's pods are in it."""


def _memory(item: tuple[PodKey, PodTotals]) -> int:
    return item[1][1]


class PodView:
    """Everything derived from one state of the store and the inventory: built when
    either changed since the last request, and each part only when a view asks for it."""

    def __init__(self, digests: list[NodeDigest], inventoried: Inventoried) -> None:
        self.digests, self.inventoried = digests, inventoried
        self.usage: dict[PodKey, PodTotals] = {}
        """Every servable pod."""
        for d in digests:
            self.usage.update(d.pods)
        self.exact_per_node = sum(len(d.pods) for d in digests) == len(self.usage)
        """False when some pod was stored under two nodes (one that moved between two
        scrapes): per-node sums would count it twice, where `usage` keeps one."""

    @cached_property
    def nodes(self) -> dict[PodKey, str]:
        """The node each servable pod was scraped from."""
        return {key: d.node for d in self.digests for key in d.pods}

    @cached_property
    def unused(self) -> list[PodKey]:
        """The inventory's pods without usage, by namespace and name."""
        usage = self.usage
        return sorted(k for k in self.inventoried.by_key if k not in usage)

    @cached_property
    def namespaces(self) -> dict[str, list[int]]:
        """Namespace -> [pods, nanocores, bytes] over every pod the inventory or the store
        knows (pods without usage count, adding nothing)."""
        inv = self.inventoried
        totals = {ns: [n, 0, 0] for ns, n in inv.namespaces.items()}
        for ns, _ in self.usage.keys() - inv.by_key.keys():
            totals.setdefault(ns, [0, 0, 0])[0] += 1
        if self.exact_per_node:
            for d in self.digests:
                for ns, (cpu, mem) in d.namespaces.items():
                    total = totals[ns]
                    total[1] += cpu
                    total[2] += mem
        else:
            for (ns, _), (cpu, mem) in self.usage.items():
                total = totals[ns]
                total[1] += cpu
                total[2] += mem
        return totals

    @cached_property
    def top_cpu(self) -> Ranked:
        return self.top_among(True, None)

    @cached_property
    def top_memory(self) -> Ranked:
        return self.top_among(False, None)

    def top_among(self, by_cpu: bool, namespaces: frozenset[str] | None) -> Ranked:
        items: Any = self.usage.items()
        if namespaces is not None:
            items = [item for item in items if item[0][0] in namespaces]
        # (cpu, memory) tuples order by CPU first: itemgetter, in C, is the CPU key.
        top = heapq.nlargest(TOP, items, key=itemgetter(1) if by_cpu else _memory)
        return [(u[0] if by_cpu else u[1], key) for key, u in top]

    @cached_property
    def by_cpu(self) -> list[PodKey]:
        """Every pod, highest CPU first, then by namespace and name; no usage last."""
        return self._ranked(True)

    @cached_property
    def by_memory(self) -> list[PodKey]:
        return self._ranked(False)

    def _ranked(self, by_cpu: bool) -> list[PodKey]:
        # Sorted in C on (-value, key) tuples: no Python call per comparison.
        ranked = sorted([(-(u[0] if by_cpu else u[1]), key) for key, u in self.usage.items()])
        return [key for _, key in ranked] + self.unused

    @cached_property
    def by_name(self) -> list[PodKey]:
        return sorted(self.usage.keys() | self.inventoried.by_key.keys())


PREPARE_NODES_PER_STEP = 200
"""Nodes digested between two yields to the event loop when preparing after a cycle."""

_VIEW_PARTS = ("namespaces", "top_cpu", "top_memory", "unused", "by_cpu", "by_memory", "by_name")


class PodIndex:
    """What the views read from every pod, kept between requests (module docstring).

    Also the scrape manager's Recorder: while the dashboard is watched, the nodes of a
    cycle are digested in the quiet after it (tick_done), and the parts of the view the
    last requests used are built, so that the next poll only serialises them."""

    def __init__(self, store: UsageStore, inventory: Inventory) -> None:
        self.store, self.inventory = store, inventory
        self._digests: dict[str, NodeDigest] = {}
        self._inventoried: Inventoried | None = None
        self._view: PodView | None = None
        self._stale_view = False
        self._asked = -math.inf
        self._preparing: asyncio.Task[None] | None = None
        self.cycles_ready = 0
        """Scrape (or poll) cycles whose usage the views can serve: the page's live
        updates follow it (cycle_after)."""
        self._waiting: list[asyncio.Future[int]] = []

    def inventoried(self) -> Inventoried:
        pods = self.inventory.pods()
        cached = self._inventoried
        if cached is not None and cached.source is pods:
            return cached
        by_key: dict[PodKey, Pod] = {}
        by_node: dict[str, list[Pod]] = {}
        for pod in pods:
            by_key[(pod.namespace, pod.name)] = pod
            on_node = by_node.get(pod.node_name)
            if on_node is None:
                by_node[pod.node_name] = [pod]
            else:
                on_node.append(pod)
        namespaces: dict[str, int] = {}
        for ns, _ in by_key:
            namespaces[ns] = namespaces.get(ns, 0) + 1
        self._inventoried = Inventoried(pods, by_key, by_node, namespaces)
        return self._inventoried

    def _names(self) -> set[str]:
        names = {n.name for n in self.inventory.nodes()}
        names.update(self.store.node_names())
        return names

    def view(self, asked: bool = True) -> PodView:
        """The pods of every node the inventory or the store names; a node's pods are read
        again only when it was stored since the last call. `asked`: by a request (what
        tick_done() goes by), not by prepare()."""
        if asked:
            self._asked = time.monotonic()
        store, digests = self.store, self._digests
        names = self._names()
        kept: dict[str, NodeDigest] = {}  # nodes that are gone are forgotten
        changed, self._stale_view = self._stale_view, False
        for name in names:
            generation = store.generation(name)
            if generation == 0:
                continue
            d = digests.get(name)
            if d is None or d.generation != generation:
                d = digest(name, generation, store.node_pods(name))
                changed = True
            kept[name] = d
        inventoried = self.inventoried()
        view = self._view
        if (
            view is None
            or changed
            or len(kept) != len(digests)
            or view.inventoried is not inventoried
        ):
            self._digests = kept
            # Oldest stored first: a pod stored under two nodes (it moved between their
            # scrapes) keeps the usage of the newer scrape.
            ordered = sorted(kept.values(), key=attrgetter("generation"))
            view = self._view = PodView(ordered, inventoried)
        return view

    # -- after each scrape cycle (the manager's Recorder) ----------------------------------
    def node_stored(self, node_name: str) -> None:
        pass  # digested when the cycle is over, not while scrapes still come in

    def tick_done(self) -> None:
        """Start prepare() if a request asked in the last two resolutions; nothing while
        nobody watches (the first poll then digests what it needs itself)."""
        if time.monotonic() - self._asked > 2 * self.store.resolution:
            self._ready()
            return
        if self._preparing is None or self._preparing.done():
            self._preparing = asyncio.get_running_loop().create_task(self.prepare())
        self._preparing.add_done_callback(lambda _: self._ready())

    def _ready(self) -> None:
        self.cycles_ready += 1
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                future.set_result(self.cycles_ready)

    async def cycle_after(self, seen: int, timeout: float) -> int:
        """The number of the first cycle after `seen` whose usage is ready to serve, once
        it is; `seen` when none is within `timeout` seconds."""
        if self.cycles_ready > seen:
            return self.cycles_ready
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return seen

    async def prepared(self) -> None:
        """Wait for the prepare() that tick_done() started, if any."""
        if self._preparing is not None:
            await self._preparing

    async def prepare(self) -> None:
        """Digest the nodes stored since the last view, a few at a time, then build the
        view and the parts of it that the previous one had built (what the page polls)."""
        try:
            store = self.store
            for i, name in enumerate(self._names(), 1):
                generation = store.generation(name)
                d = self._digests.get(name)  # a request may replace the dict meanwhile
                if generation and (d is None or d.generation != generation):
                    self._digests[name] = digest(name, generation, store.node_pods(name))
                    self._stale_view = True
                if i % PREPARE_NODES_PER_STEP == 0:
                    await asyncio.sleep(0)
            before = self._view
            view = self.view(asked=False)
            if before is None or view is before:
                return
            for part in _VIEW_PARTS:
                if part in before.__dict__:  # a cached_property the last view computed
                    getattr(view, part)
                    await asyncio.sleep(0)
        except Exception as err:  # the next request digests what is left itself
            log.warning("dashboard: preparing the pod index failed: %s", err)

    def rates(self, key: PodKey, pod: Pod | None) -> PodRates | None:
        """One pod's rates: from the node the inventory puts it on, else wherever it was
        scraped."""
        if pod is not None:
            rates = self.store.pod(pod.node_name, *key)
            if rates is not None:
                return rates
        view = self.view()
        if key not in view.usage:
            return None
        return self.store.pod(view.nodes[key], *key)

    def namespace_totals(self, access: Access) -> dict[str, list[int]]:
        """PodView.namespaces, of the namespaces `access` sees."""
        return {ns: t for ns, t in self.view().namespaces.items() if access.sees(ns)}

    def top(self, access: Access, resource: str) -> list[dict[str, Any]]:
        """The TOP pods by CPU or memory that `access` sees, highest first."""
        view = self.view()
        by_cpu = resource == "cpu"
        if access.namespaces is None:
            ranked = view.top_cpu if by_cpu else view.top_memory
        else:
            ranked = view.top_among(by_cpu, access.namespaces)
        by_key = view.inventoried.by_key
        spec_field = "cpu_millicores" if by_cpu else "memory_bytes"
        rows = []
        for value, key in ranked:
            pod = by_key.get(key)
            rows.append(
                {
                    "namespace": key[0],
                    "name": key[1],
                    "node": pod.node_name if pod else "",
                    "used": millicores(value) if by_cpu else value,
                    "request": sum_spec(pod, "requests", spec_field) if pod else None,
                    "limit": sum_spec(pod, "limits", spec_field) if pod else None,
                }
            )
        return rows


_INDEXES: weakref.WeakKeyDictionary[UsageStore, PodIndex] = weakref.WeakKeyDictionary()


def pod_index(store: UsageStore, inventory: Inventory) -> PodIndex:
    """The one PodIndex of a store and inventory: the dashboard's handlers read it, and
    the server hands it to the scrape manager as a Recorder."""
    index = _INDEXES.get(store)
    if index is None or index.inventory is not inventory:
        index = _INDEXES[store] = PodIndex(store, inventory)
    return index
