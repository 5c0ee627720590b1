"""A read-only core API (v1 nodes, namespaces, pods) built from the shared model.

`kubepulse up` has no kube-apiserver; this is what kubectl needs besides the metrics
API: `get nodes`, `get pods -A` and the node and pod lookups of `kubectl top`. Tables
follow the API server's printers (pkg/printers/internalversion/printers.go).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from kubepulse.api import tables
from kubepulse.api.responses import json_response, not_found
from kubepulse.api.selectors import parse_field_selector, parse_label_selector
from kubepulse.api.status import status_response
from kubepulse.api.watch import Render, Watched, serve_watch, wants_watch
from kubepulse.kube.feed import ObjectFeed
from kubepulse.kube.inventory import Inventory, namespaces
from kubepulse.timefmt import human_duration, parse_rfc3339

_NODE_COLUMNS = [
    tables.column("Name", "Name must be unique within a namespace.", fmt="name"),
    tables.column("Status", "The status of the node"),
    tables.column("Roles", "The roles of the node"),
    tables.column("Age", "CreationTimestamp is a timestamp representing the server time."),
    tables.column("Version", "Kubelet Version reported by the node."),
    tables.column("Internal-IP", "List of internal IPs for the node.", 1),
    tables.column("External-IP", "List of external IPs for the node.", 1),
    tables.column("OS-Image", "OS Image reported by the node from /etc/os-release.", 1),
    tables.column("Kernel-Version", "Kernel Version reported by the node.", 1),
    tables.column("Container-Runtime", "Container Runtime Version reported by the node.", 1),
]
_POD_COLUMNS = [
    tables.column("Name", "Name must be unique within a namespace.", fmt="name"),
    tables.column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    tables.column("Status", "The aggregate status of the containers in this pod."),
    tables.column(
        "Restarts", "The number of times the containers in this pod have been restarted."
    ),
    tables.column("Age", "CreationTimestamp is a timestamp representing the server time."),
    tables.column("IP", "IP address allocated to the pod.", 1),
    tables.column("Node", "Name of the node where the pod is scheduled.", 1),
    tables.column("Nominated Node", "Name of the node the scheduler nominated.", 1),
    tables.column("Readiness Gates", "Pod readiness gates.", 1),
]
_NAMESPACE_COLUMNS = [
    tables.column("Name", "Name must be unique within a namespace.", fmt="name"),
    tables.column("Status", "The status of the namespace"),
    tables.column("Age", "CreationTimestamp is a timestamp representing the server time."),
]


def _age(obj: Mapping[str, Any], now: float) -> str:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    return human_duration(now - parse_rfc3339(created)) if created else "<unknown>"


def _node_row(node: Mapping[str, Any], now: float) -> list[Any]:
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(
        k.split("/", 1)[1]
        for k in meta.get("labels") or {}
        if k.startswith("node-role.kubernetes.io/")
    )
    addresses = status.get("addresses") or []
    info = status.get("nodeInfo") or {}

    def ips(kind: str) -> str:
        return ",".join(a["address"] for a in addresses if a.get("type") == kind) or "<none>"

    return [
        meta.get("name"),
        state,
        ",".join(r for r in roles if r) or "<none>",
        _age(node, now),
        info.get("kubeletVersion", ""),
        ips("InternalIP"),
        ips("ExternalIP"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _pod_row(pod: Mapping[str, Any], now: float) -> list[Any]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    return [
        (pod.get("metadata") or {}).get("name"),
        f"{ready}/{total}",
        status.get("reason") or status.get("phase", "Unknown"),
        restarts,
        _age(pod, now),
        status.get("podIP") or "<none>",
        (pod.get("spec") or {}).get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _namespace_row(ns: Mapping[str, Any], now: float) -> list[Any]:
    phase = (ns.get("status") or {}).get("phase", "Active")
    return [(ns.get("metadata") or {}).get("name"), phase, _age(ns, now)]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "spec.nodeName": (obj.get("spec") or {}).get("nodeName", ""),
        "status.phase": (obj.get("status") or {}).get("phase", ""),
    }


def _meta_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    return {"metadata.name": (obj.get("metadata") or {}).get("name", "")}


_POD_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase")
_META_FIELDS = ("metadata.name",)

Row = Callable[[Mapping[str, Any], float], list[Any]]
_RESOURCES = {"NodeList": "nodes", "PodList": "pods", "NamespaceList": "namespaces"}


def _render(request: web.Request, columns: list[dict[str, Any]], row: Row) -> Render:
    """Events carry the object, or for kubectl get -w a Table of its one row, the
    column definitions in the first event only (as the API server sends them)."""
    if not tables.wants_table(request):
        return lambda obj, _first: obj

    def as_table(obj: Mapping[str, Any], first: bool) -> Mapping[str, Any]:
        version = obj["metadata"].get("resourceVersion", "")
        body = tables.table(request, columns, [(row(obj, time.time()), obj)], version)
        if not first:
            body["columnDefinitions"] = []
        return body

    return as_table


class CoreAPI:
    """With a feed (`up`), objects carry resource versions and can be watched."""

    def __init__(self, inventory: Inventory, feed: ObjectFeed | None = None) -> None:
        self.inventory, self.feed = inventory, feed

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/nodes", self.list_nodes),
            web.get("/api/v1/nodes/{name}", self.get_node),
            web.get("/api/v1/namespaces", self.list_namespaces),
            web.get("/api/v1/namespaces/{name}", self.get_namespace),
            web.get("/api/v1/pods", self.list_pods),
            web.get("/api/v1/namespaces/{namespace}/pods", self.list_pods),
            web.get("/api/v1/namespaces/{namespace}/pods/{name}", self.get_pod),
        ]

    def _fed(self, resource: str) -> list[Mapping[str, Any]]:
        assert self.feed is not None
        return sorted(
            self.feed.objects(resource),
            key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
        )

    def _nodes(self) -> list[Mapping[str, Any]]:
        if self.feed is not None:
            return self._fed("nodes")
        return [n.raw for n in sorted(self.inventory.nodes(), key=lambda n: n.name)]

    def _pods(self) -> list[Mapping[str, Any]]:
        if self.feed is not None:
            return self._fed("pods")
        pods = sorted(self.inventory.pods(), key=lambda p: (p.namespace, p.name))
        return [p.raw for p in pods]

    def _namespaces(self) -> list[Mapping[str, Any]]:
        if self.feed is not None:
            return self._fed("namespaces")
        return namespaces(self.inventory)

    def _version(self) -> str:
        return str(self.feed.resource_version) if self.feed is not None else "1"

    async def list_nodes(self, request: web.Request) -> web.StreamResponse:
        return await self._list(
            request, "NodeList", self._nodes(), _NODE_COLUMNS, _node_row, _META_FIELDS, _meta_fields
        )

    async def list_namespaces(self, request: web.Request) -> web.StreamResponse:
        items = self._namespaces()
        return await self._list(
            request,
            "NamespaceList",
            items,
            _NAMESPACE_COLUMNS,
            _namespace_row,
            _META_FIELDS,
            _meta_fields,
        )

    async def list_pods(self, request: web.Request) -> web.StreamResponse:
        items = self._pods()
        return await self._list(
            request, "PodList", items, _POD_COLUMNS, _pod_row, _POD_FIELDS, _pod_fields
        )

    async def get_node(self, request: web.Request) -> web.Response:
        return self._get(request, "nodes", self._nodes(), _NODE_COLUMNS, _node_row)

    async def get_namespace(self, request: web.Request) -> web.Response:
        return self._get(
            request, "namespaces", self._namespaces(), _NAMESPACE_COLUMNS, _namespace_row
        )

    async def get_pod(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        items = [p for p in self._pods() if p["metadata"].get("namespace") == namespace]
        return self._get(request, "pods", items, _POD_COLUMNS, _pod_row)

    async def _list(
        self,
        request: web.Request,
        kind: str,
        items: Sequence[Mapping[str, Any]],
        columns: list[dict[str, Any]],
        row: Row,
        supported_fields: tuple[str, ...],
        fields_of: Callable[[Mapping[str, Any]], dict[str, str]],
    ) -> web.StreamResponse:
        labels = parse_label_selector(request.query.get("labelSelector", ""))
        fields = parse_field_selector(request.query.get("fieldSelector", ""), supported_fields)
        namespace = request.match_info.get("namespace")

        def selected(i: Mapping[str, Any]) -> bool:
            in_namespace = namespace is None or i["metadata"].get("namespace") == namespace
            return in_namespace and labels(_labels(i)) and fields(fields_of(i))

        if wants_watch(request):
            if self.feed is None:
                return status_response(405, "the server does not allow watch on this resource")
            return await serve_watch(
                request,
                Watched(
                    self.feed,
                    _RESOURCES[kind],
                    kind.removesuffix("List"),
                    "v1",
                    selected,
                    _render(request, columns, row),
                ),
            )
        chosen = [i for i in items if selected(i)]
        if tables.wants_table(request):
            now = time.time()
            return json_response(
                tables.table(request, columns, [(row(i, now), i) for i in chosen], self._version()),
                tables.TABLE_CONTENT_TYPE,
            )
        # Items of a typed list carry no kind or apiVersion, as the API server sends them.
        stripped = [{k: v for k, v in i.items() if k not in ("kind", "apiVersion")} for i in chosen]
        return json_response(
            {
                "kind": kind,
                "apiVersion": "v1",
                "metadata": {"resourceVersion": self._version()},
                "items": stripped,
            }
        )

    def _get(
        self,
        request: web.Request,
        resource: str,
        items: Sequence[Mapping[str, Any]],
        columns: list[dict[str, Any]],
        row: Row,
    ) -> web.Response:
        name = request.match_info["name"]
        found = next((i for i in items if i["metadata"].get("name") == name), None)
        if found is None:
            return not_found(resource, name)
        if tables.wants_table(request):
            body = tables.table(
                request, columns, [(row(found, time.time()), found)], self._version()
            )
            return json_response(body, tables.TABLE_CONTENT_TYPE)
        return json_response(found)
