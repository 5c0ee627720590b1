"""The server's HTTP application: authentication, errors as Status, probes, routes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kubepulse.api import can_i, whoami
from kubepulse.api.auditkeys import send_audit_id
from kubepulse.api.authn import USER_KEY, RequestAuthenticator
from kubepulse.api.authz import AlwaysAllow, AlwaysAllowPaths, Authorizer, authorization
from kubepulse.api.core import CoreAPI
from kubepulse.api.discovery import Discovery
from kubepulse.api.httplog import request_log
from kubepulse.api.impersonation import impersonation
from kubepulse.api.metrics import MetricsAPI
from kubepulse.api.metrics_watch import MetricsWatchers
from kubepulse.api.openapi import OpenAPI
from kubepulse.api.pod_list import RenderedPods
from kubepulse.api.selectors import SelectorError
from kubepulse.api.status import status_response
from kubepulse.api.watch import WatchError
from kubepulse.kube.feed import ObjectFeed
from kubepulse.kube.inventory import Inventory
from kubepulse.store.reading import UsageStore

log = logging.getLogger(__name__)

OPEN_PATHS = AlwaysAllowPaths()  # upstream's --authorization-always-allow-paths default
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScrapeStatus(Protocol):
    """What the probes need to know about scraping."""

    resolution: float
    last_tick_start: float | None

    def errors(self) -> Mapping[str, tuple[str, str]]:
        """Node name -> (cause, message) of the last failed scrape."""
        ...


@dataclass
class ServerParts:
    store: UsageStore
    inventory: Inventory
    scraping: ScrapeStatus
    authenticator: RequestAuthenticator
    registry: CollectorRegistry
    serve_core_api: bool = False
    node_selector: Callable[[Mapping[str, str]], bool] = field(default=lambda _labels: True)
    authorizer: Authorizer = field(default_factory=AlwaysAllow)
    always_allow_paths: AlwaysAllowPaths = OPEN_PATHS
    pod_list: RenderedPods | None = None
    """The rendered PodMetricsList, shared with the scrape manager that prerenders it."""
    feed: ObjectFeed | None = None
    """The core API's versioned objects and their changes (`up`), for watches."""
    metrics_watch: MetricsWatchers | None = None
    """The watches of NodeMetrics and PodMetrics, fed by the scrape manager."""
    audit: Middleware | None = None
    """The audit filter (kubepulse.audit), outside everything that may answer."""


