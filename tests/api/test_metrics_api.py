"""The server's HTTP API answers as metrics-server and the API server do."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from kubepulse.api.discovery import AGGREGATED
from kubepulse.api.metrics import pod_metrics
from kubepulse.api.pod_list import RenderedPods
from kubepulse.api.tables import TABLE_CONTENT_TYPE
from kubepulse.kube.objects import Pod, pod_from_object
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.rates import PodRates
from kubepulse.timefmt import parse_rfc3339
from tests.api.conftest import (
    AUTH,
    COREDNS,
    NODE_OBJECTS,
    POD_OBJECTS,
    T1,
    T1_TEXT,
    TOKEN,
    ZONE,
    FakeScraping,
    MakeClient,
    filled_store,
    inventory,
)

Client = TestClient[Any, Any]
M = "/apis/metrics.k8s.io/v1beta1"
KUBECTL_GET_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
KUBECTL_DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json;q=0.9"
)
T1_MINUS_2_TEXT = "2022-01-27T18:48:31Z"


async def get_json(
    client: Client, path: str, status: int = 200, headers: dict[str, str] | None = None
) -> Any:
    resp = await client.get(path, headers={**AUTH, **(headers or {})})
    body = await resp.json(content_type=None)
    assert resp.status == status, body
    return body


def without_creation_times(body: Any) -> Any:
    """Checks every creationTimestamp is the time of the request, then drops it."""
    items = body.get("items", [body])
    for item in items:
        created = item["metadata"].pop("creationTimestamp")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created), created
        assert abs(parse_rfc3339(created) - time.time()) < 5
    return body


def assert_status(body: Any, code: int, reason: str, message: str | None = None) -> None:
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    if message is not None:
        assert body["message"] == message


NODE_A = {
    "metadata": {
        "name": "node-a",
        "labels": {
            "kubernetes.io/hostname": "node-a",
            ZONE: "zone-a",
            "node-role.kubernetes.io/control-plane": "",
        },
    },
    "timestamp": T1_TEXT,
    "window": "15s",
    "usage": {"cpu": "500m", "memory": "1Mi"},
}
NODE_B = {
    "metadata": {"name": "node-b", "labels": {"kubernetes.io/hostname": "node-b", ZONE: "zone-b"}},
    "timestamp": T1_TEXT,
    "window": "15s",
    "usage": {"cpu": "487558164n", "memory": "732212Ki"},
}
NODE_D = {
    "metadata": {"name": "node-d"},
    "timestamp": T1_TEXT,
    "window": "30s",
    "usage": {"cpu": "2", "memory": "1Gi"},
}
WEB_1 = {
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
    "timestamp": T1_MINUS_2_TEXT,
    "window": "12s",
    "containers": [
        {"name": "log-shipper", "usage": {"cpu": "250m", "memory": "2Mi"}},
        {"name": "nginx", "usage": {"cpu": "100m", "memory": "1Mi"}},
    ],
}
COREDNS_METRICS = {
    "metadata": {
        "name": COREDNS,
        "namespace": "kube-system",
        "labels": {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"},
    },
    "timestamp": T1_TEXT,
    "window": "15s",
    "containers": [{"name": "coredns", "usage": {"cpu": "9559563n", "memory": "22244Ki"}}],
}


def metrics_list(kind: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": list(items),
    }


# -- metrics.k8s.io objects -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "want"),
    [
        pytest.param(
            f"{M}/nodes",
            metrics_list("NodeMetricsList", NODE_A, NODE_B, NODE_D),
            id="nodes-without-data-left-out",
        ),
        pytest.param(
            f"{M}/pods",
            metrics_list("PodMetricsList", WEB_1, COREDNS_METRICS),
            id="pods-sorted-by-namespace-then-name",
        ),
        pytest.param(
            f"{M}/namespaces/default/pods",
            metrics_list("PodMetricsList", WEB_1),
            id="pods-in-a-namespace",
        ),
        pytest.param(
            f"{M}/namespaces/empty/pods",
            metrics_list("PodMetricsList"),
            id="empty-namespace-is-an-empty-list",
        ),
        pytest.param(
            f"{M}/nodes/node-a",
            {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", **NODE_A},
            id="one-node",
        ),
        pytest.param(
            f"{M}/nodes/node-d",
            {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", **NODE_D},
            id="one-node-without-labels",
        ),
        pytest.param(
            f"{M}/namespaces/kube-system/pods/{COREDNS}",
            {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1", **COREDNS_METRICS},
            id="one-pod",
        ),
        pytest.param(
            f"{M}/namespaces/default/pods/web-1",
            {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1", **WEB_1},
            id="one-pod-window-of-earliest-container",
        ),
    ],
)
async def test_metrics_objects_are_shaped_as_metrics_server(
    client: Client, path: str, want: dict[str, Any]
) -> None:
    resp = await client.get(path, headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert without_creation_times(await resp.json()) == want


@pytest.mark.parametrize(
    ("path", "message", "details"),
    [
        pytest.param(
            f"{M}/nodes/node-c",
            'nodes.metrics.k8s.io "node-c" not found',
            {"name": "node-c", "group": "metrics.k8s.io", "kind": "nodes"},
            id="node-without-data",
        ),
        pytest.param(
            f"{M}/nodes/ghost",
            'node "ghost" not found',
            {"name": "ghost", "kind": "node"},
            id="unknown-node",
        ),
        pytest.param(
            f"{M}/namespaces/default/pods/web-2",
            'pods.metrics.k8s.io "default/web-2" not found',
            {"name": "default/web-2", "group": "metrics.k8s.io", "kind": "pods"},
            id="pod-without-data",
        ),
        pytest.param(
            f"{M}/namespaces/default/pods/ghost",
            'pod "ghost" not found',
            {"name": "ghost", "kind": "pod"},
            id="unknown-pod",
        ),
        pytest.param(
            f"{M}/namespaces/kube-system/pods/web-1",
            'pod "web-1" not found',
            {"name": "web-1", "kind": "pod"},
            id="pod-in-another-namespace",
        ),
    ],
)
async def test_single_get_without_data_is_not_found(
    client: Client, path: str, message: str, details: dict[str, str]
) -> None:
    body = await get_json(client, path, 404)
    assert_status(body, 404, "NotFound", message)
    assert body["details"] == details


async def test_node_outside_node_selector_is_not_served(make_client: MakeClient) -> None:
    client = await make_client(node_selector=lambda labels: labels.get(ZONE) == "zone-b")
    listed = await get_json(client, f"{M}/nodes")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["node-b"]
    body = await get_json(client, f"{M}/nodes/node-a", 404)
    assert_status(body, 404, "NotFound", 'node "node-a" not found')


# -- selectors --------------------------------------------------------------------------


def names(body: Any) -> list[str]:
    return [
        "/".join(filter(None, (i["metadata"].get("namespace"), i["metadata"]["name"])))
        for i in body["items"]
    ]


@pytest.mark.parametrize(
    ("path", "query", "want"),
    [
        pytest.param("nodes", {"labelSelector": f"{ZONE}=zone-a"}, ["node-a"], id="node-label"),
        pytest.param(
            "nodes",
            {"labelSelector": f"{ZONE} in (zone-a,zone-b)"},
            ["node-a", "node-b"],
            id="node-label-in",
        ),
        pytest.param("nodes", {"labelSelector": f"!{ZONE}"}, ["node-d"], id="node-label-absent"),
        pytest.param(
            "nodes",
            {"labelSelector": "node-role.kubernetes.io/control-plane"},
            ["node-a"],
            id="node-label-exists",
        ),
        pytest.param(
            "nodes", {"fieldSelector": "metadata.name=node-b"}, ["node-b"], id="node-name"
        ),
        pytest.param(
            "nodes",
            {"fieldSelector": "metadata.name!=node-b"},
            ["node-a", "node-d"],
            id="node-name-not",
        ),
        pytest.param(
            "nodes",
            {"labelSelector": f"{ZONE}", "fieldSelector": "metadata.name=node-a"},
            ["node-a"],
            id="node-label-and-field",
        ),
        pytest.param("nodes", {"labelSelector": f"{ZONE}=zone-c"}, [], id="node-nothing-matches"),
        pytest.param("pods", {"labelSelector": "app=web"}, ["default/web-1"], id="pod-label"),
        pytest.param(
            "pods", {"labelSelector": "app!=web"}, [f"kube-system/{COREDNS}"], id="pod-label-not"
        ),
        pytest.param(
            "pods",
            {"fieldSelector": "metadata.namespace=kube-system"},
            [f"kube-system/{COREDNS}"],
            id="pod-namespace-field",
        ),
        pytest.param(
            "pods", {"fieldSelector": "metadata.name=web-1"}, ["default/web-1"], id="pod-name-field"
        ),
        pytest.param(
            "namespaces/kube-system/pods",
            {"labelSelector": "app=web"},
            [],
            id="namespaced-pod-label",
        ),
        pytest.param(
            "namespaces/default/pods",
            {"fieldSelector": "metadata.namespace=kube-system"},
            [],
            id="namespace-path-and-field-disagree",
        ),
    ],
)
async def test_selectors_filter_lists(
    client: Client, path: str, query: dict[str, str], want: list[str]
) -> None:
    resp = await client.get(f"{M}/{path}", params=query, headers=AUTH)
    assert resp.status == 200
    assert names(await resp.json()) == want


@pytest.mark.parametrize(
    ("path", "query", "fragment"),
    [
        pytest.param(
            "nodes",
            {"labelSelector": f"{ZONE} in (zone-a"},
            "unable to parse",
            id="node-unclosed-set",
        ),
        pytest.param(
            "pods",
            {"labelSelector": "=web"},
            "found '=', expected: !, identifier, or 'end of string'",
            id="pod-missing-key",
        ),
        pytest.param(
            "namespaces/default/pods",
            {"labelSelector": "app=a=b"},
            "found '=', expected: ',' or 'end of string'",
            id="namespaced-bad-label",
        ),
        pytest.param(
            "nodes",
            {"fieldSelector": "metadata.namespace=default"},
            "field label not supported: metadata.namespace",
            id="node-namespace-field",
        ),
        pytest.param(
            "nodes",
            {"fieldSelector": "spec.unschedulable=true"},
            "field label not supported: spec.unschedulable",
            id="node-unknown-field",
        ),
        pytest.param(
            "pods",
            {"fieldSelector": "spec.nodeName=node-a"},
            "field label not supported: spec.nodeName",
            id="pod-unknown-field",
        ),
        pytest.param(
            "pods", {"fieldSelector": "metadata.name"}, "invalid selector", id="pod-no-operator"
        ),
    ],
)
async def test_bad_selector_is_bad_request(
    client: Client, path: str, query: dict[str, str], fragment: str
) -> None:
    resp = await client.get(f"{M}/{path}", params=query, headers=AUTH)
    assert resp.status == 400
    body = await resp.json()
    assert_status(body, 400, "BadRequest")
    assert fragment in body["message"]


# -- paths, methods, watch ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{M}/services", id="unknown-resource"),
        pytest.param("/apis/metrics.k8s.io/v1", id="unknown-version"),
        pytest.param("/apis/custom.metrics.k8s.io/v1beta2", id="unknown-group"),
        pytest.param(f"{M}/namespaces/default/pods/web-1/log", id="subresource"),
        pytest.param("/nothing/here", id="outside-the-api"),
    ],
)
async def test_unknown_path_is_not_found_status(client: Client, path: str) -> None:
    body = await get_json(client, path, 404)
    assert_status(body, 404, "NotFound")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{M}/nodes", id="node-list"),
        pytest.param(f"{M}/nodes/node-a", id="node"),
        pytest.param(f"{M}/pods", id="pod-list"),
        pytest.param(f"{M}/namespaces/default/pods", id="namespaced-pod-list"),
        pytest.param(f"{M}/namespaces/default/pods/web-1", id="pod"),
        pytest.param(M, id="discovery"),
    ],
)
async def test_writes_are_method_not_allowed(client: Client, method: str, path: str) -> None:
    resp = await client.request(method, path, headers=AUTH, json={"kind": "NodeMetrics"})
    assert resp.status == 405
    assert_status(await resp.json(), 405, "MethodNotAllowed")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{M}/nodes?watch=true", id="nodes"),
        pytest.param(f"{M}/pods?watch=true", id="pods"),
        pytest.param(f"{M}/namespaces/default/pods?watch=1", id="namespaced-pods"),
        pytest.param(f"{M}/nodes?watch=true&resourceVersion=0", id="with-resource-version"),
    ],
)
async def test_watch_is_method_not_allowed(client: Client, path: str) -> None:
    body = await get_json(client, path, 405)
    assert_status(body, 405, "MethodNotAllowed")


async def test_watch_false_is_a_list(client: Client) -> None:
    body = await get_json(client, f"{M}/nodes?watch=false")
    assert body["kind"] == "NodeMetricsList"


# -- authentication and probes ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer not-the-token"}, id="wrong-token"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="token-with-extra-character"),
        pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, id="token-prefix"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="basic-scheme"),
        pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", f"{M}/nodes", id="nodes"),
        pytest.param("GET", f"{M}/namespaces/default/pods/web-1", id="pod"),
        pytest.param("GET", "/apis", id="discovery"),
        pytest.param("GET", "/metrics", id="self-metrics"),
        pytest.param("GET", "/nothing/here", id="unknown-path"),
        pytest.param("POST", f"{M}/nodes", id="post"),
    ],
)
async def test_requests_without_a_good_token_are_unauthorized(
    client: Client, headers: dict[str, str], method: str, path: str
) -> None:
    resp = await client.request(method, path, headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert_status(body, 401, "Unauthorized")
    assert "items" not in body


@pytest.mark.parametrize(
    "scheme", [pytest.param("Bearer", id="Bearer"), pytest.param("bearer", id="lower-case")]
)
async def test_good_token_is_accepted(client: Client, scheme: str) -> None:
    resp = await client.get(f"{M}/nodes", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert resp.status == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
async def test_probes_are_open_without_a_token(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert await resp.text() == "ok"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/readyz/../apis/metrics.k8s.io/v1beta1/nodes", id="dot-dot"),
        pytest.param("/readyz/%2e%2e/apis/metrics.k8s.io/v1beta1/nodes", id="encoded-dot-dot"),
        pytest.param("/healthzapis/metrics.k8s.io/v1beta1/nodes", id="prefix"),
    ],
)
async def test_open_probe_paths_open_nothing_else(client: Client, path: str) -> None:
    resp = await client.get(URL(path, encoded=True))
    assert resp.status in (401, 404)
    assert "NodeMetricsList" not in await resp.text()


@pytest.mark.parametrize(
    ("scrapes", "status"),
    [
        pytest.param(0, 500, id="nothing-scraped"),
        pytest.param(1, 500, id="one-scrape"),
        pytest.param(2, 200, id="two-scrapes"),
    ],
)
async def test_readyz_waits_for_two_scrapes(
    make_client: MakeClient, scrapes: int, status: int
) -> None:
    client = await make_client(store=filled_store(scrapes))
    plain = await client.get("/readyz")
    assert plain.status == status
    verbose = await client.get("/readyz?verbose")
    assert verbose.status == status
    lines = (await verbose.text()).splitlines()
    if status == 500:
        assert "[-]metric-storage-ready failed: reason withheld" in lines
        assert "[-]metric-storage-ready failed" in await plain.text()
        assert lines[-1] == "readyz check failed"
    else:
        assert await plain.text() == "ok"
        assert lines == [
            "[+]ping ok",
            "[+]log ok",
            "[+]metric-storage-ready ok",
            "readyz check passed",
        ]


async def test_readyz_verbose_names_failed_nodes_with_cause(make_client: MakeClient) -> None:
    refused = (
        'Get "https://127.0.0.4:10250/metrics/resource": '
        "dial tcp 127.0.0.4:10250: connect: connection refused"
    )
    late = 'Get "https://127.0.0.9:10250/metrics/resource": context deadline exceeded'
    scraping = FakeScraping(failures={"node-e": ("timeout", late), "node-c": ("refused", refused)})
    client = await make_client(scraping=scraping)
    # To anyone: that nodes failed, not their addresses, ports or answers.
    anonymous = await client.get("/readyz?verbose")
    assert anonymous.status == 200
    assert (await anonymous.text()).splitlines() == [
        "[+]ping ok",
        "[+]log ok",
        "[+]metric-storage-ready ok",
        "[!]2 node(s) not scraped: ask with credentials to see why",
        "readyz check passed",
    ]
    wrong = await client.get("/readyz?verbose", headers={"Authorization": "Bearer nope"})
    assert "127.0.0" not in await wrong.text()
    resp = await client.get("/readyz?verbose", headers=AUTH)
    assert resp.status == 200
    assert (await resp.text()).splitlines() == [
        "[+]ping ok",
        "[+]log ok",
        "[+]metric-storage-ready ok",
        f"[!]scrape node/node-c: refused: {refused}",
        f"[!]scrape node/node-e: timeout: {late}",
        "readyz check passed",
    ]


@pytest.mark.parametrize(
    ("tick_age", "status"),
    [
        pytest.param(None, 200, id="no-tick-yet"),
        pytest.param(1.0, 200, id="recent-tick"),
        pytest.param(22.0, 200, id="within-one-and-a-half-resolutions"),
        pytest.param(23.0, 500, id="beyond-one-and-a-half-resolutions"),
    ],
)
async def test_livez_fails_when_collection_is_late(
    make_client: MakeClient, tick_age: float | None, status: int
) -> None:
    started = None if tick_age is None else time.time() - tick_age
    client = await make_client(scraping=FakeScraping(last_tick_start=started))
    resp = await client.get("/livez?verbose")
    assert resp.status == status
    text = await resp.text()
    if status == 500:
        assert "[-]metric-collection-timely failed" in text
    else:
        assert "[+]metric-collection-timely ok" in text


@pytest.mark.parametrize(
    "line",
    [
        'kubepulse_kubelet_request_total{success="true"} 1.0',
        'kubepulse_kubelet_request_total{success="false"} 1.0',
        'kubepulse_storage_points{type="node"} 3.0',
        'kubepulse_storage_points{type="container"} 3.0',
        'kubepulse_kubelet_request_duration_seconds_count{node="node-a"} 1.0',
        'kubepulse_kubelet_request_duration_seconds_bucket{le="0.025",node="node-a"} 1.0',
        "kubepulse_manager_tick_duration_seconds_count 1.0",
        'kubepulse_manager_tick_duration_seconds_bucket{le="13.5"} 1.0',
    ],
)
async def test_self_metrics_are_exposed(client: Client, line: str) -> None:
    resp = await client.get("/metrics", headers=AUTH)
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert line in (await resp.text()).splitlines()


async def test_self_metrics_show_last_request_per_node(client: Client) -> None:
    text = await (await client.get("/metrics", headers=AUTH)).text()
    stamps = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^kubepulse_kubelet_last_request_time_seconds\{node="([^"]+)"\} (\S+)$', text, re.M
        )
    }
    assert set(stamps) == {"node-a", "node-c"}
    assert all(abs(stamp - time.time()) < 60 for stamp in stamps.values())


# -- tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rows"),
    [
        pytest.param(
            f"{M}/nodes",
            [
                ["node-a", "500m", "1Mi", "15s"],
                ["node-b", "487558164n", "732212Ki", "15s"],
                ["node-d", "2", "1Gi", "30s"],
            ],
            id="nodes",
        ),
        pytest.param(
            f"{M}/pods",
            [["web-1", "350m", "3Mi", "12s"], [COREDNS, "9559563n", "22244Ki", "15s"]],
            id="pods-sum-containers",
        ),
        pytest.param(
            f"{M}/nodes/node-b", [["node-b", "487558164n", "732212Ki", "15s"]], id="one-node"
        ),
        pytest.param(
            f"{M}/namespaces/default/pods/web-1", [["web-1", "350m", "3Mi", "12s"]], id="one-pod"
        ),
        pytest.param(
            f"{M}/nodes?labelSelector={ZONE}%3Dzone-b",
            [["node-b", "487558164n", "732212Ki", "15s"]],
            id="selector",
        ),
    ],
)
@pytest.mark.parametrize(
    "accept",
    [
        pytest.param(TABLE_CONTENT_TYPE, id="table-only"),
        pytest.param(KUBECTL_GET_ACCEPT, id="kubectl-get"),
    ],
)
async def test_table_output(client: Client, path: str, rows: list[list[str]], accept: str) -> None:
    resp = await client.get(path, headers={**AUTH, "Accept": accept})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == TABLE_CONTENT_TYPE
    body = await resp.json(content_type=None)
    assert body["kind"] == "Table"
    assert body["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in body["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert [r["cells"] for r in body["rows"]] == rows
    for row, cells in zip(body["rows"], rows, strict=True):
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
        assert row["object"]["metadata"]["name"] == cells[0]


@pytest.mark.parametrize(
    ("include", "want"),
    [
        pytest.param("None", None, id="none"),
        pytest.param("Object", "NodeMetrics", id="object"),
        pytest.param("Metadata", "PartialObjectMetadata", id="metadata"),
    ],
)
async def test_table_include_object(client: Client, include: str, want: str | None) -> None:
    body = await get_json(
        client, f"{M}/nodes/node-a?includeObject={include}", headers={"Accept": TABLE_CONTENT_TYPE}
    )
    row = body["rows"][0]
    if want is None:
        assert "object" not in row
    elif want == "NodeMetrics":
        assert without_creation_times(row["object"]) == NODE_A
    else:
        assert row["object"]["kind"] == want


# -- discovery --------------------------------------------------------------------------

GROUP_VERSION = {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
METRICS_GROUP = {
    "name": "metrics.k8s.io",
    "versions": [GROUP_VERSION],
    "preferredVersion": GROUP_VERSION,
}


@pytest.mark.parametrize(
    ("path", "want"),
    [
        pytest.param(
            "/apis",
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": [METRICS_GROUP]},
            id="apis",
        ),
        pytest.param(
            "/apis/metrics.k8s.io",
            {"kind": "APIGroup", "apiVersion": "v1", **METRICS_GROUP},
            id="group",
        ),
        pytest.param(
            M,
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "metrics.k8s.io/v1beta1",
                "resources": [
                    {
                        "name": "nodes",
                        "singularName": "",
                        "namespaced": False,
                        "kind": "NodeMetrics",
                        "verbs": ["get", "list"],
                    },
                    {
                        "name": "pods",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "PodMetrics",
                        "verbs": ["get", "list"],
                    },
                ],
            },
            id="group-version",
        ),
    ],
)
@pytest.mark.parametrize(
    "accept",
    [
        pytest.param(None, id="no-accept"),
        pytest.param("application/json", id="json"),
        pytest.param(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
            id="v2beta1-only-gets-legacy",
        ),
    ],
)
async def test_discovery_documents(
    client: Client, path: str, want: dict[str, Any], accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    assert await get_json(client, path, headers=headers) == want


async def test_aggregated_discovery(client: Client) -> None:
    resp = await client.get("/apis", headers={**AUTH, "Accept": KUBECTL_DISCOVERY_ACCEPT})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == AGGREGATED
    body = await resp.json(content_type=None)
    assert body["kind"] == "APIGroupDiscoveryList"
    assert body["apiVersion"] == "apidiscovery.k8s.io/v2"
    [group] = body["items"]
    assert group["metadata"]["name"] == "metrics.k8s.io"
    [version] = group["versions"]
    assert version["version"] == "v1beta1"
    assert version["freshness"] == "Current"
    resources = {
        r["resource"]: (r["scope"], r["responseKind"], r["verbs"]) for r in version["resources"]
    }
    assert resources == {
        "nodes": (
            "Cluster",
            {"group": "metrics.k8s.io", "version": "v1beta1", "kind": "NodeMetrics"},
            ["get", "list"],
        ),
        "pods": (
            "Namespaced",
            {"group": "metrics.k8s.io", "version": "v1beta1", "kind": "PodMetrics"},
            ["get", "list"],
        ),
    }


async def test_aggregated_core_discovery(core_client: Client) -> None:
    resp = await core_client.get("/api", headers={**AUTH, "Accept": KUBECTL_DISCOVERY_ACCEPT})
    assert resp.headers["Content-Type"] == AGGREGATED
    body = await resp.json(content_type=None)
    [group] = body["items"]
    [version] = group["versions"]
    assert version["version"] == "v1"
    scopes = {r["resource"]: (r["scope"], r["responseKind"]["kind"]) for r in version["resources"]}
    assert scopes == {
        "namespaces": ("Cluster", "Namespace"),
        "nodes": ("Cluster", "Node"),
        "pods": ("Namespaced", "Pod"),
    }


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        pytest.param("/api", "APIVersions", id="api"),
        pytest.param("/api/v1", "APIResourceList", id="v1"),
    ],
)
async def test_legacy_core_discovery(core_client: Client, path: str, kind: str) -> None:
    body = await get_json(core_client, path)
    assert body["kind"] == kind
    if kind == "APIVersions":
        assert body["versions"] == ["v1"]
    else:
        assert body["groupVersion"] == "v1"
        assert {r["name"]: r["kind"] for r in body["resources"]} == {
            "namespaces": "Namespace",
            "nodes": "Node",
            "pods": "Pod",
        }


# -- core API ----------------------------------------------------------------------------


def without_type(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


@pytest.mark.parametrize(
    ("path", "kind", "want"),
    [
        pytest.param(
            "/api/v1/nodes", "NodeList", ["node-a", "node-b", "node-c", "node-d"], id="nodes"
        ),
        pytest.param(
            f"/api/v1/nodes?labelSelector={ZONE}%3Dzone-a",
            "NodeList",
            ["node-a", "node-c"],
            id="nodes-by-label",
        ),
        pytest.param(
            "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-b",
            "NodeList",
            ["node-b"],
            id="nodes-by-name",
        ),
        pytest.param(
            "/api/v1/pods",
            "PodList",
            ["default/web-1", "default/web-2", f"kube-system/{COREDNS}"],
            id="pods",
        ),
        pytest.param(
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-b",
            "PodList",
            ["default/web-1"],
            id="pods-on-node",
        ),
        pytest.param(
            "/api/v1/pods?labelSelector=app%3Dweb",
            "PodList",
            ["default/web-1", "default/web-2"],
            id="pods-by-label",
        ),
        pytest.param(
            "/api/v1/namespaces/default/pods",
            "PodList",
            ["default/web-1", "default/web-2"],
            id="pods-in-namespace",
        ),
        pytest.param(
            "/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DPending",
            "PodList",
            ["default/web-2"],
            id="pods-by-phase",
        ),
        pytest.param(
            "/api/v1/namespaces", "NamespaceList", ["default", "kube-system"], id="namespaces"
        ),
    ],
)
async def test_core_api_lists(core_client: Client, path: str, kind: str, want: list[str]) -> None:
    body = await get_json(core_client, path)
    assert body["kind"] == kind
    assert body["apiVersion"] == "v1"
    assert names(body) == want
    originals = {
        "/".join(filter(None, (o["metadata"].get("namespace"), o["metadata"]["name"]))): o
        for o in NODE_OBJECTS + POD_OBJECTS
    }
    for name, item in zip(want, body["items"], strict=True):
        assert "kind" not in item
        if name in originals:
            assert item == without_type(originals[name])


@pytest.mark.parametrize(
    ("path", "want"),
    [
        pytest.param("/api/v1/nodes/node-b", NODE_OBJECTS[1], id="node"),
        pytest.param(f"/api/v1/namespaces/kube-system/pods/{COREDNS}", POD_OBJECTS[0], id="pod"),
    ],
)
async def test_core_api_gets(core_client: Client, path: str, want: dict[str, Any]) -> None:
    assert await get_json(core_client, path) == want


async def test_core_api_namespace(core_client: Client) -> None:
    body = await get_json(core_client, "/api/v1/namespaces/kube-system")
    assert (body["kind"], body["metadata"]["name"], body["status"]["phase"]) == (
        "Namespace",
        "kube-system",
        "Active",
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("/api/v1/nodes/ghost", 'nodes "ghost" not found', id="node"),
        pytest.param(
            f"/api/v1/namespaces/default/pods/{COREDNS}",
            f'pods "{COREDNS}" not found',
            id="pod-in-other-namespace",
        ),
        pytest.param("/api/v1/namespaces/ghost", 'namespaces "ghost" not found', id="namespace"),
    ],
)
async def test_core_api_not_found(core_client: Client, path: str, message: str) -> None:
    assert_status(await get_json(core_client, path, 404), 404, "NotFound", message)


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        pytest.param(
            "/api/v1/nodes?fieldSelector=status.phase%3DReady", 400, "BadRequest", id="node-field"
        ),
        pytest.param("/api/v1/pods?labelSelector=%3Dweb", 400, "BadRequest", id="pod-label"),
        pytest.param("/api/v1/pods?watch=true", 405, "MethodNotAllowed", id="watch"),
    ],
)
async def test_core_api_refusals(core_client: Client, path: str, status: int, reason: str) -> None:
    assert_status(await get_json(core_client, path, status), status, reason)


async def test_core_api_table(core_client: Client) -> None:
    body = await get_json(core_client, "/api/v1/nodes", headers={"Accept": KUBECTL_GET_ACCEPT})
    assert body["kind"] == "Table"
    assert [r["cells"][:3] for r in body["rows"]] == [
        ["node-a", "Ready", "control-plane"],
        ["node-b", "Ready", "<none>"],
        ["node-c", "Ready", "<none>"],
        ["node-d", "Ready", "<none>"],
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/v1",
        "/api/v1/nodes",
        "/api/v1/pods",
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/pods/web-1",
    ],
)
async def test_core_api_is_absent_unless_asked_for(client: Client, path: str) -> None:
    assert_status(await get_json(client, path, 404), 404, "NotFound")


# -- content negotiation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "status", "kind"),
    [
        pytest.param("application/vnd.kubernetes.protobuf", 406, "Status", id="protobuf-only"),
        pytest.param(
            "application/vnd.kubernetes.protobuf;stream=watch", 406, "Status", id="protobuf-stream"
        ),
        pytest.param("application/yaml", 406, "Status", id="yaml"),
        pytest.param(
            "application/vnd.kubernetes.protobuf, application/json",
            200,
            "NodeMetricsList",
            id="kubectl",
        ),
        pytest.param("application/json", 200, "NodeMetricsList", id="json"),
        pytest.param("*/*", 200, "NodeMetricsList", id="anything"),
        pytest.param(KUBECTL_GET_ACCEPT, 200, "Table", id="kubectl-get"),
    ],
)
async def test_content_negotiation(client: Client, accept: str, status: int, kind: str) -> None:
    body = await get_json(client, f"{M}/nodes", status, headers={"Accept": accept})
    assert body["kind"] == kind
    if status == 406:
        assert_status(body, 406, "NotAcceptable")


# --- pod items are rendered once per scrape, and never served stale -----------------------


async def _pod_items(client: Client) -> dict[str, Any]:
    body = without_creation_times(await get_json(client, f"{M}/pods"))
    return {i["metadata"]["name"]: i for i in body["items"]}


async def test_a_new_scrape_of_a_node_changes_its_pods_items(make_client: MakeClient) -> None:
    store = filled_store()
    client = await make_client(store=store)
    before = await _pod_items(client)
    assert await _pod_items(client) == before  # served again from what was rendered
    # A third scrape of node-a: coredns used twice as much CPU in the last 15 s.
    coredns = before[COREDNS]["containers"][0]["usage"]["cpu"]
    node_a = NodeSample("node-a", T1 - 864_000, Usage(T1 + 15, 15_000_000_000, 1 << 20))
    container = ContainerSample("coredns", T1 - 86_400, Usage(T1 + 15, 143_393_445 * 3, 1 << 20))
    store.store(
        "node-a", node_a, (PodSample("kube-system", COREDNS, "", T1 - 86_400, (container,)),)
    )
    after = await _pod_items(client)
    assert after[COREDNS]["containers"][0]["usage"]["cpu"] != coredns
    assert after[COREDNS]["containers"][0]["usage"]["memory"] == "1Mi"
    assert after["web-1"] == before["web-1"]  # node-b was not scraped again


async def test_a_changed_pod_object_changes_its_item(make_client: MakeClient) -> None:
    pods = inventory()
    client = await make_client(pods_and_nodes=pods)
    assert (await _pod_items(client))["web-1"]["metadata"]["labels"] == {"app": "web"}
    relabelled = [
        pod_from_object({**o, "metadata": {**o["metadata"], "labels": {"app": "shop"}}})
        if o["metadata"]["name"] == "web-1"
        else pod_from_object(o)
        for o in POD_OBJECTS
    ]
    pods._pods = relabelled  # as a watch replaces the object
    assert (await _pod_items(client))["web-1"]["metadata"]["labels"] == {"app": "shop"}


async def test_a_forgotten_node_takes_its_pods_items_with_it(make_client: MakeClient) -> None:
    store = filled_store()
    client = await make_client(store=store)
    assert set(await _pod_items(client)) == {COREDNS, "web-1"}
    store.forget("node-b")
    assert set(await _pod_items(client)) == {COREDNS}


async def test_every_list_has_its_own_creation_time(make_client: MakeClient) -> None:
    client = await make_client()
    first = await get_json(client, f"{M}/pods")
    created = {i["metadata"]["creationTimestamp"] for i in first["items"]}
    assert len(created) == 1
    assert abs(parse_rfc3339(created.pop()) - time.time()) < 5


@pytest.mark.parametrize(
    "labels",
    [{}, {"app": "web"}, {"app": 'quote"and\\backslash', "ünï": "cödé"}],
    ids=["no labels", "labels", "escapes"],
)
def test_rendered_items_are_byte_for_byte_pod_metrics(labels: dict[str, str]) -> None:
    store = filled_store()
    pods = [
        pod_from_object({**o, "metadata": {**o["metadata"], "labels": labels}} if labels else o)
        for o in POD_OBJECTS
    ]
    rendered = RenderedPods(store)

    def rates_of(pod: Pod) -> PodRates | None:
        return store.pod(pod.node_name, pod.namespace, pod.name)

    created = "2026-11-26T04:30:00Z"
    ordered = sorted(pods, key=lambda p: (p.namespace, p.name))
    expected_items = [pod_metrics(p, r, created) for p in ordered if (r := rates_of(p)) is not None]
    expected = orjson.dumps(
        {
            "kind": "PodMetricsList",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {},
            "items": expected_items,
        }
    )
    assert b"".join(rendered.body(ordered, created, whole=True)) == expected
    # And again, from what was rendered.
    assert b"".join(rendered.body(ordered, created, whole=True)) == expected
