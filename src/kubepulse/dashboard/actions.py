"""Kubernetes mode's actions, each a call to the API server with the user's own token:

    GET    api/can?apiVersion=&kind=&namespace=[&name=]   what the user may do (SSAR)
    GET    api/workload?namespace=&name=                  a pod's containers and controller
    POST   api/create      {"yaml": text, "namespace": default}   one or many objects
    GET    api/yaml?apiVersion=&kind=&namespace=&name=    the object as YAML
    PUT    api/yaml?...    {"yaml": text}                 replace it (resourceVersion kept)
    DELETE api/object?...                                 delete it (kubectl's background)
    GET    api/scale?...                                  {"replicas": n} from its /scale
    POST   api/scale?...   {"replicas": n}                set them through /scale
    POST   api/restart?... {}                             kubectl rollout restart
    GET    api/logs?namespace=&name=&container=&tailLines=   plain text

The unsafe ones need the session's CSRF token (the auth middleware checks it). What the
API refuses comes back with its code and its own message (cluster.failure); a token the
API no longer accepts ends the session (401, the page signs in again).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from kubepulse.dashboard import yamltext
from kubepulse.dashboard.answers import error_response, explain, failure
from kubepulse.dashboard.sessions import SESSION_KEY, Session
from kubepulse.kube.client import STRATEGIC_MERGE_PATCH, ApiError, KubeClient, Unreachable
from kubepulse.kube.discovery import APIResource, Kinds, UnknownKind
from kubepulse.kube.user_clients import Question, UserClients, may_all

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# kubectl rollout restart's kinds (kubectl/pkg/polymorphichelpers/objectrestarter.go).
RESTARTABLE = frozenset({("apps", "Deployment"), ("apps", "DaemonSet"), ("apps", "StatefulSet")})
DEFAULT_TAIL, MAX_TAIL = 100, 10_000
LOG_BYTES = 2 * 1024 * 1024
"""limitBytes asked of the API: a log page, not a log file."""
MAX_BODY = yamltext.MAX_BYTES + 64 * 1024
"""The largest request body an action takes: the YAML and its JSON wrapping."""

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SIGNED_OUT = "the cluster no longer accepts your token: sign in again"


class BadInput(Exception):
    """A request the dashboard answers 400 without asking the API."""


@dataclass(frozen=True, slots=True)
class Target:
    api_version: str
    kind: str
    namespace: str
    name: str


def _namespace(value: str) -> str:
    """A namespace is a DNS-1123 label (apimachinery's ValidateNamespaceName)."""
    if value and (len(value) > 63 or not _LABEL.fullmatch(value)):
        raise BadInput(f'"{value}" is not a namespace name')
    return value


def _name(value: str) -> str:
    """Anything the API could name an object by in a path (IsValidPathSegmentName)."""
    if not value:
        raise BadInput("name is missing")
    if len(value) > 253 or value in (".", "..") or any(c in value for c in "/%"):
        raise BadInput(f'"{value}" is not an object name')
    if not value.isprintable():
        raise BadInput("an object name has no control characters")
    return value


def _target(request: web.Request, named: bool = True) -> Target:
    q = request.query
    name = q.get("name", "")
    return Target(
        q.get("apiVersion", ""),
        q.get("kind", ""),
        _namespace(q.get("namespace", "")),
        _name(name) if named or name else "",
    )


async def _body(request: web.Request) -> Mapping[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadInput("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadInput("the request body must be a JSON object")
    return body


def _text(body: Mapping[str, Any]) -> str:
    text = body.get("yaml")
    if not isinstance(text, str):
        raise BadInput('the body needs "yaml": the YAML text')
    return text


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with controller: true (metav1.GetControllerOf)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if isinstance(r, dict) and r.get("controller") is True), None)


def _described(ref: Mapping[str, Any], namespace: str) -> dict[str, str]:
    return {
        "apiVersion": str(ref.get("apiVersion", "")),
        "kind": str(ref.get("kind", "")),
        "name": str(ref.get("name", "")),
        "namespace": namespace,
    }


class ActionHandlers:
    def __init__(
        self,
        calls: UserClients,
        end_session: Callable[[Session], None],
        clock: Callable[[], float],
        kinds: Kinds | None = None,
    ) -> None:
        self.calls, self.end_session, self.clock = calls, end_session, clock
        self.kinds = kinds or Kinds()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/can", self._answering(self.can)),
            web.get("/api/workload", self._answering(self.workload)),
            web.post("/api/create", self._answering(self.create)),
            web.get("/api/yaml", self._answering(self.get_yaml)),
            web.put("/api/yaml", self._answering(self.put_yaml)),
            web.delete("/api/object", self._answering(self.delete)),
            web.get("/api/scale", self._answering(self.replicas)),
            web.post("/api/scale", self._answering(self.scale)),
            web.post("/api/restart", self._answering(self.restart)),
            web.get("/api/logs", self._answering(self.logs)),
        ]

    def _answering(self, handler: Handler) -> Handler:
        """Every failure as {"error": why} with its code; never a 500 or a traceback."""

        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except (BadInput, UnknownKind, yamltext.ManifestError) as err:
                return error_response(400, str(err))
            except web.HTTPRequestEntityTooLarge:
                return error_response(413, f"the request is larger than {MAX_BODY // 1024} KiB")
            except (ApiError, Unreachable) as err:
                if isinstance(err, ApiError) and err.code == 401:
                    self.end_session(request[SESSION_KEY])
                    return error_response(401, _SIGNED_OUT)
                return failure(err)

        return answer

    def _client(self, request: web.Request) -> KubeClient:
        token = request[SESSION_KEY].token
        if not token:  # a session from sign-in without a cluster: cannot act for anyone
            raise ApiError(401, "Unauthorized", _SIGNED_OUT)
        return self.calls.as_user(token)

    async def _resource(self, client: KubeClient, target: Target) -> tuple[APIResource, str]:
        """The resource of target's kind and the namespace its path takes."""
        resource = await self.kinds.resource(client, target.api_version, target.kind)
        if resource.namespaced and not target.namespace:
            raise BadInput(f"a {resource.kind} lives in a namespace: namespace is missing")
        return resource, target.namespace if resource.namespaced else ""

    # ----- reading

    async def can(self, request: web.Request) -> web.StreamResponse:
        target = _target(request, named=False)
        client = self._client(request)
        res, ns = await self._resource(client, target)
        name = target.name
        questions = {"create": Question("create", res.name, res.group, namespace=ns)}
        if name:
            for verb in ("get", "update", "delete"):
                questions[verb] = Question(verb, res.name, res.group, "", ns, name)
            if (res.group, res.name) == ("", "pods"):
                questions["logs"] = Question("get", "pods", "", "log", ns, name)
            if "scale" in res.subresources:
                questions["scale"] = Question("update", res.name, res.group, "scale", ns, name)
            if (res.group, res.kind) in RESTARTABLE:
                questions["restart"] = Question("patch", res.name, res.group, "", ns, name)
        answers = dict(zip(questions, await may_all(client, list(questions.values())), strict=True))
        actions = {k: v for k, v in answers.items() if k not in ("get", "update")}
        if name:
            actions["edit"] = answers["get"] and answers["update"]
        return _json({"actions": actions, "resource": res.name, "namespaced": res.namespaced})

    async def workload(self, request: web.Request) -> web.StreamResponse:
        """The pod's container names (for logs) and what controls it: a ReplicaSet's
        Deployment when the user may read the ReplicaSet, as `kubectl describe` leads."""
        ns, name = (
            _namespace(request.query.get("namespace", "")),
            _name(request.query.get("name", "")),
        )
        client = self._client(request)
        pod = await client.get(
            f"/api/v1/namespaces/{quote(ns, safe='')}/pods/{quote(name, safe='')}"
        )
        spec = pod.get("spec") or {}
        containers = [
            c["name"]
            for key in ("containers", "initContainers", "ephemeralContainers")
            for c in spec.get(key) or []
            if isinstance(c, dict) and isinstance(c.get("name"), str)
        ]
        return _json({"containers": containers, "owner": await self._controller(client, pod, ns)})

    async def _controller(
        self, client: KubeClient, pod: Mapping[str, Any], ns: str
    ) -> dict[str, str] | None:
        ref = controller_of(pod)
        if ref is None:
            return None
        owner = _described(ref, ns)
        if (owner["apiVersion"], owner["kind"]) != ("apps/v1", "ReplicaSet"):
            return owner
        path = f"/apis/apps/v1/namespaces/{quote(ns, safe='')}/replicasets/"
        try:
            replicaset = await client.get(path + quote(owner["name"], safe=""))
        except ApiError as err:
            if err.code in (403, 404):
                return owner
            raise
        parent = controller_of(replicaset)
        if parent is not None and parent.get("kind") == "Deployment":
            return _described(parent, ns)
        return owner

    async def get_yaml(self, request: web.Request) -> web.StreamResponse:
        target = _target(request)
        client = self._client(request)
        res, ns = await self._resource(client, target)
        obj = await client.get(res.path(ns, target.name))
        return _json({"yaml": yamltext.to_yaml(obj), "resourceVersion": _version(obj)})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        ns, name = _namespace(q.get("namespace", "")), _name(q.get("name", ""))
        container = q.get("container", "")
        if container:
            _name(container)
        tail_text = q.get("tailLines", str(DEFAULT_TAIL))
        if not tail_text.isdigit() or not 1 <= int(tail_text) <= MAX_TAIL:
            raise BadInput(f"tailLines must be a whole number from 1 to {MAX_TAIL}")
        client = self._client(request)
        path = f"/api/v1/namespaces/{quote(ns, safe='')}/pods/{quote(name, safe='')}/log"
        params = {"container": container, "tailLines": tail_text, "limitBytes": str(LOG_BYTES)}
        text = await client.get_text(path, params)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    # ----- changing

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        default = body.get("namespace") or "default"
        if not isinstance(default, str):
            raise BadInput("namespace must be a string")
        objects = yamltext.read_objects(_text(body))
        _namespace(default)
        client = self._client(request)
        results = [await self._create_one(client, obj, default) for obj in objects]
        failed = [r for r in results if not r["ok"]]
        if not failed:
            return _json({"results": results}, 201)
        first = failed[0]
        return error_response(first["code"], f"{_what(first)}: {first['error']}", results=results)

    async def _create_one(
        self, client: KubeClient, obj: dict[str, Any], default: str
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        shown = {"kind": obj["kind"], "name": meta.get("name") or meta.get("generateName")}
        try:
            res = await self.kinds.resource(client, obj["apiVersion"], obj["kind"])
            ns = (meta.get("namespace") or default) if res.namespaced else ""
            if res.namespaced:
                obj = {**obj, "metadata": {**meta, "namespace": ns}}
            created = await client.post(res.path(ns), obj)
        except UnknownKind as err:
            return {**shown, "ok": False, "code": 400, "error": str(err)}
        except (ApiError, Unreachable) as err:
            if isinstance(err, ApiError) and err.code == 401:
                raise
            code, message, _ = explain(err)
            return {**shown, "ok": False, "code": code, "error": message}
        made = created.get("metadata") or {}
        return {**shown, "ok": True, "name": made.get("name", shown["name"]), "namespace": ns}

    async def put_yaml(self, request: web.Request) -> web.StreamResponse:
        target = _target(request)
        obj = yamltext.read_object(_text(await _body(request)))
        client = self._client(request)
        res, ns = await self._resource(client, target)
        meta = obj["metadata"]
        named = (obj["apiVersion"], obj["kind"], meta.get("name"), meta.get("namespace") or ns)
        if named != (res.api_version, res.kind, target.name, ns):
            raise BadInput(
                f"this editor changes {res.kind} {target.name}; the YAML names "
                f"{obj['kind']} {meta.get('name')}: change it back, or create the new one"
            )
        if res.namespaced:
            obj["metadata"] = {**meta, "namespace": ns}
        updated = await client.put(res.path(ns, target.name), obj)
        return _json({"yaml": yamltext.to_yaml(updated), "resourceVersion": _version(updated)})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        target = _target(request)
        client = self._client(request)
        res, ns = await self._resource(client, target)
        # kubectl delete's default cascade: the API deletes dependents in the background.
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        await client.delete(res.path(ns, target.name), options)
        return _json({"deleted": {"kind": res.kind, "namespace": ns, "name": target.name}})

    async def _scale_path(self, request: web.Request) -> tuple[KubeClient, str]:
        target = _target(request)
        client = self._client(request)
        res, ns = await self._resource(client, target)
        if "scale" not in res.subresources:
            raise BadInput(f"a {res.kind} has no scale subresource: it cannot be scaled")
        return client, res.path(ns, target.name, "scale")

    async def replicas(self, request: web.Request) -> web.StreamResponse:
        client, path = await self._scale_path(request)
        scale = await client.get(path)
        return _json({"replicas": (scale.get("spec") or {}).get("replicas", 0)})

    async def scale(self, request: web.Request) -> web.StreamResponse:
        replicas = (await _body(request)).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise BadInput("replicas must be a whole number")
        client, path = await self._scale_path(request)
        # Read, then write back with its resourceVersion: a change in between is a 409.
        scale = await client.get(path)
        scale.setdefault("spec", {})["replicas"] = replicas
        updated = await client.put(path, scale)
        return _json({"replicas": (updated.get("spec") or {}).get("replicas")})

    async def restart(self, request: web.Request) -> web.StreamResponse:
        target = _target(request)
        client = self._client(request)
        res, ns = await self._resource(client, target)
        if (res.group, res.kind) not in RESTARTABLE:
            raise BadInput("only Deployments, DaemonSets and StatefulSets can be restarted")
        # What kubectl rollout restart patches: a new pod template, so the controller
        # replaces every pod; the time is RFC 3339, as kubectl writes it.
        stamp = dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        await client.patch(res.path(ns, target.name), patch, STRATEGIC_MERGE_PATCH)
        return _json({"restartedAt": stamp})


def _what(shown: Mapping[str, Any]) -> str:
    return f"{shown['kind']} {shown['name']}"


def _version(obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return str((meta or {}).get("resourceVersion", ""))
