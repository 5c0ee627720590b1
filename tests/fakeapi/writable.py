"""The fake's writable resources: create, get, replace, patch and delete for ConfigMaps,
Pods and the apps/v1 workloads, their /scale subresource, and pods/{name}/log.

Every call here is authorized against the fake's grants (rbac.py) for the caller's own
user, and refused as kube-apiserver refuses it: 403 Forbidden, 404 NotFound, 409
AlreadyExists or Conflict (a stale resourceVersion), 422 Invalid, each a Status with the
apiserver's message. The apps/v1 workloads are reconciled at once, as if their controller
ran between two requests: status follows spec.replicas, generation counts spec changes.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from kubepulse.api.authn import USER_KEY, User
from kubepulse.api.responses import json_response, not_found
from tests.fakeapi import rbac

if TYPE_CHECKING:
    from tests.fakeapi.server import FakeKubeAPI

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Writable:
    resource: str
    kind: str
    group: str
    version: str

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def qualified(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


WRITABLE = {
    w.resource: w
    for w in (
        Writable("configmaps", "ConfigMap", "", "v1"),
        Writable("pods", "Pod", "", "v1"),
        Writable("deployments", "Deployment", "apps", "v1"),
        Writable("replicasets", "ReplicaSet", "apps", "v1"),
        Writable("statefulsets", "StatefulSet", "apps", "v1"),
        Writable("daemonsets", "DaemonSet", "apps", "v1"),
    )
}
SCALABLE = ("deployments", "replicasets", "statefulsets")
REPLICATED = SCALABLE
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
EXTENSION_AUTH = ("kube-system", "extension-apiserver-authentication")
OTHER_NAMESPACE = (
    "the namespace of the provided object does not match the namespace sent on the request"
)
UNKNOWN_PATCH = (
    "the body of the request was in an unknown format - accepted media types include: "
    + ", ".join(PATCH_TYPES)
)

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SUBDOMAIN_TEXT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def answer(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; for the maps a strategic merge patch touches, the same."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _name_problem(kind: str, name: str) -> str:
    if not name:
        return (
            f'{kind} "" is invalid: metadata.name: Required value: name or generateName is required'
        )
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        return (
            f'{kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": {_SUBDOMAIN_TEXT}'
        )
    return ""


def _spec_problem(w: Writable, obj: Mapping[str, Any]) -> str:
    name, spec = _meta(obj).get("name", ""), obj.get("spec") or {}
    if w.resource == "pods" and not spec.get("containers"):
        return f'Pod "{name}" is invalid: spec.containers: Required value'
    if w.resource in REPLICATED and "replicas" in spec:
        return _replicas_problem(f"{w.kind}.{w.group}", name, spec["replicas"])
    return ""


def _replicas_problem(qualified_kind: str, name: str, replicas: Any) -> str:
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0:
        return ""
    return (
        f'{qualified_kind} "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
        "must be greater than or equal to 0"
    )


def reconcile(resource: str, new: dict[str, Any], old: Mapping[str, Any] | None) -> None:
    """What the workload controllers would have done by the next read (the fake's put
    calls this for every write)."""
    w = WRITABLE.get(resource)
    if w is None or w.group != "apps":
        return
    meta = new.setdefault("metadata", {})
    old_meta = _meta(old or {})
    generation = int(old_meta.get("generation") or 0)
    if old is None or old.get("spec") != new.get("spec"):
        generation += 1
    meta["generation"] = generation
    spec = new.setdefault("spec", {})
    status: dict[str, Any] = {"observedGeneration": generation}
    if w.resource in REPLICATED:
        replicas = spec.setdefault("replicas", 1)
        status.update(replicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
        if w.resource == "deployments":
            status["updatedReplicas"] = replicas
    new["status"] = status


def _selector(obj: Mapping[str, Any]) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def scale_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a workload, as its /scale subresource answers."""
    meta = _meta(obj)
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", replicas),
            "selector": _selector(obj),
        },
    }


def _tail(text: str, tail_lines: str, limit_bytes: str) -> str:
    if tail_lines:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-int(tail_lines) :]) if int(tail_lines) > 0 else ""
    if limit_bytes:
        text = text.encode()[: int(limit_bytes)].decode(errors="ignore")
    return text


