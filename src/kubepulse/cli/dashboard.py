"""`kubepulse dashboard`: the dashboard beside any cluster's metrics API.

It reads the cluster's metrics API and core API with the kubeconfig's credentials, by
watch where the metrics API offers one (scrape/metrics_api_watch.py), else by polling
(scrape/metrics_api.py), records the usage in SQLite (or reads it back from
Prometheus with --prometheus-url), and serves the dashboard. Sign-in tokens are checked
by the cluster itself (a SelfSubjectReview made with the token, api/whoami.py), and the
dashboard calls the API with each user's own token: the kubeconfig's identity is used
for reading usage only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from kubepulse.api.app import errors_as_status
from kubepulse.api.whoami import SelfSubjectReviewAuthenticator
from kubepulse.cli import flags
from kubepulse.cli.errors import CommandError
from kubepulse.cli.kubeconfig_flags import add_kubeconfig_flags, overrides
from kubepulse.cli.server import add_history_flags, history_options
from kubepulse.cli.up import default_state_dir
from kubepulse.dashboard.app import PREFIX, DashboardOptions, DashboardParts, mount
from kubepulse.dashboard.pod_index import pod_index
from kubepulse.history.file import History
from kubepulse.history.recorder import HistoryRecorder
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import KubeClient
from kubepulse.kube.kubeconfig import Credentials, KubeconfigError, without_credentials
from kubepulse.scrape.manager import Recorders
from kubepulse.scrape.metrics_api import MetricsApiPoller, PolledInventory
from kubepulse.scrape.metrics_api_watch import follow_or_poll
from kubepulse.server import serving
from kubepulse.server.assemble import chart_source, open_history
from kubepulse.server.auth import serving_context
from kubepulse.server.config import ServingOptions
from kubepulse.store.rated import RatedStore

log = logging.getLogger("kubepulse.dashboard")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_kubeconfig_flags(p)
    p.add_argument(
        "--interval",
        type=flags.duration,
        default=15.0,
        help="how often nodes and pods are listed, and the metrics API polled where it offers"
        " no watch (default 15s, metrics-server's resolution)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir() / "dashboard",
        help="where the history and the self-signed certificate are kept",
    )
    add_history_flags(p, "the SQLite history (STATE_DIR/history.db)")
    p.add_argument(
        "--prometheus-url",
        help="read charts from this Prometheus (scraping kubepulse's /metrics/usage) "
        "instead of recording them in SQLite",
    )
    p.add_argument("--bind-address", default="127.0.0.1", help="where the dashboard is served")
    p.add_argument("--port", type=int, default=8444, help="its port (0: any)")
    p.add_argument("--tls-cert-file", type=Path)
    p.add_argument("--tls-private-key-file", type=Path)
    p.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP instead of HTTPS; only on a loopback address (logs a warning)",
    )
    p.set_defaults(run=run)


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def validate(args: argparse.Namespace) -> None:
    if args.interval <= 0:
        raise CommandError("--interval must be greater than 0")
    if args.insecure_http and not _loopback(args.bind_address):
        raise CommandError(
            f"--insecure-http serves only on a loopback address, not {args.bind_address}: "
            "tokens and session cookies would cross the network unencrypted"
        )
    if args.insecure_http and args.tls_cert_file is not None:
        raise CommandError("--insecure-http cannot be used with --tls-cert-file")
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise CommandError("--tls-cert-file and --tls-private-key-file must be given together")
    if args.prometheus_url and args.history_file is not None:
        raise CommandError(
            "--prometheus-url and --history-file cannot be used together: with Prometheus "
            "the history is Prometheus's"
        )


def cluster(args: argparse.Namespace) -> Credentials:
    try:
        creds = kubeconfig.load(args.kubeconfig, args.context, overrides=overrides(args))
    except KubeconfigError as err:
        raise CommandError(str(err)) from err
    if creds.insecure:
        log.warning(
            "the kubeconfig says insecure-skip-tls-verify: the API server is NOT verified, "
            "and the tokens users sign in with are sent to it"
        )
    return creds


def tls(args: argparse.Namespace, auth: SelfSubjectReviewAuthenticator) -> ssl.SSLContext | None:
    """HTTPS with --tls-cert-file, else with a self-signed certificate kept in
    STATE_DIR/pki; plain HTTP only when asked for, on loopback, with a warning."""
    if args.insecure_http:
        log.warning(
            "--insecure-http: the dashboard is served over plain HTTP on %s; anyone on this "
            "host can read the tokens and cookies that cross it",
            args.bind_address,
        )
        return None
    args.cert_dir = args.state_dir / "pki"
    return serving_context(
        ServingOptions(
            bind_address=args.bind_address,
            tls_cert_file=args.tls_cert_file,
            tls_private_key_file=args.tls_private_key_file,
            cert_dir=args.cert_dir,
        ),
        auth,
    )


def dashboard_app(parts: DashboardParts) -> web.Application:
    """The dashboard at /dashboard/, errors as Status, and / leading to it."""
    root = web.Application(middlewares=[errors_as_status])
    mount(root, parts)

    async def home(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    root.router.add_get("/", home)
    return root


async def run(args: argparse.Namespace) -> int:
    validate(args)
    if args.prometheus_url is None and args.history_file is None:
        args.history_file = args.state_dir / "history.db"
    history_config = history_options(args)
    tiers, charts_url = history_config.complete(dashboard=True)
    creds = cluster(args)
    try:
        args.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise CommandError(f"cannot prepare state dir {args.state_dir}: {err.strerror}") from err
    auth = SelfSubjectReviewAuthenticator(creds)
    ctx = tls(args, auth)
    closers: list[Callable[[], Awaitable[None]]] = []
    history = open_history(history_config, tiers)
    if history is not None:
        closers.append(lambda: asyncio.to_thread(history.close))
    try:
        store, inventory = RatedStore(args.interval), PolledInventory()
        # The dashboard calls the API server with each user's token, never the kubeconfig's.
        parts = DashboardParts(
            store,
            inventory,
            chart_source(charts_url, history, closers),
            auth,
            cluster=without_credentials(creds),
            options=DashboardOptions(secure_cookies=ctx is not None, live_updates=True),
        )
        recorder = Recorders(
            HistoryRecorder(store, history) if history is not None else None,
            # The pod index, prepared after each poll while the dashboard is watched.
            pod_index(store, inventory),
        )
        async with KubeClient(creds) as client:
            poller = MetricsApiPoller(client, store, inventory, args.interval, recorder)
            runner, port = await serving.start(
                dashboard_app(parts), args.bind_address, args.port, ctx
            )
            task = asyncio.create_task(follow_or_poll(poller), name="read the metrics API")
            try:
                await serving.until_signalled(lambda: announce(args, creds, port, ctx, history))
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await runner.cleanup()
    finally:
        for close in reversed(closers):
            await close()
    return 0


def announce(
    args: argparse.Namespace,
    creds: Credentials,
    port: int,
    ctx: ssl.SSLContext | None,
    history: History | None,
) -> None:
    url = serving.url(args.bind_address, port)
    if ctx is None:
        url = "http://" + url.removeprefix("https://")
    print(f"kubepulse dashboard: {url}{PREFIX}/", flush=True)
    print(
        f"  usage from {creds.server}: by watch where its metrics API offers one,"
        f" else polled every {args.interval:g}s",
        flush=True,
    )
    if history is not None:
        print(f"  history: {history.path}", flush=True)
    if ctx is not None and args.tls_cert_file is None:
        print(f"  self-signed certificate: trust {args.cert_dir / 'ca.crt'}", flush=True)
    print("  sign in with a token the cluster accepts; stop with Ctrl-C", flush=True)
