"""The JSON the page polls: live usage from the pod index (pod_index.py), series from
the history's sources.

Units everywhere: CPU in millicores, memory in bytes, times in seconds since the epoch.
A usage is null when the store has no rate for it yet (fewer than two scrapes). Rows are
built only for what is sent: the top ten, the first MAX_PODS of the sorted pods.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from kubepulse.api.selectors import SelectorError, parse_label_selector
from kubepulse.dashboard import workloads
from kubepulse.dashboard.pod_index import (
    EVERYTHING,
    Access,
    PodIndex,
    millicores,
    pod_index,
    sum_spec,
)
from kubepulse.dashboard.rightsize import MAX_PODS as MAX_RIGHTSIZED
from kubepulse.dashboard.rightsize import WINDOW_SECONDS as RIGHTSIZE_WINDOW
from kubepulse.dashboard.rightsize import RightSizer
from kubepulse.dashboard.security import add_headers
from kubepulse.history.sources import HistoryPoint, SeriesError, SeriesSource
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.objects import ContainerSpec, Node, Pod
from kubepulse.kube.owners import WORKLOAD_KINDS
from kubepulse.model import Resources
from kubepulse.recommend.rows import current_values
from kubepulse.store.rates import PodRates, Rate
from kubepulse.store.reading import UsageStore

log = logging.getLogger(__name__)

RANGES: dict[str, tuple[int, int]] = {
    # range: (seconds, step): 60 to 170 points each
    "15m": (900, 15),
    "1h": (3600, 30),
    "6h": (6 * 3600, 180),
    "24h": (86400, 900),
    "7d": (7 * 86400, 3600),
    "30d": (30 * 86400, 14400),  # the 15-minute tier's whole retention
}
ENDED_RECENT, MAX_ENDED = 86400, 100
"""The overview lists pods that ended in the last day, at most this many."""
ENDED_EVERY = 30.0
"""Seconds the history's list of recent pods is reused: it walks every series."""
ENDED_LOOKBACK = 30 * 86400
"""How far back a pod that is no longer served is looked for in the history."""
DEFAULT_RANGE = "1h"
SPARK_SECONDS, SPARK_STEP = 1800, 60
MAX_SPARKLINES = 500
MAX_PODS = 1000
KEEPALIVE_SECONDS, STREAM_SECONDS = 15.0, 600.0
"""The live-update stream (/api/cycles): a comment this often, and closed after this."""


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


def _resources(r: Resources) -> dict[str, int | None]:
    return {"cpu": r.cpu_millicores, "memory": r.memory_bytes}


def _pod_usage(rates: PodRates | None) -> tuple[float | None, int | None]:
    if rates is None:
        return None, None
    cpu = sum(r.cpu_nanocores for _, r in rates.containers)
    mem = sum(r.working_set_bytes for _, r in rates.containers)
    return millicores(cpu), mem


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
            "used": millicores(rate.cpu_nanocores) if rate else None,
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
        "owner": {"kind": pod.owner[0], "name": pod.owner[1]} if pod and pod.owner else None,
    }
    if pod is not None:
        for resource, field in (("cpu", "cpu_millicores"), ("memory", "memory_bytes")):
            row[resource]["request"] = sum_spec(pod, "requests", field)
            row[resource]["limit"] = sum_spec(pod, "limits", field)
    return row


