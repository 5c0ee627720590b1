"""The JSON the page polls: live usage from the UsageStore, series from the History.

Units everywhere: CPU in millicores, memory in bytes, times in seconds since the epoch.
A usage is null when the store has no rate for it yet (fewer than two scrapes).

At 5,000 nodes and 150,000 pods a dict per pod is too slow for a page polled every few
seconds (~4 s for the overview). PodIndex keeps what the views need between requests:
each node's pod usage as plain tuples, recomputed only for nodes stored since (their
MetricsStore.generation), with per-node namespace sums; and the inventory's pods by key
and by node until the inventory hands out another list. Rows are built only for what is
sent: the top ten, the first MAX_PODS of the sorted pods. While the dashboard is
watched, the server has the index digest each scrape cycle in the quiet after it
(PodIndex.tick_done), so that a poll only serialises (bench/dashboard_overview.py).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import sqlite3
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from kubepulse.api.selectors import SelectorError, parse_label_selector
from kubepulse.history.sources import HistoryPoint, SeriesError, SeriesSource
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.objects import ContainerSpec, Node, Pod
from kubepulse.model import Resources
from kubepulse.store.rates import PodRates, Rate
from kubepulse.store.reading import NodePods, UsageStore

log = logging.getLogger(__name__)

RANGES: dict[str, tuple[int, int]] = {
    # range: (seconds, step): 60 to 170 points each
    "15m": (900, 15),
    "1h": (3600, 30),
    "6h": (6 * 3600, 180),
    "24h": (86400, 900),
    "7d": (7 * 86400, 3600),
}
DEFAULT_RANGE = "1h"
SPARK_SECONDS, SPARK_STEP = 1800, 60
MAX_SPARKLINES = 500
TOP = 10
MAX_PODS = 1000


class Access(NamedTuple):
    """What the signed-in user may see. Everything in local mode; in Kubernetes mode the
    dashboard sets it from the user's own RBAC (SelfSubjectAccessReview) on each request."""

    nodes: bool = True
    namespaces: frozenset[str] | None = None
    """The namespaces whose pods the user may see; None: all of them."""

    def sees(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces


EVERYTHING = Access()
ACCESS_KEY: web.RequestKey[Access] = web.RequestKey("kubepulse.dashboard.access", Access)


def access_of(request: web.Request) -> Access:
    access = request.get(ACCESS_KEY)
    return access if isinstance(access, Access) else EVERYTHING


@dataclass(frozen=True, slots=True)
class DataSources:
    store: UsageStore
    inventory: Inventory
    history: SeriesSource | None
    clock: Callable[[], float]


def _millicores(nanocores: float) -> float:
    return round(nanocores / 1_000_000, 3)


def _resources(r: Resources) -> dict[str, int | None]:
    return {"cpu": r.cpu_millicores, "memory": r.memory_bytes}


def _pod_usage(rates: PodRates | None) -> tuple[float | None, int | None]:
    if rates is None:
        return None, None
    cpu = sum(r.cpu_nanocores for _, r in rates.containers)
    mem = sum(r.working_set_bytes for _, r in rates.containers)
    return _millicores(cpu), mem


def _sum_spec(pod: Pod, attr: str, field: str) -> int | None:
    """The pod's summed requests or limits; None when any container sets none."""
    total = 0
    for c in pod.containers:
        value = getattr(getattr(c, attr), field)
        if value is None:
            return None
        total += value
    return total if pod.containers else None


def node_summary(src: DataSources, node: Node, pods_on_node: int) -> dict[str, Any]:
    rate = src.store.node(node.name)
    return {
        "name": node.name,
        "labels": dict(node.labels),
        "roles": sorted(
            k.removeprefix("node-role.kubernetes.io/")
            for k in node.labels
            if k.startswith("node-role.kubernetes.io/")
        ),
        "cpu": {
            "used": _millicores(rate.cpu_nanocores) if rate else None,
            "allocatable": node.allocatable.cpu_millicores,
            "capacity": node.capacity.cpu_millicores,
        },
        "memory": {
            "used": rate.working_set_bytes if rate else None,
            "allocatable": node.allocatable.memory_bytes,
            "capacity": node.capacity.memory_bytes,
        },
        "pods": pods_on_node,
        "timestamp": rate.timestamp if rate else None,
    }


PodKey = tuple[str, str]

PodUsage = tuple[int, int]
"""A servable pod's (nanocores, bytes), summed over its containers as its PodMetrics sums
them. A plain tuple: there is one per pod."""

Ranked = list[tuple[int, PodKey]]
"""(value, pod) highest first."""


class NodeDigest(NamedTuple):
    """What the views need from one node's stored pods, until the node is stored again."""

    node: str
    generation: int
    pods: dict[PodKey, PodUsage]
    namespaces: dict[str, list[int]]
    """Namespace -> [nanocores, bytes] summed over the node's servable pods."""


def digest(node_name: str, generation: int, pods: NodePods) -> NodeDigest:
    """Every servable pod of one node with its summed usage, straight from the points
    (history.pod_usage), and the node's namespace sums."""
    found: dict[PodKey, PodUsage] = {}
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


def _memory(item: tuple[PodKey, PodUsage]) -> int:
    return item[1][1]


class PodView:
    """Everything derived from one state of the store and the inventory: built when
    either changed since the last request, and each part only when a view asks for it."""

    def __init__(self, digests: list[NodeDigest], inventoried: Inventoried) -> None:
        self.digests, self.inventoried = digests, inventoried
        self.usage: dict[PodKey, PodUsage] = {}
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
            return
        if self._preparing is None or self._preparing.done():
            self._preparing = asyncio.get_running_loop().create_task(self.prepare())

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
                    "used": _millicores(value) if by_cpu else value,
                    "request": _sum_spec(pod, "requests", spec_field) if pod else None,
                    "limit": _sum_spec(pod, "limits", spec_field) if pod else None,
                }
            )
        return rows


