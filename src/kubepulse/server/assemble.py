"""The metrics server put together: store, scraper, history, API, dashboard, TLS.

Data flows one way: the scrape manager fills the store, recorders (the rendered pod
list, the history, the dashboard's pod index) hear of each stored node, and the API and
the dashboard read the store.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import gc
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import RequestAuthenticator
from kubepulse.api.authz import AlwaysAllow, AlwaysAllowPaths, Authorizer
from kubepulse.api.exposition import prometheus_handler
from kubepulse.api.metrics_watch import MetricsWatchers
from kubepulse.api.pod_list import RenderedPods
from kubepulse.dashboard.app import DashboardOptions, DashboardParts
from kubepulse.dashboard.app import mount as mount_dashboard
from kubepulse.dashboard.pod_index import pod_index
from kubepulse.history.file import History
from kubepulse.history.prometheus import PrometheusHistory
from kubepulse.history.recorder import HistoryRecorder
from kubepulse.history.sources import SeriesSource, SqliteSeries
from kubepulse.history.tiers import Tier
from kubepulse.kube.feed import ObjectFeed
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.scrape.client import KubeletClient
from kubepulse.scrape.manager import Recorders, ScrapeManager
from kubepulse.scrape.pressure import PressureScraper
from kubepulse.selfmetrics import SelfMetrics
from kubepulse.server import malloc, serving
from kubepulse.server.auditing import audit_filter
from kubepulse.server.auth import serving_context
from kubepulse.server.config import CompletedConfig, ConfigError, HistoryOptions
from kubepulse.server.connections import share_tls_read_buffers
from kubepulse.server.kubelets import KubeletDefaults, client_config
from kubepulse.store.points import MetricsStore

log = logging.getLogger("kubepulse.server")

USAGE_PATH = "/metrics/usage"
DASHBOARD_PATHS = ("/dashboard", "/dashboard/*")
PROMETHEUS_TIMEOUT = 10.0
"""Seconds the dashboard waits for one Prometheus query before answering 502."""

Closer = Callable[[], Awaitable[None]]


@dataclass
class RunningServer:
    runner: web.AppRunner
    port: int
    manager: ScrapeManager
    store: MetricsStore
    tasks: list[asyncio.Task[None]]
    client: KubeletClient
    # What else to close, last first: the inventory's watches, the review client.
    closers: list[Closer] = field(default_factory=list)
    history: History | None = None

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runner.cleanup()
        await self.client.close()
        for close in reversed(self.closers):
            await close()


def open_history(options: HistoryOptions, tiers: tuple[Tier, ...]) -> History | None:
    """The history file, opened (or reopened: restarts keep it); None without one."""
    if options.file is None:
        return None
    try:
        return History(options.file, tiers, options.max_size)
    except (OSError, ValueError, sqlite3.Error) as err:
        raise ConfigError(f"cannot open history file {options.file}: {err}") from err


def chart_source(
    url: str | None, history: History | None, closers: list[Closer]
) -> SeriesSource | None:
    """Where the dashboard's charts come from: Prometheus when given, else the history file."""
    if url is not None:
        source = PrometheusHistory(url, timeout=PROMETHEUS_TIMEOUT)
        closers.append(source.close)
        log.info("dashboard charts from Prometheus at %s", source.shown)
        return source
    return SqliteSeries(history) if history is not None else None