class Writes:
    """The handlers; `routes()` for the fake's application."""

    def __init__(self, fake: FakeKubeAPI) -> None:
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        routes: list[web.RouteDef] = []
        for w in WRITABLE.values():
            base = f"{w.prefix}/namespaces/{{namespace}}/{w.resource}"
            routes += [
                web.post(base, self._create(w)),
                web.put(base + "/{name}", self._replace(w)),
                web.patch(base + "/{name}", self._patch(w)),
                web.delete(base + "/{name}", self._delete(w)),
            ]
            if w.resource != "pods":  # the fake's pods are read by its older, open routes
                routes += [
                    web.get(f"{w.prefix}/{w.resource}", self._list(w)),
                    web.get(base, self._list(w)),
                    web.get(base + "/{name}", self._get(w)),
                ]
            if w.resource in SCALABLE:
                routes += [
                    web.get(base + "/{name}/scale", self._scale(w)),
                    web.put(base + "/{name}/scale", self._scale(w)),
                    web.patch(base + "/{name}/scale", self._scale(w)),
                ]
        routes.append(web.get("/api/v1/namespaces/{namespace}/pods/{name}/log", self._log))
        return routes

    # ----- authorization

    def _refusal(
        self, request: web.Request, w: Writable, verb: str, sub: str = ""
    ) -> web.Response | None:
        user: User = request[USER_KEY]
        namespace = request.match_info.get("namespace", "")
        name = request.match_info.get("name", "")
        if self.fake.grants.allows_user(
            user, verb, rbac.target(w.resource, w.group, sub), namespace
        ):
            return None
        message = rbac.forbidden_message(user, verb, w.resource, w.group, sub, namespace, name)
        details = (
            {"name": name, "group": w.group, "kind": w.resource}
            if name
            else {"group": w.group, "kind": w.resource}
        )
        return answer(403, "Forbidden", message, details)

    def _guarded(self, w: Writable, verb: str, handler: Handler, sub: str = "") -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            return self._refusal(request, w, verb, sub) or await handler(request)

        return guarded

    # ----- helpers

    def _current(self, w: Writable, request: web.Request) -> dict[str, Any] | None:
        return self.fake.get(
            w.resource, request.match_info["name"], request.match_info["namespace"]
        )

    def _missing(self, w: Writable, request: web.Request) -> web.Response:
        return not_found(w.resource, request.match_info["name"], w.group)

    def _conflict(self, w: Writable, name: str) -> web.Response:
        return answer(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {w.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            {"name": name, "group": w.group, "kind": w.resource},
        )

    def _store(
        self, w: Writable, new: dict[str, Any], old: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        new["kind"], new["apiVersion"] = w.kind, f"{w.group}/{w.version}" if w.group else w.version
        if old is not None and w.group == "apps":
            new["status"] = copy.deepcopy(old.get("status") or {})  # status is a subresource
        return self.fake.put(w.resource, new)

    async def _json_body(self, request: web.Request) -> Any:
        try:
            return await request.json(loads=orjson.loads)
        except ValueError as err:
            raise web.HTTPBadRequest(reason=f"the request body is not JSON: {err}") from err

    # ----- the verbs

    def _list(self, w: Writable) -> Handler:
        return self._guarded(w, "list", self.fake._collection(w.resource))

    def _get(self, w: Writable) -> Handler:
        item = self.fake._item(w.resource)

        async def get(request: web.Request) -> web.StreamResponse:
            key = (request.match_info["namespace"], request.match_info["name"])
            if (
                w.resource == "configmaps"
                and key == EXTENSION_AUTH
                and self._current(w, request) is None
            ):
                return await self.fake._configmap(request)  # readable as before: no grant asked
            return self._refusal(request, w, "get") or await item(request)

        return get

    def _create(self, w: Writable) -> Handler:
        async def create(request: web.Request) -> web.StreamResponse:
            if refused := self._refusal(request, w, "create"):
                return refused
            body = await self.fake._body(request, w.kind)
            meta = body.setdefault("metadata", {})
            namespace = request.match_info["namespace"]
            if meta.get("namespace", namespace) != namespace:
                return answer(
                    400,
                    "BadRequest",
                    OTHER_NAMESPACE,
                )
            meta["namespace"] = namespace
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            name = str(meta.get("name") or "")
            if problem := _name_problem(w.kind, name) or _spec_problem(w, body):
                return answer(
                    422, "Invalid", problem, {"name": name, "group": w.group, "kind": w.kind}
                )
            if self.fake.get(w.resource, name, namespace) is not None:
                return answer(
                    409,
                    "AlreadyExists",
                    f'{w.qualified} "{name}" already exists',
                    {"name": name, "group": w.group, "kind": w.resource},
                )
            for key in ("resourceVersion", "uid", "creationTimestamp"):
                meta.pop(key, None)
            if w.resource == "pods":
                body.setdefault("status", {"phase": "Pending"})
            stored = self._store(w, body, None)
            return web.Response(
                status=201, body=orjson.dumps(stored), content_type="application/json"
            )

        return create

    async def _write(
        self, w: Writable, request: web.Request, new: dict[str, Any], current: dict[str, Any]
    ) -> web.Response:
        """Replace current with new after the checks every update makes."""
        name = request.match_info["name"]
        meta = new.setdefault("metadata", {})
        if meta.get("name") != name:
            return answer(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on "
                f"the URL ({name})",
            )
        if (
            meta.get("namespace", request.match_info["namespace"])
            != request.match_info["namespace"]
        ):
            return answer(
                400,
                "BadRequest",
                OTHER_NAMESPACE,
            )
        sent = meta.get("resourceVersion")
        if sent and sent != _meta(current).get("resourceVersion"):
            return self._conflict(w, name)
        if problem := _spec_problem(w, new):
            return answer(422, "Invalid", problem, {"name": name, "group": w.group, "kind": w.kind})
        return json_response(self._store(w, new, current))

    def _replace(self, w: Writable) -> Handler:
        async def replace(request: web.Request) -> web.StreamResponse:
            if refused := self._refusal(request, w, "update"):
                return refused
            current = self._current(w, request)
            if current is None:
                return self._missing(w, request)
            body = await self.fake._body(request, w.kind)
            return await self._write(w, request, body, current)

        return replace

    def _patch(self, w: Writable) -> Handler:
        async def patch(request: web.Request) -> web.StreamResponse:
            if refused := self._refusal(request, w, "patch"):
                return refused
            if request.content_type not in PATCH_TYPES:
                return answer(415, "UnsupportedMediaType", UNKNOWN_PATCH)
            current = self._current(w, request)
            if current is None:
                return self._missing(w, request)
            changes = await self._json_body(request)
            return await self._write(w, request, merge_patch(current, changes), current)

        return patch

    def _delete(self, w: Writable) -> Handler:
        async def delete(request: web.Request) -> web.StreamResponse:
            if refused := self._refusal(request, w, "delete"):
                return refused
            current = self._current(w, request)
            if current is None:
                return self._missing(w, request)
            options = await self._json_body(request) if request.can_read_body else {}
            preconditions = options.get("preconditions") if isinstance(options, dict) else None
            wanted = (preconditions or {}).get("resourceVersion")
            if wanted and wanted != _meta(current).get("resourceVersion"):
                return self._conflict(w, request.match_info["name"])
            self.fake.delete(
                w.resource, request.match_info["name"], request.match_info["namespace"]
            )
            uid = _meta(current).get("uid", "")
            return answer(
                200,
                "",
                "",
                {
                    "name": request.match_info["name"],
                    "group": w.group,
                    "kind": w.resource,
                    "uid": uid,
                },
            )

        return delete

    def _scale(self, w: Writable) -> Handler:
        verbs = {"GET": "get", "PUT": "update", "PATCH": "patch"}

        async def scale(request: web.Request) -> web.StreamResponse:
            if refused := self._refusal(request, w, verbs[request.method], "scale"):
                return refused
            current = self._current(w, request)
            if current is None:
                return self._missing(w, request)
            if request.method == "GET":
                return json_response(scale_of(current))
            if request.method == "PUT":
                wanted = await self.fake._body(request, "Scale")
            else:
                wanted = merge_patch(scale_of(current), await self._json_body(request))
            name = request.match_info["name"]
            sent = _meta(wanted).get("resourceVersion")
            if sent and sent != _meta(current).get("resourceVersion"):
                return self._conflict(w, name)
            replicas = (wanted.get("spec") or {}).get("replicas")
            if problem := _replicas_problem("Scale.autoscaling", name, replicas):
                details = {"name": name, "group": "autoscaling", "kind": "Scale"}
                return answer(422, "Invalid", problem, details)
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = replicas
            return json_response(scale_of(self._store(w, new, current)))

        return scale

    async def _log(self, request: web.Request) -> web.StreamResponse:
        pods = WRITABLE["pods"]
        if refused := self._refusal(request, pods, "get", "log"):
            return refused
        pod = self._current(pods, request)
        if pod is None:
            return self._missing(pods, request)
        name = request.match_info["name"]
        containers = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container", "")
        if not container:
            if len(containers) != 1:
                return answer(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]",
                )
            container = containers[0]
        if container not in containers:
            return answer(400, "BadRequest", f"container {container} is not valid for pod {name}")
        tail, limit = request.query.get("tailLines", ""), request.query.get("limitBytes", "")
        if not (tail.lstrip("-").isdigit() or not tail) or not (limit.isdigit() or not limit):
            return answer(400, "BadRequest", "tailLines and limitBytes must be integers")
        text = self.fake.log(request.match_info["namespace"], name, container)
        return web.Response(text=_tail(text, tail, limit), content_type="text/plain")
