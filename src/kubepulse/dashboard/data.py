"""The JSON the page polls: live usage from the MetricsStore, series from the History.

Units everywhere: CPU in millicores, memory in bytes, times in seconds since the epoch.
A usage is null when the store has no rate for it yet (fewer than two scrapes).
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from kubepulse.api.selectors import SelectorError, parse_label_selector
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.objects import ContainerSpec, Node, Pod
from kubepulse.model import Resources
from kubepulse.store.points import MetricsStore, PodRates, Rate
from kubepulse.store.prometheus import PrometheusError
from kubepulse.store.series import SeriesSource

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
    store: MetricsStore
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


def _pods_per_node(inventory: Inventory) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in inventory.pods():
        counts[pod.node_name] = counts.get(pod.node_name, 0) + 1
    return counts


def _nodes(src: DataSources, access: Access) -> list[dict[str, Any]]:
    if not access.nodes:
        return []
    counts = _pods_per_node(src.inventory)
    nodes = sorted(src.inventory.nodes(), key=lambda n: n.name)
    return [node_summary(src, n, counts.get(n.name, 0)) for n in nodes]


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


def _all_pods(src: DataSources, access: Access) -> list[dict[str, Any]]:
    """Every pod the inventory or the store knows and the user may see, with its usage."""
    rates = src.store.pods()
    pods = {(p.namespace, p.name): p for p in src.inventory.pods()}
    keys = [k for k in pods.keys() | rates.keys() if access.sees(k[0])]
    return [pod_row(pods.get(k), k, rates.get(k)) for k in keys]


def _top(rows: Sequence[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
    used = [r for r in rows if r[resource]["used"] is not None]
    top = heapq.nlargest(TOP, used, key=lambda r: r[resource]["used"])
    return [
        {"namespace": r["namespace"], "name": r["name"], "node": r["node"], **r[resource]}
        for r in top
    ]


def _namespaces(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = totals.setdefault(
            r["namespace"], {"name": r["namespace"], "pods": 0, "cpu": 0.0, "memory": 0}
        )
        t["pods"] += 1
        t["cpu"] = round(t["cpu"] + (r["cpu"]["used"] or 0), 3)
        t["memory"] += r["memory"]["used"] or 0
    return [totals[k] for k in sorted(totals)]


async def _series(
    src: DataSources, kind: str, namespace: str, name: str, container: str, seconds: int, step: int
) -> list[list[float]]:
    """[[timestamp, cpu millicores, memory bytes], ...] oldest first.

    A history that cannot answer (Prometheus down or refusing, the file unreadable) is a
    502 or 503 with {"error": why}, never a 500."""
    if src.history is None:
        return []
    end = src.clock()
    try:
        points = await src.history.series(
            kind, namespace, name, container, end - seconds, end, step
        )
    except PrometheusError as err:
        raise HistoryUnavailable(502, f"history from Prometheus: {err}") from None
    except sqlite3.Error as err:
        raise HistoryUnavailable(503, f"history file: {err}") from None
    return [[p.timestamp, _millicores(p.cpu_nanocores), round(p.memory_bytes)] for p in points]


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


class DataHandlers:
    def __init__(self, src: DataSources) -> None:
        self.src = src

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
        nodes = _nodes(self.src, access)
        rows = _all_pods(self.src, access)

        def total(resource: str, key: str) -> float:
            return round(sum(n[resource][key] or 0 for n in nodes), 3)

        return _json(
            {
                "nodes": nodes,
                "totals": {
                    "nodes": len(nodes),
                    "pods": len(rows),
                    "cpu": {
                        "used": total("cpu", "used"),
                        "allocatable": total("cpu", "allocatable"),
                    },
                    "memory": {
                        "used": total("memory", "used"),
                        "allocatable": total("memory", "allocatable"),
                    },
                },
                "top_cpu": _top(rows, "cpu"),
                "top_memory": _top(rows, "memory"),
                "namespaces": _namespaces(rows),
                "history": self.src.history is not None,
            }
        )

    async def nodes(self, request: web.Request) -> web.Response:
        nodes = _nodes(self.src, access_of(request))
        names = [n["name"] for n in nodes[:MAX_SPARKLINES]]

        sparks: dict[str, list[list[float]]] = {}
        failed = None
        try:
            for name in names:
                sparks[name] = await _series(
                    self.src, "node", "", name, "", SPARK_SECONDS, SPARK_STEP
                )
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
        rates = self.src.store.pods()
        pods = [
            p for p in self.src.inventory.pods() if p.node_name == name and access.sees(p.namespace)
        ]
        rows = sorted(
            (pod_row(p, (p.namespace, p.name), rates.get((p.namespace, p.name))) for p in pods),
            key=lambda r: (r["namespace"], r["name"]),
        )
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
        rows = [
            r
            for r in _all_pods(self.src, access_of(request))
            if (not namespace or r["namespace"] == namespace)
            and name.lower() in r["name"].lower()
            and matches(r["labels"])
        ]
        if sort == "name":
            rows.sort(key=lambda r: (r["namespace"], r["name"]))
        else:
            rows.sort(key=lambda r: (r["namespace"], r["name"]))
            rows.sort(
                key=lambda r: -1.0 if r[sort]["used"] is None else r[sort]["used"], reverse=True
            )
        return _json({"items": rows[:MAX_PODS], "total": len(rows), "sort": sort})

    async def pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        label, seconds, step = _range(request)
        key = (namespace, name)
        if not access_of(request).sees(namespace):
            raise _not_found(f"no pod {namespace}/{name}")
        pod = next((p for p in self.src.inventory.pods() if (p.namespace, p.name) == key), None)
        rates = self.src.store.pods().get(key)
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
        return _json({"items": _namespaces(_all_pods(self.src, access_of(request)))})


def _lines(spec: ContainerSpec | None, field: str) -> dict[str, Any]:
    if spec is None:
        return {"request": None, "limit": None}
    return {"request": getattr(spec.requests, field), "limit": getattr(spec.limits, field)}
