"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics, as metrics-server serves them.

Semantics from metrics-server pkg/api/{node,pod,table,filter}.go: metadata (name,
namespace, labels) is copied from the Node or Pod, creationTimestamp is the time of the
request, items are sorted by name (pods by namespace, then name), items without
metrics are left out of a list and a single GET without metrics is a 404.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubepulse.api import tables
from kubepulse.api.auditkeys import wants_whole_body
from kubepulse.api.pod_list import RenderedPods
from kubepulse.api.responses import JSON, json_response, not_found, refuse_watch
from kubepulse.api.selectors import parse_field_selector, parse_label_selector
from kubepulse.api.watch import wants_watch
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.objects import Node, Pod
from kubepulse.quantity import format_bytes, format_nanocores
from kubepulse.store.rates import PodRates, Rate
from kubepulse.store.reading import UsageStore
from kubepulse.timefmt import go_duration, rfc3339

if TYPE_CHECKING:  # metrics_watch builds its objects with this module's functions
    from kubepulse.api.metrics_watch import MetricsWatchers

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP_VERSION}"

_COLUMNS = [
    tables.column("Name", "Name of the resource", fmt="name"),
    tables.column("cpu", "CPU usage"),
    tables.column("memory", "Memory usage"),
    tables.column("Window", "Interval over which metrics were collected"),
]


def _usage(cpu_nanocores: int, working_set_bytes: int) -> dict[str, str]:
    return {"cpu": format_nanocores(cpu_nanocores), "memory": format_bytes(working_set_bytes)}


