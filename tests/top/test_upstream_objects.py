"""`kubepulse top` against objects as upstream metrics-server serves them, not as kubepulse does.

kubepulse top reads whatever cluster the kubeconfig names. These servers answer with the
metrics objects of the Kubernetes documentation's examples and of an older
metrics-server (quantities in m and Ki, a selfLink, a 1m0s window), and kubectl 1.32 and
kubepulse must print the same bytes for them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.api.conftest import NODE_OBJECTS, POD_OBJECTS
from tests.top.conftest import Cluster, serve
from tests.top.test_kubectl_parity import assert_same, in_process, kubectl

GROUP = "metrics.k8s.io"
VERSION = f"{GROUP}/v1beta1"


def node_metrics(name: str, cpu: str, memory: str, window: str) -> dict[str, Any]:
    return {
        "kind": "NodeMetrics",
        "apiVersion": VERSION,
        "metadata": {
            "name": name,
            "selfLink": f"/apis/{VERSION}/nodes/{name}",
            "creationTimestamp": "2022-01-27T18:48:43Z",
        },
        "timestamp": "2022-01-27T18:48:33Z",
        "window": window,
        "usage": {"cpu": cpu, "memory": memory},
    }


def pod_metrics(
    namespace: str, name: str, containers: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    return {
        "kind": "PodMetrics",
        "apiVersion": VERSION,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "selfLink": f"/apis/{VERSION}/namespaces/{namespace}/pods/{name}",
            "creationTimestamp": "2022-01-27T19:25:00Z",
        },
        "timestamp": "2022-01-27T19:24:31Z",
        "window": "30s",
        "containers": [
            {"name": c, "usage": {"cpu": cpu, "memory": memory}}
            for c, (cpu, memory) in containers.items()
        ],
    }


NODES = [
    node_metrics("node-a", "487558164n", "732212Ki", "30s"),  # the docs' minikube numbers
    node_metrics("node-b", "12436m", "4991296Ki", "1m0s"),  # metrics-server v0.3's form
    node_metrics("node-d", "2", "1Gi", "20.05s"),
]
PODS = [
    pod_metrics(
        "kube-system", POD_OBJECTS[0]["metadata"]["name"], {"coredns": ("9559630n", "22244Ki")}
    ),
    pod_metrics(
        "default", "web-1", {"nginx": ("179m", "3127988Ki"), "log-shipper": ("1500u", "0")}
    ),
]


def metrics_api() -> web.Application:
    """The read paths kubectl top and kubepulse top use, answered with fixed objects."""

    def listing(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"kind": kind, "apiVersion": VERSION, "metadata": {}, "items": items}

    def core(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

    def in_namespace(items: list[dict[str, Any]], request: web.Request) -> list[dict[str, Any]]:
        namespace = request.match_info.get("namespace")
        return [i for i in items if namespace is None or i["metadata"]["namespace"] == namespace]

    def one(items: list[dict[str, Any]], request: web.Request) -> web.Response:
        for item in in_namespace(items, request):
            if item["metadata"]["name"] == request.match_info["name"]:
                return web.json_response(item)
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'nodemetrics.metrics.k8s.io "{request.match_info["name"]}" not found',
            "reason": "NotFound",
            "code": 404,
        }
        return web.json_response(status, status=404)

    routes = web.RouteTableDef()

    @routes.get("/api")
    async def api(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    @routes.get("/apis")
    async def apis(_: web.Request) -> web.Response:
        version = {"groupVersion": VERSION, "version": "v1beta1"}
        group = {"name": GROUP, "versions": [version], "preferredVersion": version}
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})

    @routes.get(f"/apis/{VERSION}/nodes")
    async def nodes(_: web.Request) -> web.Response:
        return web.json_response(listing("NodeMetricsList", NODES))

    @routes.get(f"/apis/{VERSION}/nodes/{{name}}")
    async def node(request: web.Request) -> web.Response:
        return one(NODES, request)

    @routes.get(f"/apis/{VERSION}/pods")
    @routes.get(f"/apis/{VERSION}/namespaces/{{namespace}}/pods")
    async def pods(request: web.Request) -> web.Response:
        return web.json_response(listing("PodMetricsList", in_namespace(PODS, request)))

    @routes.get(f"/apis/{VERSION}/namespaces/{{namespace}}/pods/{{name}}")
    async def pod(request: web.Request) -> web.Response:
        return one(PODS, request)

    @routes.get("/api/v1/nodes")
    async def core_nodes(_: web.Request) -> web.Response:
        return web.json_response(core("NodeList", copy.deepcopy(NODE_OBJECTS)))

    @routes.get("/api/v1/nodes/{name}")
    async def core_node(request: web.Request) -> web.Response:
        return one(NODE_OBJECTS, request)

    @routes.get("/api/v1/pods")
    @routes.get("/api/v1/namespaces/{namespace}/pods")
    async def core_pods(request: web.Request) -> web.Response:
        return web.json_response(core("PodList", in_namespace(POD_OBJECTS, request)))

    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from serve(tmp_path_factory.mktemp("upstream"), metrics_api())


CASES = [
    ["nodes"],
    ["nodes", "--show-capacity"],
    ["nodes", "--sort-by=memory"],
    ["node", "node-b"],
    ["pods", "-A"],
    ["pods", "-A", "--containers", "--sum"],
    ["pods", "-A", "--sort-by=cpu"],
    ["pods", "-n", "kube-system"],
    ["pod", "web-1", "--containers"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c) for c in CASES])
def test_objects_as_upstream_serves_them_print_as_kubectl_prints_them(
    upstream: Cluster, args: list[str]
) -> None:
    want = kubectl(upstream, args)
    assert want[0] == 0 and want[1], want[2]
    assert_same(in_process(upstream, args), want)