def _nodes(src: DataSources, index: PodIndex, access: Access) -> list[dict[str, Any]]:
    if not access.nodes:
        return []
    by_node = index.inventoried().by_node
    nodes = sorted(src.inventory.nodes(), key=lambda n: n.name)
    return [node_summary(src, n, _visible(by_node.get(n.name, ()), access)) for n in nodes]


def _visible(pods: Sequence[Pod], access: Access) -> int:
    """How many of a node's pods the user may see: a user who may list nodes but only
    some namespaces' pods learns nothing of the others, not even how many there are
    (as `kubectl describe node` lists a node's pods only for who may list them)."""
    if access.namespaces is None:
        return len(pods)
    return sum(1 for p in pods if access.sees(p.namespace))


def pod_row(pod: Pod | None, key: tuple[str, str], rates: PodRates | None) -> dict[str, Any]:
    cpu, mem = _pod_usage(rates)
    row: dict[str, Any] = {
        "namespace": key[0],
        "name": key[1],
        "node": pod.node_name if pod else "",
        "labels": dict(pod.labels) if pod else {},
        "containers": len(pod.containers) if pod else len(rates.containers) if rates else 0,
        "cpu": {"used": cpu, "request": None, "limit": None},
        "memory": {"used": mem, "request": None, "limit": None},
        "timestamp": rates.timestamp if rates else None,
    }
    if pod is not None:
        for resource, field in (("cpu", "cpu_millicores"), ("memory", "memory_bytes")):
            row[resource]["request"] = _sum_spec(pod, "requests", field)
            row[resource]["limit"] = _sum_spec(pod, "limits", field)
    return row


