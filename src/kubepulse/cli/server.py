"""`kubepulse server`: a drop-in metrics-server. Flag names and meanings are upstream's."""

from __future__ import annotations

import argparse
import asyncio
import asyncio.sslproto
import contextlib
import gc
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kubepulse import pki, tlsauth
from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import (
    AuthConfigError,
    Authenticator,
    NoAuthentication,
    TokenFileError,
    from_files,
)
from kubepulse.api.selectors import SelectorError, parse_label_selector
from kubepulse.cli import flags, serving
from kubepulse.cli.errors import CommandError
from kubepulse.kube.inventory import Inventory, StaticInventory
from kubepulse.kube.objects import ObjectError
from kubepulse.scrape.client import ClientConfig, KubeletClient
from kubepulse.scrape.manager import ScrapeManager
from kubepulse.selfmetrics import SelfMetrics
from kubepulse.store.points import MetricsStore

log = logging.getLogger("kubepulse.server")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "server", help="scrape kubelets or agents and serve metrics.k8s.io/v1beta1"
    )
    add_server_flags(p)
    p.add_argument("--targets", type=Path, help="YAML file of Node (and Pod) objects to scrape")
    p.set_defaults(run=run)


def add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric-resolution", type=flags.duration, default=15.0)
    p.add_argument(
        "--kubelet-preferred-address-types",
        default="InternalIP,ExternalIP,Hostname",
        help="the order in which node address types are tried",
    )
    p.add_argument("--kubelet-port", type=int, default=10250)
    p.add_argument("--kubelet-use-node-status-port", action="store_true")
    p.add_argument("--kubelet-request-timeout", type=flags.duration, default=10.0)
    p.add_argument("--kubelet-certificate-authority", type=Path)
    p.add_argument(
        "--kubelet-insecure-tls",
        action="store_true",
        help="do not verify kubelet serving certificates (testing only; logs a warning)",
    )
    p.add_argument("--kubelet-client-certificate", type=Path)
    p.add_argument("--kubelet-client-key", type=Path)
    p.add_argument("--kubelet-token-file", type=Path, help="bearer token sent to kubelets")
    p.add_argument(
        "--kubelet-use-summary-api",
        action="store_true",
        help="scrape /stats/summary instead of /metrics/resource",
    )
    p.add_argument("--secure-port", type=int, default=443)
    p.add_argument("--bind-address", default="0.0.0.0")
    p.add_argument("--tls-cert-file", type=Path)
    p.add_argument("--tls-private-key-file", type=Path)
    p.add_argument("--cert-dir", type=Path, default=Path("apiserver.local.config/certificates"))
    p.add_argument("-l", "--node-selector", default="", help="scrape only nodes with these labels")
    p.add_argument("--token-auth-file", type=Path, help='static tokens: token,user,uid,"groups"')
    p.add_argument("--client-ca-file", type=Path, help="CA that signs accepted client certificates")


def validate(args: argparse.Namespace) -> None:
    """metrics-server's option validation (cmd/metrics-server/app/options)."""
    if args.metric_resolution <= 0:
        raise CommandError("--metric-resolution must be greater than 0")
    if args.kubelet_request_timeout <= 0:
        raise CommandError("--kubelet-request-timeout must be greater than 0")
    if args.metric_resolution * 0.9 < args.kubelet_request_timeout:
        raise CommandError(
            "metric-resolution should be larger than kubelet-request-timeout "
            "(metric-resolution * 0.9 >= kubelet-request-timeout)"
        )
    if args.kubelet_insecure_tls and args.kubelet_certificate_authority:
        raise CommandError(
            "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls"
        )
    if bool(args.kubelet_client_certificate) != bool(args.kubelet_client_key):
        raise CommandError(
            "--kubelet-client-certificate and --kubelet-client-key must be given together"
        )
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise CommandError("--tls-cert-file and --tls-private-key-file must be given together")
    if args.metric_resolution < 10:
        log.warning("--metric-resolution below 10s puts more load on kubelets than upstream allows")


def client_config(args: argparse.Namespace, token: str | None) -> ClientConfig:
    if args.kubelet_insecure_tls:
        log.warning(
            "--kubelet-insecure-tls: kubelet serving certificates are NOT verified; "
            "anyone on the path can serve false metrics. Use only for testing."
        )
    types = tuple(t.strip() for t in args.kubelet_preferred_address_types.split(",") if t.strip())
    return ClientConfig(
        preferred_address_types=types,
        port=args.kubelet_port,
        use_node_status_port=args.kubelet_use_node_status_port,
        timeout=args.kubelet_request_timeout,
        ca_file=args.kubelet_certificate_authority,
        insecure_tls=args.kubelet_insecure_tls,
        client_cert=args.kubelet_client_certificate,
        client_key=args.kubelet_client_key,
        token=token,
        use_summary=args.kubelet_use_summary_api,
    )