def _meta(
    name: str, labels: Mapping[str, str], created: str, namespace: str = ""
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = created
    if labels:
        meta["labels"] = dict(labels)
    return meta


def node_metrics(node: Node, r: Rate, created: str) -> dict[str, Any]:
    return {
        "metadata": _meta(node.name, node.labels, created),
        "timestamp": rfc3339(r.timestamp),
        "window": go_duration(r.window),
        "usage": _usage(r.cpu_nanocores, r.working_set_bytes),
    }


def pod_metrics(pod: Pod, r: PodRates, created: str) -> dict[str, Any]:
    return {
        "metadata": _meta(pod.name, pod.labels, created, pod.namespace),
        "timestamp": rfc3339(r.timestamp),
        "window": go_duration(r.window),
        "containers": [
            {"name": name, "usage": _usage(c.cpu_nanocores, c.working_set_bytes)}
            for name, c in r.containers
        ],
    }


def _typed(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": GROUP_VERSION, **item}


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


_namespace_and_name = attrgetter("namespace", "name")
CHUNK_ITEMS = 4096
"""Items per write of a LIST body: ~1.5 MiB, so a 150,000-pod body is never whole in memory."""


class MetricsAPI:
    def __init__(
        self,
        store: UsageStore,
        inventory: Inventory,
        node_selector: Callable[[Mapping[str, str]], bool] = lambda _labels: True,
        rendered: RenderedPods | None = None,
        watchers: MetricsWatchers | None = None,
    ) -> None:
        self.store, self.inventory, self.node_selector = store, inventory, node_selector
        self.watchers = watchers
        self.rendered = rendered if rendered is not None else RenderedPods(store)
        self._sorted: tuple[list[Pod], list[Pod]] = ([], [])

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/nodes", self.list_nodes),
            web.get(f"{PREFIX}/nodes/{{name}}", self.get_node),
            web.get(f"{PREFIX}/pods", self.list_pods),
            web.get(f"{PREFIX}/namespaces/{{namespace}}/pods", self.list_pods),
            web.get(f"{PREFIX}/namespaces/{{namespace}}/pods/{{name}}", self.get_pod),
        ]

    # -- nodes ---------------------------------------------------------------------
    def _nodes(self, request: web.Request) -> list[tuple[Node, Rate]]:
        labels = parse_label_selector(request.query.get("labelSelector", ""))
        fields = parse_field_selector(request.query.get("fieldSelector", ""), ("metadata.name",))
        found = []
        for node in sorted(self.inventory.nodes(), key=lambda n: n.name):
            if not (self.node_selector(node.labels) and labels(node.labels)):
                continue
            if not fields({"metadata.name": node.name}):
                continue
            r = self.store.node(node.name)
            if r is not None:
                found.append((node, r))
        return found

    async def list_nodes(self, request: web.Request) -> web.StreamResponse:
        if wants_watch(request) and self.watchers is not None:
            return await self.watchers.serve(request, pods=False)
        if refused := refuse_watch(request):
            return refused
        created = rfc3339(time.time())
        found = self._nodes(request)
        if tables.wants_table(request):
            return self._table(
                request, [(n.name, r, node_metrics(n, r, created)) for n, r in found]
            )
        items = [node_metrics(n, r, created) for n, r in found]
        return json_response(_list("NodeMetricsList", items))

    async def get_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        node = next((n for n in self.inventory.nodes() if n.name == name), None)
        if node is None or not self.node_selector(node.labels):
            # The node lister's own error (metrics-server's lister is filtered by -l).
            return not_found("node", name)
        r = self.store.node(name)
        if r is None:
            return not_found("nodes", name, GROUP)
        item = node_metrics(node, r, rfc3339(time.time()))
        if tables.wants_table(request):
            return self._table(request, [(name, r, item)])
        return json_response(_typed("NodeMetrics", item))

    # -- pods ----------------------------------------------------------------------
    def _known_pods(self) -> list[Pod]:
        pods = self.inventory.pods()
        if pods:
            return pods
        # No Pod objects given (a --targets file of nodes only): serve what was scraped.
        return [Pod(namespace=ns, name=name) for ns, name in self.store.pods()]

    def _pod_candidates(self, request: web.Request, namespace: str | None) -> list[Pod]:
        """The pods a LIST names, sorted by namespace and name, before looking at data."""
        pods = self._sorted_pods()
        if namespace is not None:
            pods = [p for p in pods if p.namespace == namespace]
        selector, field_selector = (
            request.query.get("labelSelector", ""),
            request.query.get("fieldSelector", ""),
        )
        if selector or field_selector:
            labels = parse_label_selector(selector)
            fields = parse_field_selector(field_selector, ("metadata.name", "metadata.namespace"))
            pods = [
                p
                for p in pods
                if labels(p.labels)
                and fields({"metadata.name": p.name, "metadata.namespace": p.namespace})
            ]
        else:
            # Parsed anyway for its errors: an empty selector is valid and matches all.
            parse_label_selector(selector)
        return pods

    def _sorted_pods(self) -> list[Pod]:
        """Every known pod by namespace and name; sorted again only when the inventory's
        snapshot changes (150,000 pods take ~0.15 s to sort)."""
        pods = self._known_pods()
        if self._sorted[0] is not pods:
            self._sorted = (pods, sorted(pods, key=_namespace_and_name))
        return self._sorted[1]

    def _pods(self, request: web.Request, namespace: str | None) -> list[tuple[Pod, PodRates]]:
        index: dict[tuple[str, str], PodRates] | None = None
        found = []
        for pod in self._pod_candidates(request, namespace):
            if pod.node_name:
                r = self.store.pod(pod.node_name, pod.namespace, pod.name)
            else:
                index = index if index is not None else self.store.pods()
                r = index.get((pod.namespace, pod.name))
            if r is not None:
                found.append((pod, r))
        return found

    async def list_pods(self, request: web.Request) -> web.StreamResponse:
        if wants_watch(request) and self.watchers is not None:
            return await self.watchers.serve(request, pods=True)
        if refused := refuse_watch(request):
            return refused
        created = rfc3339(time.time())
        namespace = request.match_info.get("namespace")
        if tables.wants_table(request):
            found = self._pods(request, namespace)
            rows = [(p.name, _summed(r), pod_metrics(p, r, created)) for p, r in found]
            return self._table(request, rows)
        return await _write_chunks(request, self.pod_list_chunks(request, namespace, created))

    def pod_list_chunks(
        self, request: web.Request, namespace: str | None, created: str
    ) -> list[bytes]:
        """The PodMetricsList JSON a LIST asks for, as chunks to write in order."""
        candidates = self._pod_candidates(request, namespace)
        whole = namespace is None and not request.query
        return self.rendered.body(candidates, created, whole)

    async def get_pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        pod = next(
            (p for p in self._known_pods() if p.namespace == namespace and p.name == name), None
        )
        if pod is None:
            return not_found("pod", name)
        r = (
            self.store.pod(pod.node_name, namespace, name)
            if pod.node_name
            else self.store.pods().get((namespace, name))
        )
        if r is None:
            # metrics-server names the pod namespace/name here (pkg/api/pod.go).
            return not_found("pods", f"{namespace}/{name}", GROUP)
        item = pod_metrics(pod, r, rfc3339(time.time()))
        if tables.wants_table(request):
            return self._table(request, [(name, _summed(r), item)])
        return json_response(_typed("PodMetrics", item))

    @staticmethod
    def _table(request: web.Request, rows: list[tuple[str, Rate, dict[str, Any]]]) -> web.Response:
        cells = [
            (
                [
                    name,
                    format_nanocores(r.cpu_nanocores),
                    format_bytes(r.working_set_bytes),
                    go_duration(r.window),
                ],
                item,
            )
            for name, r, item in rows
        ]
        body = tables.table(request, _COLUMNS, cells)
        return json_response(body, tables.TABLE_CONTENT_TYPE)


async def _write_chunks(request: web.Request, chunks: list[bytes]) -> web.StreamResponse:
    """The body in writes of CHUNK_ITEMS items, with its Content-Length; whole when an
    audit event records it."""
    if wants_whole_body(request):
        return web.Response(body=b"".join(chunks), headers={"Content-Type": JSON})
    response = web.StreamResponse(headers={"Content-Type": JSON})
    response.content_length = sum(map(len, chunks))
    await response.prepare(request)
    step = CHUNK_ITEMS * 5  # chunks per item (pod_list.RenderedPods.body)
    for i in range(0, len(chunks), step):
        await response.write(b"".join(chunks[i : i + step]))
    await response.write_eof()
    return response


def _summed(r: PodRates) -> Rate:
    """A pod's row in a Table sums its containers (metrics-server table.go)."""
    return Rate(
        r.timestamp,
        r.window,
        sum(c.cpu_nanocores for _, c in r.containers),
        sum(c.working_set_bytes for _, c in r.containers),
    )
