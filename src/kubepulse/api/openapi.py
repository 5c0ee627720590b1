"""OpenAPI v2 (/openapi/v2) and v3 (/openapi/v3 and one document per group version).

Both are made from openapi_models.MODELS and served as JSON; a client that accepts
protobuf only gets 406 like every other path (app.negotiate). `kubectl explain` reads
the v3 documents; kube-apiserver's aggregator fetches both from an APIService's
backend and merges them into its own, as it does metrics-server's.
The shapes follow kube-openapi: in v3, a reference with siblings is wrapped in allOf,
and /openapi/v3 lists each group version at a URL carrying its document's hash, which
clients may cache for good.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson
from aiohttp import web

from kubepulse import __version__
from kubepulse.api import metrics
from kubepulse.api.discovery import CORE_RESOURCES, METRICS_RESOURCES, ServedResource
from kubepulse.api.openapi_models import CORE, METRICS, MODELS, Model, Prop
from kubepulse.api.responses import json_response

TITLE = "kubepulse"
# group version path -> (API prefix, definition name prefix, resources)
GROUP_VERSIONS: dict[str, tuple[str, str, list[ServedResource]]] = {
    "api/v1": ("/api/v1", CORE, CORE_RESOURCES),
    f"apis/{metrics.GROUP_VERSION}": (metrics.PREFIX, METRICS, METRICS_RESOURCES),
}
IMMUTABLE = "public, immutable"


def _prop(prop: Prop, v3: bool) -> dict[str, Any]:
    if prop.ref:
        target = f"#/components/schemas/{prop.ref}" if v3 else f"#/definitions/{prop.ref}"
        # kube-openapi wraps a v3 reference in allOf, so that a description may sit beside it.
        one: dict[str, Any] = {"allOf": [{"$ref": target}]} if v3 else {"$ref": target}
    else:
        one = {"type": prop.type, **({"format": prop.format} if prop.format else {})}
    if prop.array:
        body: dict[str, Any] = {"type": "array", "items": one}
    elif prop.map:
        body = {"type": "object", "additionalProperties": one}
    else:
        body = dict(one)
    return {"description": prop.description, **body}


def _schema(model: Model, v3: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"description": model.description, "type": model.type}
    if model.format:
        body["format"] = model.format
    if model.properties:
        body["properties"] = {name: _prop(p, v3) for name, p in model.properties.items()}
    if model.required:
        body["required"] = list(model.required)
    if model.kind:
        group, version, kind = model.kind
        body["x-kubernetes-group-version-kind"] = [
            {"group": group, "version": version, "kind": kind}
        ]
    return body


def _reachable(roots: list[str]) -> list[str]:
    """The models these refer to, themselves included, in name order."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [p.ref for p in MODELS[name].properties.values() if p.ref]
    return sorted(seen)


def _roots(prefix: str) -> list[str]:
    return [n for n, m in MODELS.items() if n.startswith(prefix) and m.kind is not None]


def _paths(
    api_prefix: str, name_prefix: str, resources: list[ServedResource], v3: bool
) -> dict[str, Any]:
    """Read-only operations: list (and watch) and get of each resource."""
    paths: dict[str, Any] = {}
    group, version = (MODELS[_roots(name_prefix)[0]].kind or ("", "", ""))[:2]
    for resource, kind, namespaced, *_ in resources:
        base = (
            f"{api_prefix}/namespaces/{{namespace}}/{resource}"
            if namespaced
            else f"{api_prefix}/{resource}"
        )
        for path, action, returned in (
            (base, "list", f"{kind}List"),
            (f"{base}/{{name}}", "get", kind),
        ):
            ref = f"{name_prefix}{returned}"
            schema = {"$ref": f"#/components/schemas/{ref}" if v3 else f"#/definitions/{ref}"}
            ok: dict[str, Any] = {"description": "OK"}
            if v3:
                ok["content"] = {"application/json": {"schema": schema}}
            else:
                ok["schema"] = schema
            paths[path] = {
                "get": {
                    "description": f"{action} {kind}",
                    "operationId": f"{action}{kind}",
                    "responses": {"200": ok, "401": {"description": "Unauthorized"}},
                    "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": {
                        "group": group,
                        "version": version,
                        "kind": kind,
                    },
                }
            }
    return paths


def _info() -> dict[str, str]:
    return {"title": TITLE, "version": __version__}


@cache
def v2(core: bool) -> bytes:
    served = [gv for gv in GROUP_VERSIONS if core or gv != "api/v1"]
    roots = [r for gv in served for r in _roots(GROUP_VERSIONS[gv][1])]
    paths: dict[str, Any] = {}
    for gv in served:
        api_prefix, name_prefix, resources = GROUP_VERSIONS[gv]
        paths.update(_paths(api_prefix, name_prefix, resources, v3=False))
    return orjson.dumps(
        {
            "swagger": "2.0",
            "info": _info(),
            "paths": paths,
            "definitions": {n: _schema(MODELS[n], v3=False) for n in _reachable(roots)},
            "securityDefinitions": {
                "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}
            },
            "security": [{"BearerToken": []}],
        }
    )


@cache
def v3(group_version: str) -> bytes:
    api_prefix, name_prefix, resources = GROUP_VERSIONS[group_version]
    schemas = {n: _schema(MODELS[n], v3=True) for n in _reachable(_roots(name_prefix))}
    return orjson.dumps(
        {
            "openapi": "3.0.0",
            "info": _info(),
            "paths": _paths(api_prefix, name_prefix, resources, v3=True),
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}
                },
            },
        }
    )


def _hash(body: bytes) -> str:
    """kube-openapi's etag of a v3 document: its SHA-512, in upper-case hex."""
    return hashlib.sha512(body).hexdigest().upper()


class OpenAPI:
    def __init__(self, core: bool) -> None:
        self.served = [gv for gv in GROUP_VERSIONS if core or gv != "api/v1"]
        self.core = core

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/openapi/v2", self.v2),
            web.get("/openapi/v3", self.v3_root),
            web.get("/openapi/v3/{group_version:.+}", self.v3_document),
        ]

    async def v2(self, _request: web.Request) -> web.Response:
        return web.Response(body=v2(self.core), content_type="application/json")

    async def v3_root(self, _request: web.Request) -> web.Response:
        paths = {
            gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(v3(gv))}"}
            for gv in self.served
        }
        return json_response({"paths": paths})

    async def v3_document(self, request: web.Request) -> web.Response:
        group_version = request.match_info["group_version"].rstrip("/")
        if group_version not in self.served:
            raise web.HTTPNotFound()
        body = v3(group_version)
        headers = {"Etag": f'"{_hash(body)}"'}
        if request.query.get("hash") == _hash(body):
            headers["Cache-Control"] = IMMUTABLE
        return web.Response(body=body, content_type="application/json", headers=headers)