def _namespace_rows(totals: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    return [
        {"name": ns, "pods": t[0], "cpu": _millicores(t[1]), "memory": t[2]}
        for ns, t in sorted(totals.items())
    ]


async def _series(
    src: DataSources, kind: str, namespace: str, name: str, container: str, seconds: int, step: int
) -> list[list[float]]:
    """[[timestamp, cpu millicores, memory bytes], ...] oldest first.

    A history that cannot answer (Prometheus down or refusing, the file unreadable) is a
    502 or 503 with {"error": why}, never a 500."""
    if src.history is None:
        return []
    end = src.clock()
    with _history_errors():
        points = await src.history.series(
            kind, namespace, name, container, end - seconds, end, step
        )
    return _rows(points)


async def _node_series(
    src: DataSources, names: list[str], seconds: int, step: int
) -> dict[str, list[list[float]]]:
    """_series of many nodes, asked of the history at once (the nodes list's sparklines)."""
    if src.history is None:
        return {}
    end = src.clock()
    with _history_errors():
        found = await src.history.node_series(names, end - seconds, end, step)
    return {name: _rows(points) for name, points in found.items()}


def _rows(points: list[HistoryPoint]) -> list[list[float]]:
    return [[p.timestamp, _millicores(p.cpu_nanocores), round(p.memory_bytes)] for p in points]


@contextmanager
def _history_errors() -> Iterator[None]:
    try:
        yield
    except SeriesError as err:
        raise HistoryUnavailable(502, f"history from Prometheus: {err}") from None
    except sqlite3.Error as err:
        raise HistoryUnavailable(503, f"history file: {err}") from None


def _range(request: web.Request) -> tuple[str, int, int]:
    label = request.query.get("range", DEFAULT_RANGE)
    if label not in RANGES:
        raise _bad_request(f"range must be one of {', '.join(RANGES)}")
    return (label, *RANGES[label])


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=_json_text({"error": message}), content_type="application/json")