def authenticator(args: argparse.Namespace) -> Authenticator:
    try:
        return from_files(args.token_auth_file, args.client_ca_file)
    except NoAuthentication as err:
        raise CommandError(
            "no authentication configured: give --token-auth-file or --client-ca-file"
        ) from err
    except (AuthConfigError, TokenFileError) as err:
        raise CommandError(str(err)) from err


def serving_context(args: argparse.Namespace, auth: Authenticator) -> ssl.SSLContext:
    if args.tls_cert_file is not None:
        cert, key = args.tls_cert_file, args.tls_private_key_file
    else:
        # Like metrics-server: a self-signed certificate in --cert-dir when none is given.
        try:
            ca = pki.ensure_ca(args.cert_dir, "kubepulse-server-ca")
            cert, key = pki.ensure_serving(
                args.cert_dir, "apiserver", ca, "kubepulse", args.bind_address
            )
        except OSError as err:
            raise CommandError(f"cannot write certificates to {args.cert_dir}: {err}") from err
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise CommandError(f"cannot load serving certificate {cert}: {err}") from err
    if auth.client_authorities:
        tlsauth.request_client_certificates(ctx)
    return ctx


def node_selector(args: argparse.Namespace) -> Callable[[Mapping[str, str]], bool]:
    try:
        return parse_label_selector(args.node_selector)
    except SelectorError as err:
        raise CommandError(f"invalid --node-selector: {err}") from err


@dataclass
class RunningServer:
    runner: web.AppRunner
    port: int
    manager: ScrapeManager
    store: MetricsStore
    tasks: list[asyncio.Task[None]]
    client: KubeletClient

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runner.cleanup()
        await self.client.close()


async def start_server(
    args: argparse.Namespace,
    inventory: Inventory,
    kubelet_token: str | None,
    auth: Authenticator,
    serve_core_api: bool = False,
) -> RunningServer:
    selector = node_selector(args)
    store = MetricsStore(args.metric_resolution)
    metrics = SelfMetrics(store, args.metric_resolution)
    client = KubeletClient(client_config(args, kubelet_token))
    await client.start()
    manager = ScrapeManager(
        client, store, inventory, args.metric_resolution, selector, observer=metrics
    )
    parts = ServerParts(
        store=store,
        inventory=inventory,
        scraping=manager,
        authenticator=auth,
        registry=metrics.registry,
        serve_core_api=serve_core_api,
        node_selector=selector,
    )
    ctx = serving_context(args, auth)
    try:
        runner, port = await serving.start(
            make_app(parts), args.bind_address, args.secure_port, ctx
        )
    except CommandError:
        await client.close()
        raise
    tasks = [asyncio.create_task(manager.run())]
    log.info("serving metrics.k8s.io on %s", serving.url(args.bind_address, port))
    return RunningServer(runner, port, manager, store, tasks, client)


def tune_for_many_nodes() -> None:
    """Process settings for a server that keeps thousands of nodes and connections.

    - asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size);
      at one keep-alive connection per node that is 1.25 GiB for 5,000 nodes, while a
      kubelet's answer is about 30 KiB. 64 KiB holds four full TLS records.
    - The inventory lives as long as the process: freeze it out of the collector's
      walks, and collect young objects less often, since scrape results are freed by
      reference counting and hardly ever form cycles.
    """
    asyncio.sslproto.SSLProtocol.max_size = 64 * 1024
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as err:
        raise CommandError(f"cannot read token file {path}: {err.strerror}") from err


async def run(args: argparse.Namespace) -> int:
    validate(args)
    if args.targets is None:
        raise CommandError("no nodes to scrape: give --targets FILE (Node objects in YAML)")
    try:
        inventory = StaticInventory.from_file(args.targets)
    except ObjectError as err:
        raise CommandError(str(err)) from err
    tune_for_many_nodes()
    auth = authenticator(args)
    server = await start_server(args, inventory, read_token(args.kubelet_token_file), auth)
    print(f"kubepulse server: {serving.url(args.bind_address, server.port)}", flush=True)
    try:
        await serving.until_signalled()
    finally:
        await server.stop()
    return 0