def _namespace_rows(totals: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    return [
        {"name": ns, "pods": t[0], "cpu": millicores(t[1]), "memory": t[2]}
        for ns, t in sorted(totals.items())
    ]


async def _series(
    src: DataSources,
    kind: str,
    namespace: str,
    name: str,
    container: str,
    window: tuple[float, float, int],
) -> list[list[float]]:
    """[[timestamp, cpu millicores, memory bytes], ...] oldest first, in window (start,
    end, step).

    A history that cannot answer (Prometheus down or refusing, the file unreadable) is a
    502 or 503 with {"error": why}, never a 500."""
    if src.history is None:
        return []
    start, end, step = window
    with _history_errors():
        points = await src.history.series(kind, namespace, name, container, start, end, step)
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
    return [[p.timestamp, millicores(p.cpu_nanocores), round(p.memory_bytes)] for p in points]


@contextmanager
def _history_errors() -> Iterator[None]:
    try:
        yield
    except SeriesError as err:
        raise HistoryUnavailable(502, f"history from Prometheus: {err}") from None
    except sqlite3.Error as err:
        raise HistoryUnavailable(503, f"history file: {err}") from None


def _range(request: web.Request, now: float) -> tuple[str, tuple[float, float, int]]:
    """The range asked for, and its window (start, end, step): the charts span exactly
    that, whatever of it the history holds."""
    label = request.query.get("range", DEFAULT_RANGE)
    if label not in RANGES:
        raise _bad_request(f"range must be one of {', '.join(RANGES)}")
    seconds, step = RANGES[label]
    return label, (now - seconds, now, step)


def _window(label: str, window: tuple[float, float, int]) -> dict[str, Any]:
    start, end, step = window
    return {"range": label, "start": start, "end": end, "step": step}


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


class DataHandlers:
    def __init__(self, src: DataSources) -> None:
        self.src = src
        self.index = pod_index(src.store, src.inventory)
        self.rightsizer = RightSizer(src.history) if src.history is not None else None
        self._streams: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._seen: tuple[float, dict[tuple[str, str], float | None]] | None = None
        """The pods the history saw in the last day, and when that was asked (data
        time): asked at most every ENDED_EVERY seconds, not at each overview poll."""

    def routes(self) -> list[web.RouteDef]:
        routes: list[tuple[str, Handler]] = [
            ("/api/overview", self.overview),
            ("/api/nodes", self.nodes),
            ("/api/nodes/{name}", self.node),
            ("/api/pods", self.pods),
            ("/api/pods/{namespace}/{name}", self.pod),
            ("/api/namespaces", self.namespaces),
            ("/api/namespaces/{namespace}", self.namespace),
            ("/api/ended", self.ended),
            ("/api/cycles", self.cycles),
            ("/api/workloads/{namespace}/{kind}/{name}", self.workload),
            ("/api/rightsizing", self.rightsizing),
        ]
        return [web.get(path, _answering_history_errors(h)) for path, h in routes]

    async def cycles(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `cycle` each time a scrape (or poll) cycle's usage is ready
        to serve, so that the page refreshes then rather than on a timer. A comment line
        every KEEPALIVE_SECONDS keeps proxies from closing it; the stream ends after
        STREAM_SECONDS and the browser's EventSource opens it again, signed in anew."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        add_headers(request, response.headers, static=False)
        await response.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        seen = self.index.cycles_ready
        ends = time.monotonic() + STREAM_SECONDS
        try:
            await response.write(b"retry: 5000\n\n")
            while (left := ends - time.monotonic()) > 0:
                found = await self.index.cycle_after(seen, min(KEEPALIVE_SECONDS, left))
                if found == seen:
                    await response.write(b": waiting for the next cycle\n\n")
                    continue
                seen = found
                await response.write(f"event: cycle\ndata: {seen}\n\n".encode())
        except ConnectionResetError:
            return response  # the page went away
        except asyncio.CancelledError:
            if not self._closing or task is None:
                raise
            task.uncancel()  # shutting down: the answer ends whole, as at STREAM_SECONDS
        finally:
            if task is not None:
                self._streams.discard(task)
        return response

    async def close_streams(self, _app: web.Application) -> None:
        """At shutdown: end the live-update streams, which would otherwise hold it up."""
        self._closing = True
        for task in list(self._streams):
            task.cancel()  # each ends its answer as a whole one: see cycles()

    async def overview(self, request: web.Request) -> web.Response:
        """The cluster now, and its trend over the range: the history keeps the sum of
        the nodes' usage at each scrape cycle."""
        access = access_of(request)
        label, window = _range(request, self.src.clock())
        nodes = _nodes(self.src, self.index, access)
        namespaces = self.index.namespace_totals(access)
        # The trend sums every node: someone who may not list nodes does not see it.
        trend: list[list[float]] = []
        failed = None
        try:
            if access.nodes:
                trend = await _series(self.src, "cluster", "", "", "", window)
        except HistoryUnavailable as err:
            failed = err.message  # the rest of the overview does not need the history

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
                **_window(label, window),
                "series": trend,
                **({"history_error": failed} if failed is not None else {}),
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
        label, window = _range(request, self.src.clock())
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
        series = await _series(self.src, "node", "", name, "", window)
        return _json(
            {
                "node": node_summary(self.src, node, len(pods)),
                **_window(label, window),
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
        label, window = _range(request, self.src.clock())
        key = (namespace, name)
        if not access_of(request).sees(namespace):
            raise _not_found(f"no pod {namespace}/{name}")
        pod = self.index.inventoried().by_key.get(key)
        rates = self.index.rates(key, pod)
        ended = pod is None and rates is None
        usage: Mapping[str, Rate] = dict(rates.containers) if rates else {}
        specs = {c.name: c for c in pod.containers} if pod else {}
        names = list(specs) + sorted(n for n in usage if n not in specs)
        if ended:
            # No longer served: its page comes from the history, if that holds it.
            names = await self._ended_containers(namespace, name, window[1])
            if not names:
                raise _not_found(f"no pod {namespace}/{name}, and no history of it")

        total = await _series(self.src, "pod", namespace, name, "", window)
        per = {c: await _series(self.src, "container", namespace, name, c, window) for c in names}
        containers: list[dict[str, Any]] = []
        for c in names:
            r, spec = usage.get(c), specs.get(c)
            containers.append(
                {
                    "name": c,
                    "cpu": {
                        "used": (millicores(r.cpu_nanocores) if r else None),
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
                "pod": pod_row(pod, key, rates) | _pod_facts(pod),
                **_window(label, window),
                "ended": ended,
                "last_seen": await self._last_seen(namespace, name, window[1]) if ended else None,
                "series": total,
                "containers": containers,
                "rightsize": await self._rightsize(namespace, name, names, window[1]),
                "history": self.src.history is not None,
            }
        )

    async def rightsizing(self, request: web.Request) -> web.Response:
        """The Right-sizing view: every running pod the user may see (of `namespace`,
        if given), container by container, up to rightsize.MAX_PODS."""
        namespace = request.query.get("namespace", "")
        access, view = access_of(request), self.index.view()
        pods = [
            p
            for key, p in sorted(view.inventoried.by_key.items())
            if (not namespace or key[0] == namespace) and access.sees(key[0])
        ]
        rows: list[dict[str, Any]] | None = None
        if self.rightsizer is not None:
            with _history_errors():
                rows = await self.rightsizer.table(pods[:MAX_RIGHTSIZED], self.src.clock())
        return _json(
            {
                "items": rows or [],
                "history": rows is not None,
                "pods": min(len(pods), MAX_RIGHTSIZED),
                "total": len(pods),
                "window_seconds": RIGHTSIZE_WINDOW,
            }
        )

    async def _rightsize(
        self, namespace: str, name: str, containers: Sequence[str], now: float
    ) -> list[dict[str, Any]] | None:
        if self.rightsizer is None:
            return None
        with _history_errors():
            return await self.rightsizer.hints(namespace, name, containers, now)

    async def namespace(self, request: web.Request) -> web.Response:
        """A namespace's totals now and its CPU and memory over the range (the history
        keeps each namespace's sum)."""
        namespace = request.match_info["namespace"]
        label, window = _range(request, self.src.clock())
        access = access_of(request)
        totals = self.index.namespace_totals(access)
        if not access.sees(namespace):
            raise _not_found(f"no namespace {namespace}")
        series = await _series(self.src, "namespace", namespace, "", "", window)
        if namespace not in totals and not series:
            raise _not_found(f"no namespace {namespace}, and no history of it")
        row = _namespace_rows({namespace: totals.get(namespace, [0, 0, 0])})[0]
        return _json({"namespace": row, **_window(label, window), "series": series})

    async def ended(self, request: web.Request) -> web.Response:
        """Pods the history saw in the last ENDED_RECENT seconds that are no longer
        served, newest first: their pages stay (pod())."""
        now = self.src.clock()
        if self.src.history is None:
            return _json({"items": [], "history": False})
        if self._seen is None or not 0 <= now - self._seen[0] < ENDED_EVERY:
            with _history_errors():
                self._seen = (now, await self.src.history.pods(now - ENDED_RECENT, now))
        seen = self._seen[1]
        access, view = access_of(request), self.index.view()
        live = view.inventoried.by_key
        gone = sorted(
            (
                (-(last or 0.0), ns, name, last)
                for (ns, name), last in seen.items()
                if (ns, name) not in live
                and self.index.rates((ns, name), None) is None
                and access.sees(ns)
            ),
        )
        items = [{"namespace": ns, "name": name, "last_seen": last} for _, ns, name, last in gone]
        return _json({"items": items[:MAX_ENDED], "total": len(items), "history": True})

    async def _ended_containers(self, namespace: str, name: str, now: float) -> list[str]:
        if self.src.history is None:
            return []
        with _history_errors():
            return await self.src.history.containers(namespace, name, now - ENDED_LOOKBACK, now)

    async def _last_seen(self, namespace: str, name: str, now: float) -> float | None:
        """When the history last saw the pod (to the 15 minutes of its coarsest steps,
        then to the sample within the last of them)."""
        history = self.src.history
        if history is None:
            return None
        with _history_errors():
            coarse = await history.series(
                "pod", namespace, name, "", now - ENDED_LOOKBACK, now, 900
            )
            if not coarse:
                return None
            last = coarse[-1].timestamp
            fine = await history.series("pod", namespace, name, "", last, last + 900, 15)
        return fine[-1].timestamp if fine else last

    async def workload(self, request: web.Request) -> web.Response:
        """A workload's pods, live and ended, and their usage summed over the range."""
        namespace, kind, name = (request.match_info[k] for k in ("namespace", "kind", "name"))
        label, window = _range(request, self.src.clock())
        if kind not in WORKLOAD_KINDS or not access_of(request).sees(namespace):
            raise _not_found(f"no {kind} {namespace}/{name}")
        live = workloads.live_pods(self.index.inventoried().source, namespace, kind, name)
        ended: list[str] = []
        if self.src.history is not None:
            with _history_errors():
                seen = await self.src.history.pods(window[0], window[1])
            ended = workloads.ended_pods(seen, {p.name for p in live}, namespace, kind, name)
        if not live and not ended:
            raise _not_found(f"no {kind} {namespace}/{name}, and no history of its pods")
        names = ([p.name for p in live] + ended)[: workloads.MAX_POOLED]
        each = [await _series(self.src, "pod", namespace, n, "", window) for n in names]
        rows = [
            pod_row(p, (namespace, p.name), self.index.rates((namespace, p.name), p)) for p in live
        ]
        containers, hints = await self._pooled_rightsize(namespace, kind, name, live)
        return _json(
            {
                "workload": {"namespace": namespace, "kind": kind, "name": name},
                "pods": rows,
                "live": len(live),
                "ended": ended,
                "summed": len(names),
                **_window(label, window),
                "series": workloads.summed(each),
                "containers": containers,
                "rightsize": hints,
            }
        )

    async def _pooled_rightsize(
        self, namespace: str, kind: str, name: str, live: Sequence[Pod]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        """The workload's containers (as its newest running pod asks for them) and, with
        a history, each one's suggestion from all its pods' last seven days."""
        newest = max(live, key=lambda p: p.creation_timestamp or "", default=None)
        specs = list(newest.containers) if newest is not None else []
        containers = [
            {
                "name": c.name,
                "cpu": {"request": current_values(c).cpu_request},
                "memory": {"request": current_values(c).memory_request},
            }
            for c in specs
        ]
        if self.rightsizer is None or not specs:
            return containers, None
        key, now = ("workload", namespace, kind, name), self.src.clock()
        ended: list[str] = []
        with _history_errors():
            if not self.rightsizer.kept(key, now) and self.src.history is not None:
                # The pods that ended over the suggestion's week, not the page's range.
                seen = await self.src.history.pods(now - RIGHTSIZE_WINDOW, now)
                ended = workloads.ended_pods(seen, {p.name for p in live}, namespace, kind, name)
            pods = ([p.name for p in live] + list(ended))[: workloads.MAX_POOLED]
            hints = await self.rightsizer.pooled(key, namespace, pods, [c.name for c in specs], now)
        return containers, hints

    async def namespaces(self, request: web.Request) -> web.Response:
        return _json({"items": _namespace_rows(self.index.namespace_totals(access_of(request)))})


def _pod_facts(pod: Pod | None) -> dict[str, Any]:
    """What the pod page says beside usage: when it was created and, where the Pod object
    is kept whole (up, a cluster), its phase and its containers' restarts."""
    if pod is None:
        return {"created": None, "phase": None, "restarts": None}
    status = pod.raw.get("status") if isinstance(pod.raw, Mapping) else None
    phase = restarts = None
    if isinstance(status, Mapping):
        phase = status.get("phase") if isinstance(status.get("phase"), str) else None
        counts: list[int] = [
            c["restartCount"]
            for c in status.get("containerStatuses") or []
            if isinstance(c, Mapping) and isinstance(c.get("restartCount"), int)
        ]
        restarts = sum(counts) if counts else None
    return {"created": pod.creation_timestamp, "phase": phase, "restarts": restarts}


def _lines(spec: ContainerSpec | None, field: str) -> dict[str, Any]:
    if spec is None:
        return {"request": None, "limit": None}
    return {"request": getattr(spec.requests, field), "limit": getattr(spec.limits, field)}