@web.middleware
async def errors_as_status(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is a Kubernetes Status with the right code; never a traceback.
    An error that already is a JSON answer (the dashboard's {"error": why}) goes out as
    it is, its message kept."""
    try:
        return await handler(request)
    except (SelectorError, WatchError) as err:
        return status_response(400, str(err))
    except web.HTTPRedirection:
        raise  # not an error: the Location and any cookies go out as they are
    except web.HTTPException as err:
        if err.status >= 400 and err.content_type == "application/json" and err.text:
            return _made_answer(err)
        if isinstance(err, web.HTTPMethodNotAllowed):
            return status_response(
                405, "the server does not allow this method on the requested resource"
            )
        if isinstance(err, web.HTTPNotFound):
            return status_response(404, "the server could not find the requested resource")
        return status_response(err.status, err.reason)
    except Exception:
        log.exception("internal error serving %s", request.path)
        return status_response(
            500, "an error on the server has prevented the request from succeeding"
        )


def _made_answer(err: web.HTTPException) -> web.Response:
    headers = {
        k: v for k, v in err.headers.items() if k.lower() not in ("content-type", "content-length")
    }
    return web.Response(
        status=err.status, text=err.text, content_type="application/json", headers=headers
    )


def authentication(
    authenticator: RequestAuthenticator, open_paths: AlwaysAllowPaths = OPEN_PATHS
) -> Middleware:
    """401 for a request nobody vouches for; else the user is left in request[USER_KEY].

    The always-allowed paths (probes) are served to anyone: upstream lets anonymous
    requests through to them, and kubepulse has no anonymous user otherwise."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if open_paths.matches(request.path):
            # Served to anyone; a caller who says who they are may see more (/readyz).
            if "Authorization" in request.headers or (
                request.transport is not None
                and (request.transport.get_extra_info("peercert") is not None)
            ):
                user = await authenticator.identify(request)
                if user is not None:
                    request[USER_KEY] = user
            return await handler(request)
        user = await authenticator.identify(request)
        if user is None:
            return status_response(401, "Unauthorized")
        request[USER_KEY] = user
        return await handler(request)

    return authenticate


@web.middleware
async def negotiate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """We speak JSON only. kubectl asks for protobuf first and JSON second, which is fine;
    a client that accepts nothing but protobuf gets 406, as from the API server. A
    sub-application mounted beside the API (the dashboard, whose page also asks for
    text/event-stream) answers for its own media types."""
    accept = request.headers.get("Accept", "")
    if len(request.match_info.apps) > 1:
        return await handler(request)
    if accept and not any(
        t.split(";")[0].strip() in ("application/json", "*/*", "application/*", "text/plain", "")
        or "json" in t
        for t in accept.split(",")
    ):
        return status_response(406, "only the following media types are accepted: application/json")
    return await handler(request)


class Probes:
    def __init__(self, parts: ServerParts) -> None:
        self.parts = parts

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/livez", self.livez),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]

    def _checks(self, kind: str) -> list[tuple[str, str | None]]:
        checks: list[tuple[str, str | None]] = [("ping", None), ("log", None)]
        if kind == "readyz":
            ready = self.parts.store.ready()
            checks.append(("metric-storage-ready", None if ready else "no metrics to serve"))
        if kind == "livez":
            s = self.parts.scraping
            late = (
                s.last_tick_start is not None
                and time.time() - s.last_tick_start > 1.5 * s.resolution
            )
            checks.append(
                (
                    "metric-collection-timely",
                    "metric collection didn't finish on time" if late else None,
                )
            )
        return checks

    def _answer(self, request: web.Request, kind: str) -> web.Response:
        checks = self._checks(kind)
        failed = [name for name, err in checks if err]
        verbose = "verbose" in request.query
        if not verbose and not failed:
            return web.Response(text="ok")
        lines = [
            f"[+]{name} ok" if err is None else f"[-]{name} failed: reason withheld"
            for name, err in checks
        ]
        errors = self.parts.scraping.errors() if kind == "readyz" else {}
        if errors and USER_KEY in request:
            for node, (cause, message) in sorted(errors.items()):
                lines.append(f"[!]scrape node/{node}: {cause}: {message}")
        elif errors:
            # Addresses, ports and answers are for those who may ask the API.
            lines.append(f"[!]{len(errors)} node(s) not scraped: ask with credentials to see why")
        lines.append(f"{kind} check {'failed' if failed else 'passed'}")
        return web.Response(status=500 if failed else 200, text="\n".join(lines) + "\n")

    async def healthz(self, request: web.Request) -> web.Response:
        return self._answer(request, "healthz")

    async def livez(self, request: web.Request) -> web.Response:
        return self._answer(request, "livez")

    async def readyz(self, request: web.Request) -> web.Response:
        return self._answer(request, "readyz")

    async def metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.parts.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def with_trailing_slashes(routes: list[web.RouteDef]) -> list[web.RouteDef]:
    """Each route also under its path with a trailing slash, answered the same: the API
    server's mux serves both (`/api/`, `/apis/metrics.k8s.io/v1beta1/`), and clients
    such as the official Python one ask discovery with the slash."""
    slashed = [
        web.RouteDef(r.method, r.path + "/", r.handler, r.kwargs)
        for r in routes
        if not r.path.endswith("/")
    ]
    return [*routes, *slashed]


def make_app(parts: ServerParts) -> web.Application:
    app = web.Application(
        middlewares=[
            request_log,
            *([parts.audit] if parts.audit is not None else []),
            errors_as_status,
            authentication(parts.authenticator, parts.always_allow_paths),
            impersonation(parts.authorizer),
            authorization(parts.authorizer, parts.always_allow_paths),
            negotiate,
        ]
    )
    if parts.audit is not None:
        app.on_response_prepare.append(send_audit_id)
    routes = [
        *Probes(parts).routes(),
        *Discovery(
            core=parts.serve_core_api,
            core_watch=parts.feed is not None,
            metrics_watch=parts.metrics_watch is not None,
        ).routes(),
        # The schemas of what is served, for kubectl explain and the aggregator.
        *OpenAPI(core=parts.serve_core_api).routes(),
        *MetricsAPI(
            parts.store, parts.inventory, parts.node_selector, parts.pod_list, parts.metrics_watch
        ).routes(),
        # `kubectl auth whoami`: who the authenticated caller is (authentication.k8s.io/v1).
        *whoami.routes(),
        # What the caller may do (authorization.k8s.io/v1), decided by the server's authorizer.
        *can_i.AccessReviews(parts.authorizer, core=parts.serve_core_api).routes(),
    ]
    if parts.serve_core_api:
        routes += CoreAPI(parts.inventory, parts.feed).routes()
    app.add_routes(with_trailing_slashes(routes))
    watched = [w for w in (parts.feed, parts.metrics_watch) if w is not None]

    async def end_watches(_app: web.Application) -> None:
        for w in watched:
            w.close()

    app.on_shutdown.append(end_watches)
    return app
