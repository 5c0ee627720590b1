"""A fake kube-apiserver: real TLS, real HTTP, the v1.32 wire format, in its own thread.

It keeps one resourceVersion counter for everything (as etcd's revision is), a bounded
history of changes for watches, and answers a watch from a compacted resourceVersion with
an ERROR event holding a 410 Expired Status, as the watch cache does
(k8s.io/apiserver/pkg/storage/cacher: "too old resource version"). Tests change objects
from any thread through the Python API; watchers are woken in the server's own loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import copy
import json
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web
from cryptography import x509

from kubepulse import pki, tlsauth
from kubepulse.api import core, tables
from kubepulse.api.app import authentication, errors_as_status, negotiate
from kubepulse.api.authn import USER_KEY, Authenticator, User
from kubepulse.api.discovery import AGGREGATED, wants_aggregated
from kubepulse.api.impersonation import impersonation
from kubepulse.api.responses import json_response, not_found
from kubepulse.api.selectors import parse_field_selector, parse_label_selector
from kubepulse.api.status import status
from kubepulse.cli.up import kubeconfig
from kubepulse.kube.kubeconfig import Credentials
from tests.fakeapi import objects, protobuf, rbac, writable

CSR_GROUP = "certificates.k8s.io"
CSR_PREFIX = f"/apis/{CSR_GROUP}/v1/certificatesigningrequests"

Fields = Callable[[Mapping[str, Any]], dict[str, str]]


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    namespaced: bool
    group: str
    fields: Fields
    supported_fields: tuple[str, ...]


def _csr_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    return {
        "metadata.name": (obj.get("metadata") or {}).get("name", ""),
        "spec.signerName": (obj.get("spec") or {}).get("signerName", ""),
    }


# Field selectors each resource accepts, as registered by kube-apiserver's strategies.
KINDS = {
    "nodes": Kind("Node", "v1", False, "", core._meta_fields, core._META_FIELDS),
    "pods": Kind("Pod", "v1", True, "", core._pod_fields, core._POD_FIELDS),
    "certificatesigningrequests": Kind(
        "CertificateSigningRequest",
        f"{CSR_GROUP}/v1",
        False,
        CSR_GROUP,
        _csr_fields,
        ("metadata.name", "spec.signerName"),
    ),
    **{
        w.resource: Kind(
            w.kind,
            f"{w.group}/{w.version}",
            True,
            w.group,
            core._meta_fields,
            core._META_FIELDS,
        )
        for w in writable.WRITABLE.values()
        if w.group
    },
    "configmaps": Kind("ConfigMap", "v1", True, "", core._meta_fields, core._META_FIELDS),
}

_CSR_COLUMNS = [
    tables.column("Name", "Name must be unique within a namespace.", fmt="name"),
    tables.column("Age", "CreationTimestamp is a timestamp representing the server time."),
    tables.column("SignerName", "Only kubernetes.io signers are recognised."),
    tables.column("Requestor", "Name of the user that created the request."),
    tables.column("RequestedDuration", "Duration the requestor asked for."),
    tables.column("Condition", "The state of the request."),
]
TABLES: dict[str, tuple[list[dict[str, Any]], Callable[[Mapping[str, Any], float], list[Any]]]] = {
    "nodes": (core._NODE_COLUMNS, core._node_row),
    "pods": (core._POD_COLUMNS, core._pod_row),
    "certificatesigningrequests": (_CSR_COLUMNS, objects.csr_row),
    "deployments": (objects.DEPLOYMENT_COLUMNS, objects.deployment_row),
    "configmaps": (objects.CONFIGMAP_COLUMNS, objects.configmap_row),
}


def status_answer(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body = status(code, message, details)
    body["reason"] = reason
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


@dataclass(frozen=True)
class Change:
    rv: int
    resource: str
    type: str  # ADDED, MODIFIED or DELETED
    obj: Mapping[str, Any]  # the object after the change (for DELETED: as it was deleted)
    old: Mapping[str, Any] | None


_BREAK = "break"


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    matches: Callable[[Mapping[str, Any]], bool]
    bookmarks: bool
    wake: asyncio.Event
    # Filled under the fake's lock, so that a change is queued in the same step that
    # bumps the resourceVersion and a bookmark never overtakes an undelivered change.
    pending: collections.deque[Change | int | str] = field(default_factory=collections.deque)


class FakeKubeAPI:
    """Start with `with FakeKubeAPI() as fake:`; `fake.url`, `fake.write_kubeconfig(path)`."""

    def __init__(self, *, history: int = 1000, bookmark_interval: float = 60.0) -> None:
        self.ca = pki.new_ca("kubernetes")
        self.front_proxy_ca = pki.new_ca("front-proxy-ca")
        self.admin_token = secrets.token_hex(16)
        self.bookmark_interval = bookmark_interval
        self.token_reviews: list[dict[str, Any]] = []
        self.access_reviews: list[dict[str, Any]] = []
        self.self_access_reviews: list[dict[str, Any]] = []
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self._users = {
            self.admin_token: User("kubernetes-admin", "", ("kubeadm:cluster-admins",)),
        }
        self.grants = rbac.Grants()
        # Every request as (method, path with query, Authorization header), in order.
        self.calls: list[tuple[str, str, str]] = []
        self._logs: dict[tuple[str, str, str], str] = {}
        self._authn = Authenticator(self._users, [self.ca.cert])
        self._lock = threading.Lock()
        self._rv = 100
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in KINDS}
        self._history: collections.deque[Change] = collections.deque()
        self._history_size = history
        self._compacted = 0
        self._watchers: set[Watcher] = set()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"https://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-kube-apiserver", daemon=True)

    # ----- running

    def start(self) -> FakeKubeAPI:
        self._thread.start()
        if not self._started.wait(20):
            raise RuntimeError("the fake kube-apiserver did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.break_watches()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(20)

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ssl_context(self) -> ssl.SSLContext:
        serving = pki.issue(
            self.ca,
            "kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ips=[ip_address("127.0.0.1")],
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            serving.write(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
            ctx.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
        # Ask for client certificates signed by the cluster CA. kube-apiserver would answer
        # a stranger's certificate with a 401 Status; Python's ssl cannot (no verify
        # callback, see kubepulse.tlsauth), so here its handshake fails.
        tlsauth.request_client_certificates(ctx, self._authn.client_authorities_for_tls)
        return ctx

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self._app(), handle_signals=False, shutdown_timeout=1.0)
        self._loop.run_until_complete(runner.setup())
        self._sock.listen(128)
        site = web.SockSite(runner, self._sock, ssl_context=self._ssl_context())
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def _app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                self._record_call,
                errors_as_status,
                authentication(self._authn),
                impersonation(rbac.GrantsAuthorizer(self.grants)),
                negotiate,
            ]
        )
        get, post, put = web.get, web.post, web.put
        app.add_routes(
            [
                get("/healthz", self._ok),
                get("/version", self._version),
                get("/api", self._api),
                get("/api/v1", self._resources("v1")),
                get("/apis", self._apis),
                get("/apis/{group}", self._group),
                get("/apis/{group}/{version}", self._group_version),
                get("/api/v1/nodes", self._collection("nodes")),
                get("/api/v1/nodes/{name}", self._item("nodes")),
                get("/api/v1/pods", self._collection("pods")),
                get("/api/v1/namespaces/{namespace}/pods", self._collection("pods")),
                get("/api/v1/namespaces/{namespace}/pods/{name}", self._item("pods")),
                post("/apis/authentication.k8s.io/v1/tokenreviews", self._token_review),
                post("/apis/authorization.k8s.io/v1/subjectaccessreviews", self._access_review),
                post(
                    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                    self._self_access_review,
                ),
                get(CSR_PREFIX, self._collection("certificatesigningrequests")),
                post(CSR_PREFIX, self._create_csr),
                get(CSR_PREFIX + "/{name}", self._item("certificatesigningrequests")),
                put(CSR_PREFIX + "/{name}/approval", self._approve_csr),
                *writable.Writes(self).routes(),
            ]
        )
        return app

    @web.middleware
    async def _record_call(
        self, request: web.Request, handler: writable.Handler
    ) -> web.StreamResponse:
        self.calls.append(
            (request.method, request.path_qs, request.headers.get("Authorization", ""))
        )
        return await handler(request)

    # ----- the Python API tests use

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def credentials(self, token: str | None = None) -> Credentials:
        return Credentials(self.url, ca_pem=self.ca.cert_pem(), token=token or self.admin_token)

    def client_certificate(self, user: str, groups: tuple[str, ...] = ()) -> pki.KeyPair:
        """A client certificate from the fake's CA: CN is the user, O the groups."""
        return pki.issue(self.ca, user, organizations=list(groups), client=True)

    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, client: pki.KeyPair | None = None
    ) -> Path:
        """A kubeconfig for kubectl and kubepulse: the CA, and a token or a certificate."""
        text = kubeconfig(self.url, self.ca.cert_pem(), token or self.admin_token)
        if client is not None:
            doc = yaml.safe_load(text)
            doc["users"][0]["user"] = {
                "client-certificate-data": base64.b64encode(client.cert_pem()).decode(),
                "client-key-data": base64.b64encode(client.key_pem()).decode(),
            }
            text = yaml.safe_dump(doc, sort_keys=False)
        path.write_text(text)
        path.chmod(0o600)
        return path

    def add_token(self, token: str, user: str, groups: tuple[str, ...] = (), uid: str = "") -> None:
        """A bearer token the fake accepts and its TokenReviews vouch for."""
        self._users[token] = User(user, uid, groups)

    def remove_token(self, token: str) -> None:
        """The token stops working, as a revoked or expired one does."""
        self._users.pop(token, None)

    def allow(self, subject: str, verb: str, target: str, namespace: str = "") -> None:
        """Let a user or group do verb on target, everywhere or only in namespace;
        SubjectAccessReviews, SelfSubjectAccessReviews and the writable resources'
        calls answer from this (rbac.py).

        target is `resource[.group][/subresource]` (`nodes/metrics`, `pods.metrics.k8s.io`,
        `deployments.apps/scale`) or a non-resource path (`/metrics`); verb and target may
        be `*`.
        """
        self.grants.add(subject, verb, target, namespace)

    def set_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        """What GET pods/{pod}/log?container= answers."""
        self._logs[(namespace, pod, container)] = text

    def log(self, namespace: str, pod: str, container: str) -> str:
        return self._logs.get((namespace, pod, container), "")

    def calls_to(self, prefix: str) -> list[tuple[str, str, str]]:
        """The recorded calls whose path starts with prefix."""
        return [c for c in self.calls if c[1].startswith(prefix)]

    def put(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an object; bumps the resourceVersion and tells watchers."""
        kind = KINDS[resource]
        new = copy.deepcopy(dict(obj))
        new.setdefault("kind", kind.kind)
        new.setdefault("apiVersion", kind.api_version)
        meta = new.setdefault("metadata", {})
        namespace = str(meta.setdefault("namespace", "default")) if kind.namespaced else ""
        key = (namespace, str(meta["name"]))
        with self._lock:
            old = self._objects[resource].get(key)
            writable.reconcile(resource, new, old)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            old_meta = (old or {}).get("metadata") or {}
            meta["uid"] = old_meta.get("uid") or objects.uid(kind.kind, *key)
            meta["creationTimestamp"] = (
                old_meta.get("creationTimestamp")
                or meta.get("creationTimestamp")
                or objects.now_rfc3339()
            )
            self._objects[resource][key] = new
            self._record(Change(self._rv, resource, "MODIFIED" if old else "ADDED", new, old))
        return new

    def update(
        self,
        resource: str,
        name: str,
        change: Callable[[dict[str, Any]], None],
        namespace: str = "",
    ) -> dict[str, Any]:
        """Apply change to a copy of the current object and store it."""
        with self._lock:
            current = copy.deepcopy(self._objects[resource][(namespace, name)])
        change(current)
        return self.put(resource, current)

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        with self._lock:
            old = self._objects[resource].pop((namespace, name))
            self._rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._record(Change(self._rv, resource, "DELETED", gone, old))

    def add_node(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self.put("nodes", obj)

    def delete_node(self, name: str) -> None:
        self.delete("nodes", name)

    def add_pod(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self.put("pods", obj)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.delete("pods", name, namespace)

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._objects[resource].get((namespace, name)))

    def compact(self) -> None:
        """Forget the change history, as etcd compaction does: a watch from any earlier
        resourceVersion is answered with 410 Expired."""
        with self._lock:
            self._history.clear()
            self._compacted = self._rv

    def break_watches(self) -> int:
        """Drop every open watch connection mid-stream; returns how many there were."""
        with self._lock:
            for watcher in self._watchers:
                watcher.pending.append(_BREAK)
                self._wake(watcher)
            return len(self._watchers)

    def send_bookmarks(self) -> None:
        """A BOOKMARK now to every watch that allows them, at the current resourceVersion."""
        with self._lock:
            for watcher in self._watchers:
                if watcher.bookmarks:
                    watcher.pending.append(self._rv)
                    self._wake(watcher)

    def open_watches(self, resource: str) -> int:
        with self._lock:
            return sum(1 for w in self._watchers if w.resource == resource)

    # ----- changes and watchers (called with the lock held)

    def _record(self, change: Change) -> None:
        self._history.append(change)
        while len(self._history) > self._history_size:
            self._compacted = self._history.popleft().rv
        for watcher in self._watchers:
            if watcher.resource == change.resource:
                watcher.pending.append(change)
                self._wake(watcher)

    def _wake(self, watcher: Watcher) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(watcher.wake.set)

    # ----- handlers

    async def _ok(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _version(self, _request: web.Request) -> web.Response:
        return json_response(
            {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.2",
                "gitCommit": "67a30c0adcf52bd3f56ff0893ce19966be12991f",
                "gitTreeState": "clean",
                "buildDate": "2025-02-12T21:19:47Z",
                "goVersion": "go1.23.6",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def _api(self, request: web.Request) -> web.Response:
        if wants_aggregated(request):
            return json_response(objects.aggregated(core=True), AGGREGATED)
        return json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        )

    async def _apis(self, request: web.Request) -> web.Response:
        if wants_aggregated(request):
            return json_response(objects.aggregated(core=False), AGGREGATED)
        return json_response(objects.api_group_list())

    def _resources(self, group_version: str) -> Callable[[web.Request], Any]:
        async def handler(_request: web.Request) -> web.Response:
            return json_response(objects.resource_list(group_version))

        return handler

    async def _group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        found = [gv for gv in objects.GROUPS if gv.startswith(group + "/")]
        if not found:
            raise web.HTTPNotFound()
        return json_response(
            {"kind": "APIGroup", "apiVersion": "v1", **objects.api_group(found[0])}
        )

    async def _group_version(self, request: web.Request) -> web.Response:
        group_version = f"{request.match_info['group']}/{request.match_info['version']}"
        if group_version not in objects.GROUPS:
            raise web.HTTPNotFound()
        return json_response(objects.resource_list(group_version))

    def _matcher(self, request: web.Request, resource: str) -> Callable[[Mapping[str, Any]], bool]:
        kind = KINDS[resource]
        labels = parse_label_selector(request.query.get("labelSelector", ""))
        fields = parse_field_selector(request.query.get("fieldSelector", ""), kind.supported_fields)
        return lambda obj: (
            labels((obj.get("metadata") or {}).get("labels") or {}) and fields(kind.fields(obj))
        )

    def _collection(self, resource: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            if request.query.get("watch", "").lower() in ("true", "1"):
                self.requests["watch", resource] += 1
                return await self._watch(request, resource)
            self.requests["list", resource] += 1
            return self._list(request, resource)

        return handler

    def _list(self, request: web.Request, resource: str) -> web.Response:
        matches = self._matcher(request, resource)
        namespace = request.match_info.get("namespace")
        with self._lock:
            rv = self._rv
            items = [
                obj
                for key, obj in sorted(self._objects[resource].items())
                if (namespace is None or key[0] == namespace) and matches(obj)
            ]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        items = self._page(request, items, meta)
        if tables.wants_table(request):
            columns, row = TABLES.get(resource, objects.NAME_AGE)
            now = time.time()
            body = tables.table(
                request, columns, [(row(i, now), i) for i in items], meta.pop("resourceVersion")
            )
            body["metadata"].update(meta)
            return json_response(body, tables.TABLE_CONTENT_TYPE)
        kind = KINDS[resource]
        # Items of a typed list carry no kind or apiVersion, as kube-apiserver sends them.
        return json_response(
            {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": meta,
                "items": [
                    {k: v for k, v in i.items() if k not in ("kind", "apiVersion")} for i in items
                ],
            }
        )

    @staticmethod
    def _page(
        request: web.Request, items: list[dict[str, Any]], meta: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """?limit and ?continue: the token holds the list's resourceVersion and the last key."""
        token = request.query.get("continue", "")
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token))
                meta["resourceVersion"] = str(start["rv"])
                after = tuple(start["key"])
            except (ValueError, KeyError, TypeError, binascii.Error) as err:
                raise web.HTTPBadRequest(reason="continue key is not valid") from err
            items = [i for i in items if _key(i) > after]
        limit = int(request.query.get("limit") or 0)
        if not limit or len(items) <= limit:
            return items
        page = items[:limit]
        next_token = {"rv": int(meta["resourceVersion"]), "key": list(_key(page[-1]))}
        meta["continue"] = base64.urlsafe_b64encode(json.dumps(next_token).encode()).decode()
        meta["remainingItemCount"] = len(items) - limit
        return page

    def _item(self, resource: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            self.requests["get", resource] += 1
            name = request.match_info["name"]
            found = self.get(resource, name, request.match_info.get("namespace", ""))
            if found is None:
                return not_found(resource, name, KINDS[resource].group)
            if tables.wants_table(request):
                columns, row = TABLES.get(resource, objects.NAME_AGE)
                body = tables.table(
                    request,
                    columns,
                    [(row(found, time.time()), found)],
                    found["metadata"]["resourceVersion"],
                )
                return json_response(body, tables.TABLE_CONTENT_TYPE)
            return json_response(found)

        return handler

    async def _watch(self, request: web.Request, resource: str) -> web.StreamResponse:
        matches = self._matcher(request, resource)
        namespace = request.match_info.get("namespace")
        text = request.query.get("resourceVersion", "")
        try:
            since = int(text) if text else 0
            timeout = float(request.query.get("timeoutSeconds") or 1800)
        except ValueError as err:
            raise web.HTTPBadRequest(
                reason=f"invalid resourceVersion or timeoutSeconds: {err}"
            ) from err
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        watcher = Watcher(resource, namespace, matches, bookmarks, asyncio.Event())
        with self._lock:
            if since and since < self._compacted:
                # The watch cache answers 200 and one ERROR event (cacher.newErrWatcher).
                expired = status(410, f"too old resource version: {since} ({self._compacted})")
                expired["reason"] = "Expired"
                self.requests["expired", resource] += 1
                first: list[dict[str, Any]] = [{"type": "ERROR", "object": expired}]
            elif since:
                first = [
                    e
                    for c in self._history
                    if c.rv > since and c.resource == resource and (e := self._event(watcher, c))
                ]
                self._watchers.add(watcher)
            else:
                # No resourceVersion, or "0": the current state as ADDED events first.
                first = [
                    {"type": "ADDED", "object": obj}
                    for key, obj in sorted(self._objects[resource].items())
                    if (namespace is None or key[0] == namespace) and matches(obj)
                ]
                self._watchers.add(watcher)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for event in first:
                await response.write(orjson.dumps(event) + b"\n")
            if watcher in self._watchers:
                return await self._follow(request, response, watcher, timeout)
        finally:
            with self._lock:
                self._watchers.discard(watcher)
        await response.write_eof()
        return response

    async def _follow(
        self, request: web.Request, response: web.StreamResponse, watcher: Watcher, timeout: float
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            wait = min(left, self.bookmark_interval) if watcher.bookmarks else left
            try:
                await asyncio.wait_for(watcher.wake.wait(), wait)
            except TimeoutError:
                # A periodic bookmark (every bookmark_interval), not one at timeoutSeconds.
                if watcher.bookmarks and wait < left:
                    with self._lock:
                        if not watcher.pending:
                            watcher.pending.append(self._rv)
            watcher.wake.clear()
            with self._lock:
                batch = list(watcher.pending)
                watcher.pending.clear()
            for item in batch:
                if item == _BREAK:
                    # A dropped connection: no terminating chunk, the client sees an error.
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                event = self._bookmark(watcher, item) if isinstance(item, int) else None
                if isinstance(item, Change):
                    event = self._event(watcher, item)
                if event:
                    await response.write(orjson.dumps(event) + b"\n")
        # timeoutSeconds is up: end the stream cleanly, as the server does.
        await response.write_eof()
        return response

    @staticmethod
    def _bookmark(watcher: Watcher, rv: int) -> dict[str, Any]:
        kind = KINDS[watcher.resource]
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        return {
            "type": "BOOKMARK",
            "object": {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta},
        }

    @staticmethod
    def _event(watcher: Watcher, change: Change) -> dict[str, Any] | None:
        """The event this watcher sees: an object that starts or stops matching its
        selectors is ADDED or DELETED for it (the cacheWatcher's rule)."""

        def visible(obj: Mapping[str, Any] | None) -> bool:
            if obj is None:
                return False
            namespace = (obj.get("metadata") or {}).get("namespace")
            return (
                watcher.namespace is None or namespace == watcher.namespace
            ) and watcher.matches(obj)

        now = change.type != "DELETED" and visible(change.obj)
        before = visible(change.old)
        if now and before:
            return {"type": "MODIFIED", "object": change.obj}
        if now:
            return {"type": "ADDED", "object": change.obj}
        if before:
            return {"type": "DELETED", "object": change.obj}
        return None

    async def _configmap(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if (namespace, name) != ("kube-system", "extension-apiserver-authentication"):
            return not_found("configmaps", name)
        return json_response(
            objects.configmap_extension_apiserver_authentication(
                self.ca.cert_pem(), self.front_proxy_ca.cert_pem()
            )
        )

    async def _body(
        self, request: web.Request, kind: str, approval: bool = False
    ) -> dict[str, Any]:
        if approval and request.content_type == protobuf.CONTENT_TYPE:
            try:
                return protobuf.csr_approval(await request.read())
            except (ValueError, IndexError) as err:
                raise web.HTTPBadRequest(reason=f"the protobuf body cannot be read: {err}") from err
        if "json" not in request.content_type:
            # kubectl sends protobuf bodies first; we only speak JSON, and say so as
            # kube-apiserver does for a format it does not know.
            raise web.HTTPUnsupportedMediaType(
                reason="the body of the request was in an unknown format - accepted media "
                "types include: application/json"
            )
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError as err:
            raise web.HTTPBadRequest(reason=f"the request body is not JSON: {err}") from err
        if not isinstance(body, dict) or body.get("kind") != kind:
            raise web.HTTPBadRequest(reason=f"the request body is not a {kind}")
        return body

    async def _token_review(self, request: web.Request) -> web.Response:
        body = await self._body(request, "TokenReview")
        spec = body.get("spec") or {}
        self.token_reviews.append(spec)
        user = self._users.get(str(spec.get("token", "")))
        audiences = spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"]
        if user is None:
            review: dict[str, Any] = {"user": {}, "error": "invalid bearer token"}
        else:
            groups = [*user.groups, "system:authenticated"]
            review = {
                "authenticated": True,
                "user": {"username": user.name, "uid": user.uid, "groups": groups},
                "audiences": audiences,
            }
        return self._created(body, spec, review)

    async def _access_review(self, request: web.Request) -> web.Response:
        body = await self._body(request, "SubjectAccessReview")
        spec = body.get("spec") or {}
        self.access_reviews.append(spec)
        question = _question(spec)
        if question is None:
            return _invalid_review("SubjectAccessReview")
        subjects = [str(spec.get("user", "")), *(spec.get("groups") or [])]
        return self._created(body, spec, _decision(self.grants.allows(subjects, *question)))

    async def _self_access_review(self, request: web.Request) -> web.Response:
        """The caller's own question (kubectl auth can-i): the user is whoever the
        request authenticated as, never anything in the body."""
        body = await self._body(request, "SelfSubjectAccessReview")
        spec = body.get("spec") or {}
        self.self_access_reviews.append(spec)
        question = _question(spec)
        if question is None:
            return _invalid_review("SelfSubjectAccessReview")
        allowed = self.grants.allows_user(request[USER_KEY], *question)
        return self._created(body, spec, _decision(allowed))

    @staticmethod
    def _created(body: Mapping[str, Any], spec: Any, review: dict[str, Any]) -> web.Response:
        answer = {
            "kind": body["kind"],
            "apiVersion": body.get("apiVersion"),
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": review,
        }
        return web.Response(status=201, body=orjson.dumps(answer), content_type="application/json")

    async def _create_csr(self, request: web.Request) -> web.Response:
        body = await self._body(request, "CertificateSigningRequest")
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        spec = body.get("spec") or {}
        problem = _csr_problem(meta, spec)
        if problem:
            return status_answer(
                422,
                "Invalid",
                f'CertificateSigningRequest.{CSR_GROUP} "{meta.get("name", "")}" is invalid: '
                + problem,
            )
        name = str(meta["name"])
        if self.get("certificatesigningrequests", name) is not None:
            return status_answer(
                409,
                "AlreadyExists",
                f'certificatesigningrequests.{CSR_GROUP} "{name}" already exists',
                {"name": name, "group": CSR_GROUP, "kind": "certificatesigningrequests"},
            )
        # The requester is whoever is authenticated, never what the body claims.
        user = self._authn.authenticate(request) or User("system:anonymous")
        spec.update(username=user.name, uid=user.uid, groups=[*user.groups, "system:authenticated"])
        body["spec"], body["status"] = spec, {}
        stored = self.put("certificatesigningrequests", body)
        return web.Response(status=201, body=orjson.dumps(stored), content_type="application/json")

    async def _approve_csr(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await self._body(request, "CertificateSigningRequest", approval=True)
        current = self.get("certificatesigningrequests", name)
        if current is None:
            return not_found("certificatesigningrequests", name, CSR_GROUP)
        meta = body.get("metadata") or {}
        if meta.get("name") != name:
            raise web.HTTPBadRequest(reason="the name of the object does not match the URL")
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            return status_answer(
                409,
                "Conflict",
                "Operation cannot be fulfilled on "
                f'certificatesigningrequests.{CSR_GROUP} "{name}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                {"name": name, "group": CSR_GROUP, "kind": "certificatesigningrequests"},
            )
        conditions = list((body.get("status") or {}).get("conditions") or [])
        types = [c.get("type") for c in conditions]
        if any(t not in ("Approved", "Denied") for t in types) or {"Approved", "Denied"} <= set(
            types
        ):
            return status_answer(
                422,
                "Invalid",
                f'CertificateSigningRequest.certificates.k8s.io "{name}" is invalid: '
                "status.conditions: Invalid value: only one of Approved or Denied may be set "
                "through the approval subresource",
            )
        stamp = objects.now_rfc3339()
        for condition in conditions:
            condition.setdefault("status", "True")
            condition.setdefault("lastUpdateTime", stamp)
            condition.setdefault("lastTransitionTime", stamp)
        current.setdefault("status", {})["conditions"] = conditions
        stored = self.put("certificatesigningrequests", current)
        return json_response(stored)


def _question(spec: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(verb, target, namespace) a review asks about; None unless exactly one of
    resourceAttributes and nonResourceAttributes is given."""
    resource, path = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(resource) == bool(path):
        return None
    if resource:
        return rbac.review_target(resource)
    return str(path.get("verb", "")), str(path.get("path", "")), ""


def _invalid_review(kind: str) -> web.Response:
    return status_answer(
        422,
        "Invalid",
        f"{kind}.authorization.k8s.io is invalid: spec.resourceAttributes: Invalid value: "
        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
    )


def _decision(allowed: bool) -> dict[str, Any]:
    return {"allowed": True, "reason": "granted by the test"} if allowed else {"allowed": False}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _csr_problem(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """The first validation error kube-apiserver would report, or ""."""
    if not meta.get("name"):
        return "metadata.name: Required value: name or generateName is required"
    if not spec.get("signerName"):
        return "spec.signerName: Required value"
    if not spec.get("usages"):
        return "spec.usages: Required value"
    try:
        x509.load_pem_x509_csr(base64.b64decode(str(spec.get("request", "")), validate=True))
    except (ValueError, binascii.Error):
        return (
            "spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST"
        )
    return ""
