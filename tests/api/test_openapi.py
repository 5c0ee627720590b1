"""The OpenAPI documents: both versions made from one description, every reference
resolved, each kind marked with its group, version and kind."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import AUTH, MakeClient

CORE_KINDS = {"Node", "Pod", "Namespace", "NodeList", "PodList", "NamespaceList"}
METRICS_KINDS = {"NodeMetrics", "PodMetrics", "NodeMetricsList", "PodMetricsList"}


def refs(doc: Any) -> set[str]:
    """Every $ref in a document."""
    if isinstance(doc, dict):
        found = {doc["$ref"]} if "$ref" in doc else set()
        return found.union(*(refs(v) for v in doc.values()))
    if isinstance(doc, list):
        return set().union(*(refs(v) for v in doc))
    return set()


def kinds(schemas: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        gvk["kind"]: (gvk["group"], gvk["version"])
        for schema in schemas.values()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }


async def get_json(api: TestClient[Any, Any], path: str) -> Any:
    response = await api.get(path, headers={**AUTH, "Accept": "application/json"})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_v3_lists_each_group_version_and_each_document_resolves(
    core_client: TestClient[Any, Any],
) -> None:
    root = await get_json(core_client, "/openapi/v3")
    assert sorted(root["paths"]) == ["api/v1", "apis/metrics.k8s.io/v1beta1"]
    expected = {"api/v1": CORE_KINDS, "apis/metrics.k8s.io/v1beta1": METRICS_KINDS}
    for group_version, entry in root["paths"].items():
        url = entry["serverRelativeURL"]
        assert re.fullmatch(rf"/openapi/v3/{group_version}\?hash=[0-9A-F]{{128}}", url)
        response = await core_client.get(url, headers=AUTH)
        assert response.headers["Cache-Control"] == "public, immutable"
        doc = await response.json()
        schemas = doc["components"]["schemas"]
        assert set(kinds(schemas)) == expected[group_version]
        for ref in refs(doc):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_v2_holds_every_kind_served(core_client: TestClient[Any, Any]) -> None:
    doc = await get_json(core_client, "/openapi/v2")
    assert doc["swagger"] == "2.0"
    found = kinds(doc["definitions"])
    assert set(found) == CORE_KINDS | METRICS_KINDS
    assert found["NodeMetrics"] == ("metrics.k8s.io", "v1beta1")
    assert found["Pod"] == ("", "v1")
    for ref in refs(doc):
        assert ref.removeprefix("#/definitions/") in doc["definitions"], ref
    pod = doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert pod["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}


async def test_the_metrics_server_describes_only_metrics_k8s_io(
    make_client: MakeClient,
) -> None:
    server = await make_client()  # kubepulse server: no core API
    root = await get_json(server, "/openapi/v3")
    assert list(root["paths"]) == ["apis/metrics.k8s.io/v1beta1"]
    assert (await server.get("/openapi/v3/api/v1", headers=AUTH)).status == 404
    doc = await get_json(server, "/openapi/v2")
    assert set(kinds(doc["definitions"])) == METRICS_KINDS
    assert "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}" in doc["paths"]


async def test_a_protobuf_only_client_gets_406(core_client: TestClient[Any, Any]) -> None:
    protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    response = await core_client.get("/openapi/v2", headers={**AUTH, "Accept": protobuf})
    assert response.status == 406
    assert (await response.json())["reason"] == "NotAcceptable"


async def test_openapi_needs_credentials(core_client: TestClient[Any, Any]) -> None:
    assert (await core_client.get("/openapi/v3")).status == 401