async def start_server(
    completed: CompletedConfig,
    inventory: Inventory,
    kubelet_token: str | None,
    auth: RequestAuthenticator,
    *,
    authorizer: Authorizer | None = None,
    kubelet_defaults: KubeletDefaults | None = None,
    cluster: Credentials | None = None,
    feed: ObjectFeed | None = None,
) -> RunningServer:
    """cluster, for the dashboard's Kubernetes mode: the API server it calls with each
    user's own token; None (--targets) leaves it in local mode, without actions.
    feed, for the core API (`up`): its objects' versions and changes, which it watches."""
    config = completed.config
    resolution, dashboard = config.metric_resolution, config.dashboard
    closers: list[Closer] = []
    audit = audit_filter(config.audit, completed.audit_policy, closers)
    store = MetricsStore(resolution)
    metrics = SelfMetrics(store, resolution)
    defaults = kubelet_defaults or KubeletDefaults()
    try:
        client = KubeletClient(client_config(config.kubelet, kubelet_token, defaults))
        await client.start()
    except ValueError as err:  # the kubelet client's files or settings
        raise ConfigError(str(err)) from err
    history = open_history(config.history, completed.tiers)
    if history is not None:
        metrics.watch_history(history)
    pod_list = RenderedPods(store)
    metrics_watch = MetricsWatchers(store, inventory, completed.node_selector)
    manager = ScrapeManager(
        client,
        store,
        inventory,
        resolution,
        completed.node_selector,
        observer=metrics,
        recorder=Recorders(
            pod_list,
            HistoryRecorder(store, history) if history is not None else None,
            # The dashboard's pod index, prepared after each cycle while it is watched.
            pod_index(store, inventory) if dashboard else None,
            # Each stored scrape as events for the metric watches open then.
            metrics_watch,
            # Last: the cycle's freed memory back to the kernel (malloc.py).
            malloc.TrimAfterCycle() if malloc_tuned() else None,
        ),
    )
    parts = ServerParts(
        store=store,
        inventory=inventory,
        scraping=manager,
        authenticator=auth,
        registry=metrics.registry,
        serve_core_api=config.serve_core_api,
        node_selector=completed.node_selector,
        authorizer=authorizer or AlwaysAllow(),
        # The dashboard checks its own sessions (a token at login, then a cookie).
        always_allow_paths=AlwaysAllowPaths(
            [*config.auth.always_allow_paths, *(DASHBOARD_PATHS if dashboard else ())]
        ),
        pod_list=pod_list,
        feed=feed,
        metrics_watch=metrics_watch,
        audit=audit,
    )
    app = make_app(parts)
    if dashboard:
        series = chart_source(completed.charts_url, history, closers)
        options = DashboardOptions(token_hint=config.dashboard_token_hint, live_updates=True)
        mount_dashboard(
            app, DashboardParts(store, inventory, series, auth, cluster=cluster, options=options)
        )
    # Every node, pod, container and namespace series, for a Prometheus to keep history.
    app.router.add_get(USAGE_PATH, prometheus_handler(store, inventory))
    bind = config.serving.bind_address
    try:
        ctx = serving_context(config.serving, auth)
        runner, port = await serving.start(
            app,
            bind,
            config.serving.secure_port,
            ctx,
            config.serving.limits(),
            reuse_port=config.serving.permit_port_sharing,
        )
    except BaseException:
        await client.close()
        for close in reversed(closers):
            await close()
        if history is not None:
            await asyncio.to_thread(history.close)
        raise
    tasks = [asyncio.create_task(manager.run())]
    interval = config.history.pressure_interval
    if history is not None and interval > 0:
        counters = PressureScraper(
            client.cadvisor, manager.targets, history.record_pressure, interval
        )
        tasks.append(asyncio.create_task(counters.run(), name="read OOM and throttling counters"))
    log.info("serving metrics.k8s.io on %s", serving.url(bind, port))
    running = RunningServer(runner, port, manager, store, tasks, client, closers)
    if history is not None:
        running.history = history
        running.closers.append(lambda: asyncio.to_thread(history.close))
    return running


def malloc_tuned() -> bool:
    """On unless KUBEPULSE_MALLOC_TUNING=0, which only benchmarks set, to compare."""
    return os.environ.get("KUBEPULSE_MALLOC_TUNING", "1") != "0"


def tune_for_many_nodes() -> None:
    """Process settings for a server that keeps thousands of nodes and connections.

    - asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size);
      at one keep-alive connection per node that is 1.25 GiB for 5,000 nodes, while a
      kubelet's answer is about 30 KiB, 5 KiB gzipped. 16 KiB holds a full TLS record,
      and one such buffer per thread serves all its connections
      (connections.share_tls_read_buffers).
    - The inventory lives as long as the process: freeze it out of the collector's
      walks, and collect young objects less often, since scrape results are freed by
      reference counting and hardly ever form cycles.
    - glibc's malloc keeps what a cycle freed unless told otherwise (malloc.py).
    """
    if malloc_tuned():
        malloc.tune()
    asyncio.sslproto.SSLProtocol.max_size = 16 * 1024
    share_tls_read_buffers()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
