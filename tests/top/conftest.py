"""A metrics API server with fixed contents, in a thread, for kubectl and kubepulse top."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest
from aiohttp import web

from kubepulse import pki
from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import Authenticator, User
from kubepulse.api.metrics_watch import MetricsWatchers
from kubepulse.cli.up import kubeconfig
from kubepulse.kube.inventory import StaticInventory
from kubepulse.store.points import MetricsStore
from tests.api.conftest import TOKEN, FakeScraping, filled_store, inventory, self_metrics
from tests.support import free_port


class ServerThread:
    """Serves an aiohttp application over TLS from its own thread and event loop."""

    def __init__(self, app: web.Application, ctx: ssl.SSLContext, port: int = 0) -> None:
        self.app, self.ctx = app, ctx
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ctx)
        self.loop.run_until_complete(site.start())
        self.started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.started.wait(20), "server thread did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)


@dataclass
class Cluster:
    kubeconfig: Path
    port: int


def tls(tmp: Path) -> tuple[pki.KeyPair, ssl.SSLContext]:
    """A CA and the server's TLS context, with a certificate that CA signed."""
    ca = pki.new_ca("top-test-ca")
    serving = pki.issue(ca, "apiserver", dns_names=["localhost"], ips=[ip_address("127.0.0.1")])
    serving.write(tmp / "tls.crt", tmp / "tls.key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    return ca, ctx


def serve(tmp: Path, app: web.Application) -> Iterator[Cluster]:
    ca, ctx = tls(tmp)
    with ServerThread(app, ctx) as server:
        config = tmp / "kubeconfig"
        config.write_text(kubeconfig(f"https://127.0.0.1:{server.port}", ca.cert_pem(), TOKEN))
        yield Cluster(config, server.port)


def cluster_app(
    store: MetricsStore,
    inv: StaticInventory | None = None,
    metrics_watch: MetricsWatchers | None = None,
) -> web.Application:
    parts = ServerParts(
        store=store,
        inventory=inv or inventory(),
        scraping=FakeScraping(),
        authenticator=Authenticator({TOKEN: User("admin", "1", ("system:masters",))}),
        registry=self_metrics(store).registry,
        serve_core_api=True,
        metrics_watch=metrics_watch,
    )
    return make_app(parts)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from serve(tmp_path_factory.mktemp("cluster"), cluster_app(filled_store()))


@pytest.fixture(scope="module")
def cold_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One scrape only: nothing to serve yet."""
    yield from serve(tmp_path_factory.mktemp("cold"), cluster_app(filled_store(scrapes=1)))


@pytest.fixture(scope="module")
def no_metrics_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An API server without metrics.k8s.io registered."""

    async def apis(_request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def api(_request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    app = web.Application()
    app.router.add_get("/apis", apis)
    app.router.add_get("/api", api)
    yield from serve(tmp_path_factory.mktemp("nometrics"), app)


class Restartable:
    """A metrics API on one fixed port that a test stops and starts again, with any app."""

    def __init__(self, tmp: Path) -> None:
        ca, self.ctx = tls(tmp)
        self.port = free_port()
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            kubeconfig(f"https://127.0.0.1:{self.port}", ca.cert_pem(), TOKEN)
        )
        self.server: ServerThread | None = None

    def start(self, app: web.Application | None = None) -> None:
        """Serve app on the fixed port; by default a new app over the filled store."""
        self.server = ServerThread(app or cluster_app(filled_store()), self.ctx, self.port)
        self.server.__enter__()

    def stop(self) -> None:
        if self.server is not None:
            self.server.__exit__()
            self.server = None


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Restartable]:
    """Not started: the test starts it with the app it needs."""
    server = Restartable(tmp_path)
    yield server
    server.stop()


def malformed_app() -> web.Application:
    """Offers metrics.k8s.io, then answers its lists without items."""

    async def apis(_request: web.Request) -> web.Response:
        group = {"name": "metrics.k8s.io", "versions": [{"version": "v1beta1"}]}
        return web.json_response({"kind": "APIGroupList", "groups": [group]})

    async def pods(_request: web.Request) -> web.Response:
        return web.json_response({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1"})

    app = web.Application()
    app.router.add_get("/apis", apis)
    app.router.add_get("/apis/metrics.k8s.io/v1beta1/pods", pods)
    return app
