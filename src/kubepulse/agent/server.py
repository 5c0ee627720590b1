"""The agent's HTTPS server: the kubelet's resource-stats endpoints and nothing else."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509

from kubepulse import pki, tlsauth
from kubepulse.agent import cadvisor_metrics, resource_metrics, summary
from kubepulse.agent.collector import Collector
from kubepulse.api.authn import USER_KEY, Authenticator
from kubepulse.api.httplog import request_log
from kubepulse.api.status import status_response
from kubepulse.model import NodeStats

log = logging.getLogger(__name__)

AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)
OPEN_PATHS = frozenset({"/healthz"})


class AgentState:
    """The newest reading, refreshed by housekeeping and read by every request.

    Like cAdvisor inside the kubelet, the agent reads cgroups on a housekeeping interval
    and answers scrapes from that reading, so a scrape costs a render, not a walk of
    the cgroup tree, and every sample carries the time it was taken.
    """

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.latest: NodeStats | None = None
        self.last_error: str | None = None
        self._rendered: dict[str, bytes] = {}
        self.listeners: list[Callable[[NodeStats], None]] = []
        """Called on the event loop with each new reading (`up`'s change feed)."""

    def refresh(self) -> NodeStats:
        try:
            latest: NodeStats | None = self.collector.collect()
            error: str | None = None
        except (OSError, ValueError, KeyError) as err:
            # The node itself could not be read: serve resource_scrape_error 1, keep going.
            latest, error = self.latest, f"{type(err).__name__}: {err}"
            log.warning("reading node stats failed: %s", error)
        # One assignment each, in this order, so a request never pairs new bytes with
        # an old reading for long: at worst it renders the new reading once more.
        self._rendered = {}
        self.latest, self.last_error = latest, error
        if self.latest is None:
            raise RuntimeError(f"cannot read node stats: {self.last_error}")
        return self.latest

    def rendered(self, form: str) -> bytes:
        """An answer in one of the forms, rendered once per reading: the data only
        changes at housekeeping, so every scrape in between gets the same bytes."""
        body = self._rendered.get(form)
        if body is None:
            assert self.latest is not None
            if form == "metrics":
                text = resource_metrics.render(
                    self.latest, scrape_error=self.last_error is not None
                )
            elif form == "cadvisor":
                text = cadvisor_metrics.render(self.latest)
            else:
                text = summary.render(self.latest, only_cpu_and_memory=form == "summary-cpu-memory")
            body = self._rendered[form] = text.encode()
        return body

    async def housekeeping(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                latest = await asyncio.to_thread(self.refresh)
            except RuntimeError:
                continue
            for listener in self.listeners:
                listener(latest)


STATE: web.AppKey[AgentState] = web.AppKey("state", AgentState)


@web.middleware
async def authenticate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path not in OPEN_PATHS:
        user = request.app[AUTHENTICATOR].authenticate(request)
        if user is None:
            return status_response(401, "Unauthorized")
        request[USER_KEY] = user  # for the request's line at -v=4
    return await handler(request)


async def metrics_resource(request: web.Request) -> web.Response:
    body = request.app[STATE].rendered("metrics")
    return web.Response(body=body, headers={"Content-Type": resource_metrics.CONTENT_TYPE})


async def metrics_cadvisor(request: web.Request) -> web.Response:
    body = request.app[STATE].rendered("cadvisor")
    return web.Response(body=body, headers={"Content-Type": resource_metrics.CONTENT_TYPE})


async def stats_summary(request: web.Request) -> web.Response:
    # Exactly one value, exactly "true", as the kubelet's handleSummary checks
    # (pkg/kubelet/server/stats/handler.go); anything else gets the full summary.
    only = request.query.getall("only_cpu_and_memory", []) == ["true"]
    body = request.app[STATE].rendered("summary-cpu-memory" if only else "summary")
    return web.Response(body=body, content_type="application/json")


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def not_found(_request: web.Request) -> web.Response:
    return status_response(404, "the server could not find the requested resource")


def make_app(state: AgentState, authenticator: Authenticator) -> web.Application:
    app = web.Application(middlewares=[request_log, authenticate])
    app[STATE] = state
    app[AUTHENTICATOR] = authenticator
    app.router.add_get("/metrics/resource", metrics_resource)
    app.router.add_get("/metrics/cadvisor", metrics_cadvisor)
    app.router.add_get("/stats/summary", stats_summary)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None


def serving_files(
    cert_file: Path | None, key_file: Path | None, cert_dir: Path, node_name: str, address: str
) -> TLSFiles:
    """The given certificate, or one made in cert_dir for every address we serve on."""
    if cert_file is not None and key_file is not None:
        return TLSFiles(cert_file, key_file)
    ca = pki.ensure_ca(cert_dir, f"{node_name}-ca@kubepulse")
    # The node name is a SAN too, as in the kubelet's own self-signed certificate
    # (cmd/kubelet/app/server.go, InitializeTLS: GenerateSelfSignedCertKey(hostName, ...)),
    # so that a client that dials the node by its --hostname-override name can verify it.
    cert, key = pki.ensure_serving(cert_dir, "kubelet", ca, node_name, address, (node_name,))
    return TLSFiles(cert, key)


def serving_context(client_authorities: Sequence[x509.Certificate] = ()) -> ssl.SSLContext:
    """The server's context without a certificate yet: until one is loaded into it (a
    bootstrapped certificate, see agent.bootstrap) every handshake fails, as the kubelet's
    do with "no serving certificate available for the kubelet".

    With client_authorities (Authenticator.client_authorities_for_tls) it asks clients
    for a certificate, and the handshake lets through only those these CAs verify
    (see kubepulse.tlsauth)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # no system CAs in it
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_authorities:
        tlsauth.request_client_certificates(ctx, client_authorities)
    return ctx


def ssl_context(
    files: TLSFiles, client_authorities: Sequence[x509.Certificate] = ()
) -> ssl.SSLContext:
    ctx = serving_context(client_authorities)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx
