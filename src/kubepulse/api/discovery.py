"""API discovery: /version, /api, /apis and each group version's resource list.

Both forms are served: the legacy documents (APIVersions, APIGroupList,
APIResourceList) and, when the client asks for it in Accept, aggregated discovery
(apidiscovery.k8s.io/v2 APIGroupDiscoveryList), which kubectl 1.30+ requests first.
"""

from __future__ import annotations

import platform
from typing import Any

from aiohttp import web

from kubepulse import __version__
from kubepulse.api import metrics
from kubepulse.api.responses import json_response

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

# (resource, kind, namespaced, singular, short names, categories)
ServedResource = tuple[str, str, bool, str, list[str], list[str]]
CORE_RESOURCES: list[ServedResource] = [
    ("namespaces", "Namespace", False, "namespace", ["ns"], []),
    ("nodes", "Node", False, "node", ["no"], []),
    ("pods", "Pod", True, "pod", ["po"], ["all"]),
]
METRICS_RESOURCES: list[ServedResource] = [
    ("nodes", "NodeMetrics", False, "", [], []),
    ("pods", "PodMetrics", True, "", [], []),
]


def wants_aggregated(request: web.Request) -> bool:
    return any(
        "as=APIGroupDiscoveryList" in part and "v=v2" in part and "v=v2beta1" not in part
        for part in request.headers.get("Accept", "").split(",")
    )


READ = ("get", "list")
READ_AND_WATCH = ("get", "list", "watch")


def _resource_list(
    group_version: str, resources: list[Any], verbs: tuple[str, ...] = READ
) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": name,
                "singularName": singular,
                "namespaced": namespaced,
                "kind": kind,
                "verbs": list(verbs),
                **({"shortNames": short} if short else {}),
                **({"categories": cats} if cats else {}),
            }
            for name, kind, namespaced, singular, short, cats in resources
        ],
    }


def _discovery_group(
    name: str, version: str, resources: list[Any], verbs: tuple[str, ...] = READ
) -> dict[str, Any]:
    group = name
    return {
        "metadata": {"name": name, "creationTimestamp": None},
        "versions": [
            {
                "version": version,
                "resources": [
                    {
                        "resource": res,
                        "responseKind": {"group": group, "version": version, "kind": kind},
                        "scope": "Namespaced" if namespaced else "Cluster",
                        "singularResource": singular or kind.lower(),
                        "verbs": list(verbs),
                        **({"shortNames": short} if short else {}),
                        **({"categories": cats} if cats else {}),
                    }
                    for res, kind, namespaced, singular, short, cats in resources
                ],
                "freshness": "Current",
            }
        ],
    }


def _aggregated(groups: list[dict[str, Any]]) -> web.Response:
    body = {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": groups,
    }
    return json_response(body, AGGREGATED)


class Discovery:
    def __init__(self, core: bool, core_watch: bool = False, metrics_watch: bool = False) -> None:
        self.core = core
        self.core_verbs = READ_AND_WATCH if core_watch else READ
        self.metrics_verbs = READ_AND_WATCH if metrics_watch else READ

    def routes(self) -> list[web.RouteDef]:
        routes = [
            web.get("/version", self.version),
            web.get("/apis", self.apis),
            web.get(f"/apis/{metrics.GROUP}", self.metrics_group),
            web.get(metrics.PREFIX, self.metrics_resources),
        ]
        if self.core:
            routes += [web.get("/api", self.api), web.get("/api/v1", self.core_resources)]
        return routes

    async def version(self, _request: web.Request) -> web.Response:
        machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(
            platform.machine(), platform.machine()
        )
        return json_response(
            {
                "major": "1",
                "minor": "32",
                "gitVersion": f"v1.32.0+kubepulse-{__version__}",
                "gitCommit": "",
                "gitTreeState": "clean",
                "buildDate": "",
                "goVersion": f"python{platform.python_version()}",
                "compiler": "cpython",
                "platform": f"linux/{machine}",
            }
        )

    async def api(self, request: web.Request) -> web.Response:
        if wants_aggregated(request):
            return _aggregated([_discovery_group("", "v1", CORE_RESOURCES, self.core_verbs)])
        host = request.host
        return json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        )

    async def apis(self, request: web.Request) -> web.Response:
        if wants_aggregated(request):
            return _aggregated(
                [
                    _discovery_group(
                        metrics.GROUP, metrics.VERSION, METRICS_RESOURCES, self.metrics_verbs
                    )
                ]
            )
        return json_response(
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group()]}
        )

    @staticmethod
    def _group() -> dict[str, Any]:
        version = {"groupVersion": metrics.GROUP_VERSION, "version": metrics.VERSION}
        return {"name": metrics.GROUP, "versions": [version], "preferredVersion": version}

    async def metrics_group(self, _request: web.Request) -> web.Response:
        return json_response({"kind": "APIGroup", "apiVersion": "v1", **self._group()})

    async def metrics_resources(self, _request: web.Request) -> web.Response:
        return json_response(
            _resource_list(metrics.GROUP_VERSION, METRICS_RESOURCES, self.metrics_verbs)
        )

    async def core_resources(self, _request: web.Request) -> web.Response:
        return json_response(_resource_list("v1", CORE_RESOURCES, self.core_verbs))