class HistoryUnavailable(Exception):
    """The history could not answer: the request gets `status` and {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answering_history_errors(handler: Handler) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except HistoryUnavailable as err:
            log.warning("dashboard %s: %s", request.path, err.message)
            return web.Response(
                status=err.status,
                text=_json_text({"error": err.message}),
                content_type="application/json",
            )

    return handle


def _not_found(message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=_json_text({"error": message}), content_type="application/json")


def _json_text(data: Any) -> str:
    return orjson.dumps(data).decode()


def _json(data: Any) -> web.Response:
    return web.Response(text=_json_text(data), content_type="application/json")


_INDEXES: weakref.WeakKeyDictionary[UsageStore, PodIndex] = weakref.WeakKeyDictionary()


def pod_index(store: UsageStore, inventory: Inventory) -> PodIndex:
    """The one PodIndex of a store and inventory: the dashboard's handlers read it, and
    the server hands it to the scrape manager as a Recorder."""
    index = _INDEXES.get(store)
    if index is None or index.inventory is not inventory:
        index = _INDEXES[store] = PodIndex(store, inventory)
    return index


class DataHandlers:
    def __init__(self, src: DataSources) -> None:
        self.src = src
        self.index = pod_index(src.store, src.inventory)

    def routes(self) -> list[web.RouteDef]:
        routes: list[tuple[str, Handler]] = [
            ("/api/overview", self.overview),
            ("/api/nodes", self.nodes),
            ("/api/nodes/{name}", self.node),
            ("/api/pods", self.pods),
            ("/api/pods/{namespace}/{name}", self.pod),
            ("/api/namespaces", self.namespaces),
        ]
        return [web.get(path, _answering_history_errors(h)) for path, h in routes]

    async def overview(self, request: web.Request) -> web.Response:
        access = access_of(request)
        nodes = _nodes(self.src, self.index, access)
        namespaces = self.index.namespace_totals(access)

        def total(resource: str, key: str) -> float:
            return round(sum(n[resource][key] or 0 for n in nodes), 3)

        return _json(
            {
                "nodes": nodes,
                "totals": {
                    "nodes": len(nodes),
                    "pods": sum(t[0] for t in namespaces.values()),
                    "cpu": {
                        "used": total("cpu", "used"),
                        "allocatable": total("cpu", "allocatable"),
                    },
                    "memory": {
                        "used": total("memory", "used"),
                        "allocatable": total("memory", "allocatable"),
                    },
                },
                "top_cpu": self.index.top(access, "cpu"),
                "top_memory": self.index.top(access, "memory"),
                "namespaces": _namespace_rows(namespaces),
                "history": self.src.history is not None,
            }
        )

    async def nodes(self, request: web.Request) -> web.Response:
        nodes = _nodes(self.src, self.index, access_of(request))
        names = [n["name"] for n in nodes[:MAX_SPARKLINES]]

        sparks: dict[str, list[list[float]]] = {}
        failed = None
        try:
            sparks = await _node_series(self.src, names, SPARK_SECONDS, SPARK_STEP)
        except HistoryUnavailable as err:
            # The list is still worth showing without its sparklines: say why they are missing.
            failed = err.message
        for n in nodes:
            n["spark"] = sparks.get(n["name"], [])
        body = {"items": nodes, "history": self.src.history is not None}
        if failed is not None:
            body["history_error"] = failed
        return _json(body)

    async def node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        label, seconds, step = _range(request)
        access = access_of(request)
        node = next((n for n in self.src.inventory.nodes() if n.name == name), None)
        if node is None or not access.nodes:
            raise _not_found(f"no node named {name}")
        on_node = self.index.inventoried().by_node.get(name, [])
        pods = sorted(
            (p for p in on_node if access.sees(p.namespace)), key=lambda p: (p.namespace, p.name)
        )
        rows = [
            pod_row(p, (p.namespace, p.name), self.index.rates((p.namespace, p.name), p))
            for p in pods
        ]
        series = await _series(self.src, "node", "", name, "", seconds, step)
        return _json(
            {
                "node": node_summary(self.src, node, len(pods)),
                "range": label,
                "step": step,
                "series": series,
                "pods": rows,
                "history": self.src.history is not None,
            }
        )

    async def pods(self, request: web.Request) -> web.Response:
        q = request.query
        namespace, name, sort = q.get("namespace", ""), q.get("name", ""), q.get("sort", "cpu")
        if sort not in ("cpu", "memory", "name"):
            raise _bad_request("sort must be cpu, memory or name")
        try:
            matches = parse_label_selector(q.get("label", ""))
        except SelectorError as err:
            raise _bad_request(f"label: {err}") from err
        access, view = access_of(request), self.index.view()
        by_key = view.inventoried.by_key
        if sort == "name":
            ordered = view.by_name
        else:
            ordered = view.by_cpu if sort == "cpu" else view.by_memory
        needle = name.lower()
        no_labels: Mapping[str, str] = {}
        selecting = bool(q.get("label", ""))
        if namespace or access.namespaces is not None or needle or selecting:
            seen = access.namespaces
            ordered = [
                k
                for k in ordered
                if (not namespace or k[0] == namespace)
                and (seen is None or k[0] in seen)
                and (not needle or needle in k[1].lower())
                and (
                    not selecting
                    or matches(p.labels if (p := by_key.get(k)) is not None else no_labels)
                )
            ]
        rows = []
        for key in ordered[:MAX_PODS]:
            pod = by_key.get(key)
            rows.append(pod_row(pod, key, self.index.rates(key, pod)))
        return _json({"items": rows, "total": len(ordered), "sort": sort})

    async def pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        label, seconds, step = _range(request)
        key = (namespace, name)
        if not access_of(request).sees(namespace):
            raise _not_found(f"no pod {namespace}/{name}")
        pod = self.index.inventoried().by_key.get(key)
        rates = self.index.rates(key, pod)
        if pod is None and rates is None:
            raise _not_found(f"no pod {namespace}/{name}")
        usage: Mapping[str, Rate] = dict(rates.containers) if rates else {}
        specs = {c.name: c for c in pod.containers} if pod else {}
        names = list(specs) + sorted(n for n in usage if n not in specs)

        total = await _series(self.src, "pod", namespace, name, "", seconds, step)
        per = {
            c: await _series(self.src, "container", namespace, name, c, seconds, step)
            for c in names
        }
        containers: list[dict[str, Any]] = []
        for c in names:
            r, spec = usage.get(c), specs.get(c)
            containers.append(
                {
                    "name": c,
                    "cpu": {
                        "used": (_millicores(r.cpu_nanocores) if r else None),
                        **_lines(spec, "cpu_millicores"),
                    },
                    "memory": {
                        "used": r.working_set_bytes if r else None,
                        **_lines(spec, "memory_bytes"),
                    },
                    "series": per[c],
                }
            )
        return _json(
            {
                "pod": pod_row(pod, key, rates),
                "range": label,
                "step": step,
                "series": total,
                "containers": containers,
                "history": self.src.history is not None,
            }
        )

    async def namespaces(self, request: web.Request) -> web.Response:
        return _json({"items": _namespace_rows(self.index.namespace_totals(access_of(request)))})


def _lines(spec: ContainerSpec | None, field: str) -> dict[str, Any]:
    if spec is None:
        return {"request": None, "limit": None}
    return {"request": getattr(spec.requests, field), "limit": getattr(spec.limits, field)}
