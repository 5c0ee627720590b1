"""`kubepulse server`: a drop-in metrics-server. Flag names and meanings are upstream's.

Two sources of nodes: a file (--targets), or, as metrics-server, the Kubernetes API through
--kubeconfig or the pod's service account. Against a cluster the server also
authenticates and authorizes requests through it, as every aggregated API server does.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.sslproto
import contextlib
import gc
import logging
import sqlite3
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509

from kubepulse import pki, tlsauth
from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import (
    AuthConfigError,
    Authenticator,
    ChainAuthenticator,
    ClusterAuthentication,
    FrontProxyAuthenticator,
    RequestAuthenticator,
    RequestHeaderConfig,
    ReviewClient,
    TokenFileError,
    TokenReviewAuthenticator,
    load_tokens,
    read_cluster_authentication,
)
from kubepulse.api.authz import (
    DEFAULT_ALWAYS_ALLOW_PATHS,
    AlwaysAllow,
    AlwaysAllowPaths,
    Authorizer,
    SubjectAccessReviewAuthorizer,
)
from kubepulse.api.exposition import prometheus_handler
from kubepulse.api.pod_list import RenderedPods
from kubepulse.api.selectors import SelectorError, parse_label_selector
from kubepulse.api.whoami import without_credentials
from kubepulse.cli import flags, serving
from kubepulse.cli.errors import CommandError
from kubepulse.dashboard.app import DashboardParts
from kubepulse.dashboard.app import mount as mount_dashboard
from kubepulse.dashboard.data import pod_index
from kubepulse.history.file import History
from kubepulse.history.prometheus import PrometheusHistory, check_url
from kubepulse.history.recorder import HistoryRecorder
from kubepulse.history.sources import SeriesSource, SqliteSeries
from kubepulse.history.tiers import parse_tiers
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import SERVICE_ACCOUNT_DIR, ApiError, KubeClient, Unreachable, in_cluster
from kubepulse.kube.inventory import Inventory, StaticInventory
from kubepulse.kube.kubeconfig import Credentials, KubeconfigError
from kubepulse.kube.objects import ObjectError
from kubepulse.kube.watch import KubeInventory
from kubepulse.scrape.client import ClientConfig, KubeletClient
from kubepulse.scrape.manager import Recorders, ScrapeManager
from kubepulse.selfmetrics import SelfMetrics
from kubepulse.store.points import MetricsStore

log = logging.getLogger("kubepulse.server")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_server_flags(p)
    p.add_argument("--targets", type=Path, help="YAML file of Node (and Pod) objects to scrape")
    p.add_argument(
        "--kubeconfig",
        type=Path,
        help="nodes and pods from this cluster; without it and --targets, the in-cluster "
        "service account",
    )
    p.add_argument("--context", help="the kubeconfig context to use")
    p.add_argument(
        "--cache-sync-timeout",
        type=flags.duration,
        default=60.0,
        help="give up starting when nodes and pods are not listed within this time",
    )
    p.set_defaults(run=run)


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list flag, as pflag's StringSlice."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_history_flags(p: argparse.ArgumentParser, file_help: str) -> None:
    """--history-file, --history-tiers and --history-max-size (read by open_history)."""
    p.add_argument("--history-file", type=Path, help=file_help)
    p.add_argument(
        "--history-tiers",
        default="raw=1h,1m=24h,15m=30d",
        help="what the history keeps: raw and averaged tiers with their retention",
    )
    p.add_argument(
        "--history-max-size",
        type=flags.quantity,
        help="cap on the history file (e.g. 2Gi): the oldest coarse data goes first",
    )


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
    add_history_flags(
        p, "record every scrape in this SQLite file (kubepulse up: STATE_DIR/history.db)"
    )
    p.add_argument(
        "--prometheus-url",
        help="the dashboard's charts read history from this Prometheus (its HTTP API, "
        "e.g. http://prometheus:9090) instead of --history-file",
    )
    p.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the web UI at /dashboard/ (sign in with a token the server accepts)",
    )
    p.add_argument("--client-ca-file", type=Path, help="CA that signs accepted client certificates")
    # The aggregation layer (k8s.io/apiserver RequestHeaderAuthenticationOptions). Without
    # --requestheader-client-ca-file, against a cluster, all of them come from the
    # kube-system/extension-apiserver-authentication ConfigMap.
    p.add_argument(
        "--requestheader-client-ca-file",
        type=Path,
        help="CA of the front proxy's client certificate; its requests carry the user in headers",
    )
    p.add_argument(
        "--requestheader-allowed-names",
        type=names,
        default=(),
        help="common names the front proxy's certificate may have (empty: any)",
    )
    p.add_argument("--requestheader-username-headers", type=names, default=("X-Remote-User",))
    p.add_argument("--requestheader-group-headers", type=names, default=("X-Remote-Group",))
    p.add_argument("--requestheader-extra-headers-prefix", type=names, default=("X-Remote-Extra-",))
    # Delegated authentication and authorization (DelegatingAuthenticationOptions,
    # DelegatingAuthorizationOptions): the caches' lifetimes and the open paths.
    p.add_argument("--authentication-token-webhook-cache-ttl", type=flags.duration, default=10.0)
    p.add_argument(
        "--authorization-webhook-cache-authorized-ttl", type=flags.duration, default=10.0
    )
    p.add_argument(
        "--authorization-webhook-cache-unauthorized-ttl", type=flags.duration, default=10.0
    )
    p.add_argument(
        "--authorization-always-allow-paths",
        type=names,
        default=DEFAULT_ALWAYS_ALLOW_PATHS,
        help="paths served without authentication or authorization",
    )


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


@dataclass(frozen=True)
class KubeletDefaults:
    """How kubelets are reached when no --kubelet-* flag says otherwise. Against a cluster
    these are the cluster's own credentials and CA: metrics-server copies its rest.Config
    (token, client certificate, CA, insecure) into the kubelet client
    (cmd/metrics-server/app/options/kubelet_client.go), and the flags override it."""

    token: str | None = None
    ca_file: Path | None = None
    insecure: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None
    token_file: Path | None = None
    """Where `token` came from, when it rotates (the service account's)."""


def client_config(
    args: argparse.Namespace, token: str | None, defaults: KubeletDefaults = KubeletDefaults()
) -> ClientConfig:
    if args.kubelet_certificate_authority is not None:
        ca_file, insecure = args.kubelet_certificate_authority, False
    elif args.kubelet_insecure_tls:
        ca_file, insecure = None, True
    else:
        ca_file, insecure = (None, True) if defaults.insecure else (defaults.ca_file, False)
    if args.kubelet_insecure_tls:
        log.warning(
            "--kubelet-insecure-tls: kubelet serving certificates are NOT verified; "
            "anyone on the path can serve false metrics. Use only for testing."
        )
    elif insecure:
        log.warning(
            "the kubeconfig says insecure-skip-tls-verify, so kubelet serving certificates "
            "are NOT verified either; give --kubelet-certificate-authority to verify them"
        )
    cert, key = args.kubelet_client_certificate, args.kubelet_client_key
    if cert is None:
        cert, key = defaults.client_cert, defaults.client_key
    types = tuple(t.strip() for t in args.kubelet_preferred_address_types.split(",") if t.strip())
    return ClientConfig(
        preferred_address_types=types,
        port=args.kubelet_port,
        use_node_status_port=args.kubelet_use_node_status_port,
        timeout=args.kubelet_request_timeout,
        ca_file=ca_file,
        insecure_tls=insecure,
        client_cert=cert,
        client_key=key,
        token=token or defaults.token,
        # The file again every minute: a rotated token must reach the kubelets too.
        token_file=args.kubelet_token_file or (None if token else defaults.token_file),
        use_summary=args.kubelet_use_summary_api,
    )


def request_header_config(args: argparse.Namespace) -> RequestHeaderConfig | None:
    """The front proxy from the --requestheader-* flags, or None without its CA."""
    path: Path | None = args.requestheader_client_ca_file
    if path is None:
        return None
    try:
        authorities = tlsauth.load_authorities(path.read_bytes())
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot load --requestheader-client-ca-file {path}: {err}") from err
    return RequestHeaderConfig(
        authorities,
        tuple(args.requestheader_allowed_names),
        tuple(args.requestheader_username_headers),
        tuple(args.requestheader_group_headers),
        tuple(args.requestheader_extra_headers_prefix),
    )


def _static_parts(
    args: argparse.Namespace, client_authorities: list[x509.Certificate] | None = None
) -> Authenticator | None:
    """Static tokens and client certificates (--client-ca-file wins over the cluster's)."""
    try:
        tokens = load_tokens(args.token_auth_file) if args.token_auth_file is not None else None
    except TokenFileError as err:
        raise CommandError(str(err)) from err
    if args.client_ca_file is not None:
        try:
            client_authorities = tlsauth.load_authorities(args.client_ca_file.read_bytes())
        except (OSError, ValueError) as err:
            raise CommandError(f"cannot load client CA file {args.client_ca_file}: {err}") from err
    if not tokens and not client_authorities:
        return None
    return Authenticator(tokens, client_authorities)


def authenticator(args: argparse.Namespace) -> RequestAuthenticator:
    """Without a cluster: the front proxy, client certificates and static tokens."""
    front = request_header_config(args)
    static = _static_parts(args)
    chain: list[RequestAuthenticator] = [FrontProxyAuthenticator(front)] if front else []
    chain += [static] if static is not None else []
    if not chain:
        raise CommandError(
            "no authentication configured: give --token-auth-file, --client-ca-file or "
            "--requestheader-client-ca-file"
        )
    return chain[0] if len(chain) == 1 else ChainAuthenticator(chain)


def serving_context(args: argparse.Namespace, auth: RequestAuthenticator) -> ssl.SSLContext:
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
    if auth.wants_client_certificates:
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
    # What else to close, last first: the inventory's watches, the review client.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
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


USAGE_PATH = "/metrics/usage"
DASHBOARD_PATHS = ("/dashboard", "/dashboard/*")


def open_history(args: argparse.Namespace) -> History | None:
    """The history file of --history-file, opened (or reopened: restarts keep it)."""
    path: Path | None = getattr(args, "history_file", None)
    if path is None:
        return None
    try:
        tiers = parse_tiers(args.history_tiers)
    except ValueError as err:
        raise CommandError(f"--history-tiers: {err}") from err
    max_size = args.history_max_size
    try:
        return History(path, tiers, int(max_size) if max_size else None)
    except (OSError, ValueError, sqlite3.Error) as err:
        raise CommandError(f"cannot open history file {path}: {err}") from err


def prometheus_url(args: argparse.Namespace, dashboard: bool) -> str | None:
    """--prometheus-url, checked before anything starts."""
    url: str | None = getattr(args, "prometheus_url", None)
    if url is None:
        return None
    if not dashboard:
        raise CommandError("--prometheus-url is where the dashboard reads history: add --dashboard")
    try:
        return check_url(url)
    except ValueError as err:
        raise CommandError(f"--prometheus-url: {err}") from None


def chart_source(
    url: str | None, history: History | None, closers: list[Callable[[], Awaitable[None]]]
) -> SeriesSource | None:
    """Where the dashboard's charts come from: Prometheus when given, else the history file."""
    if url is not None:
        source = PrometheusHistory(url, timeout=PROMETHEUS_TIMEOUT)
        closers.append(source.close)
        log.info("dashboard charts from Prometheus at %s", source.shown)
        return source
    return SqliteSeries(history) if history is not None else None


PROMETHEUS_TIMEOUT = 10.0
"""Seconds the dashboard waits for one Prometheus query before answering 502."""


async def start_server(
    args: argparse.Namespace,
    inventory: Inventory,
    kubelet_token: str | None,
    auth: RequestAuthenticator,
    serve_core_api: bool = False,
    *,
    authorizer: Authorizer | None = None,
    kubelet_defaults: KubeletDefaults = KubeletDefaults(),
    dashboard: bool = False,
    cluster: Credentials | None = None,
) -> RunningServer:
    """cluster, for the dashboard's Kubernetes mode: the API server it calls with each
    user's own token; None (--targets) leaves it in local mode, without actions."""
    selector = node_selector(args)
    charts_url = prometheus_url(args, dashboard)
    store = MetricsStore(args.metric_resolution)
    metrics = SelfMetrics(store, args.metric_resolution)
    client = KubeletClient(client_config(args, kubelet_token, kubelet_defaults))
    await client.start()
    history = open_history(args)
    pod_list = RenderedPods(store)
    manager = ScrapeManager(
        client,
        store,
        inventory,
        args.metric_resolution,
        selector,
        observer=metrics,
        recorder=Recorders(
            pod_list,
            HistoryRecorder(store, history) if history is not None else None,
            # The dashboard's pod index, prepared after each cycle while it is watched.
            pod_index(store, inventory) if dashboard else None,
        ),
    )
    parts = ServerParts(
        store=store,
        inventory=inventory,
        scraping=manager,
        authenticator=auth,
        registry=metrics.registry,
        serve_core_api=serve_core_api,
        node_selector=selector,
        authorizer=authorizer or AlwaysAllow(),
        # The dashboard checks its own sessions (a token at login, then a cookie).
        always_allow_paths=AlwaysAllowPaths(
            [*args.authorization_always_allow_paths, *(DASHBOARD_PATHS if dashboard else ())]
        ),
        pod_list=pod_list,
    )
    app = make_app(parts)
    closers: list[Callable[[], Awaitable[None]]] = []
    if dashboard:
        series = chart_source(charts_url, history, closers)
        mount_dashboard(app, DashboardParts(store, inventory, series, auth, cluster=cluster))
    # Every node, pod, container and namespace series, for a Prometheus to keep history.
    app.router.add_get(USAGE_PATH, prometheus_handler(store, inventory))
    ctx = serving_context(args, auth)
    try:
        runner, port = await serving.start(app, args.bind_address, args.secure_port, ctx)
    except CommandError:
        await client.close()
        for close in reversed(closers):
            await close()
        if history is not None:
            await asyncio.to_thread(history.close)
        raise
    tasks = [asyncio.create_task(manager.run())]
    log.info("serving metrics.k8s.io on %s", serving.url(args.bind_address, port))
    running = RunningServer(runner, port, manager, store, tasks, client, closers)
    if history is not None:
        running.history = history
        running.closers.append(lambda: asyncio.to_thread(history.close))
        log.info("recording history in %s", history.path)
    return running


def tune_for_many_nodes() -> None:
    """Process settings for a server that keeps thousands of nodes and connections.

    - asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size);
      at one keep-alive connection per node that is 1.25 GiB for 5,000 nodes, while a
      kubelet's answer is about 30 KiB, 5 KiB gzipped. 16 KiB holds a full TLS record.
    - The inventory lives as long as the process: freeze it out of the collector's
      walks, and collect young objects less often, since scrape results are freed by
      reference counting and hardly ever form cycles.
    """
    asyncio.sslproto.SSLProtocol.max_size = 16 * 1024
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
        return await run_against_cluster(args)
    if args.kubeconfig is not None or args.context is not None:
        raise CommandError("--targets cannot be used with --kubeconfig or --context")
    try:
        # In a child process: the parse's peak never becomes the server's resident size.
        inventory = StaticInventory.from_file_isolated(args.targets)
    except ObjectError as err:
        raise CommandError(str(err)) from err
    tune_for_many_nodes()
    auth = authenticator(args)
    server = await start_server(
        args, inventory, read_token(args.kubelet_token_file), auth, dashboard=args.dashboard
    )
    return await serve_until_signalled(args, server)


async def serve_until_signalled(args: argparse.Namespace, server: RunningServer) -> int:
    print(f"kubepulse server: {serving.url(args.bind_address, server.port)}", flush=True)
    try:
        await serving.until_signalled()
    finally:
        await server.stop()
    return 0


# ----- against a cluster


@dataclass(frozen=True)
class Cluster:
    """Where the Kubernetes API is and how to speak to it."""

    creds: Credentials
    token_file: Path | None = None
    """The service account's token file, read again as the kubelet rotates it."""
    ca_file: Path | None = None
    """The service account's CA file."""


def cluster(
    args: argparse.Namespace,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> Cluster:
    """--kubeconfig (and --context), else the pod's service account, as metrics-server's
    --kubeconfig (empty: client-go's rest.InClusterConfig)."""
    try:
        if args.kubeconfig is not None:
            return Cluster(kubeconfig.load(str(args.kubeconfig), args.context))
        if args.context is not None:
            raise CommandError(
                "--context needs --kubeconfig: without it the server uses the in-cluster "
                "service account"
            )
        creds = in_cluster(service_account_dir, environ)
    except KubeconfigError as err:
        if args.kubeconfig is not None:
            raise CommandError(str(err)) from err
        raise CommandError(
            "no nodes to scrape: give --targets FILE or --kubeconfig FILE, or run in a pod "
            f"with a service account: {err}"
        ) from err
    return Cluster(creds, service_account_dir / "token", service_account_dir / "ca.crt")


def kubelet_defaults(where: Cluster, tmp: Path) -> KubeletDefaults:
    """The cluster's credentials for kubelets. ssl only loads CAs and key pairs from files:
    inline kubeconfig data goes to owner-only files in tmp, for the caller to remove once
    the kubelet client has built its TLS context."""
    creds = where.creds
    ca_file = where.ca_file
    if ca_file is None and creds.ca_pem:
        ca_file = tmp / "ca.crt"
        ca_file.write_bytes(creds.ca_pem)
    cert = key = None
    if creds.client_cert_pem and creds.client_key_pem:
        cert, key = tmp / "client.crt", tmp / "client.key"
        key.touch(mode=0o600)
        key.write_bytes(creds.client_key_pem)
        cert.write_bytes(creds.client_cert_pem)
    return KubeletDefaults(creds.token, ca_file, creds.insecure, cert, key, where.token_file)


EXTENSION_AUTH_READER_HINT = (
    "; let the server's account read it (kubectl create rolebinding -n kube-system "
    "ROLEBINDING_NAME --role=extension-apiserver-authentication-reader "
    "--serviceaccount=YOUR_NS:YOUR_SA) or give --requestheader-client-ca-file and "
    "--client-ca-file"
)


async def cluster_authentication(
    args: argparse.Namespace, reviews: ReviewClient
) -> ClusterAuthentication | None:
    """The ConfigMap, read when a CA flag is missing (upstream's lookup of missing config
    in DelegatingAuthenticationOptions); failing to read it stops the server, as upstream
    does unless --authentication-tolerate-lookup-failure."""
    if args.requestheader_client_ca_file is not None and args.client_ca_file is not None:
        return None
    try:
        return await read_cluster_authentication(reviews)
    except ApiError as err:
        raise CommandError(
            "cannot read configmap kube-system/extension-apiserver-authentication: "
            f"{err.code} {err.reason}: {err.message}{EXTENSION_AUTH_READER_HINT}"
        ) from err
    except Unreachable as err:
        raise CommandError(f"cannot reach the Kubernetes API: {err}") from err
    except AuthConfigError as err:
        raise CommandError(str(err)) from err


async def cluster_authenticator(
    args: argparse.Namespace, reviews: ReviewClient
) -> ChainAuthenticator:
    """The front proxy, client certificates, static tokens, then TokenReview: the order
    of the apiserver's delegating authenticator (front proxy, x509, tokens)."""
    found = await cluster_authentication(args, reviews)
    front = request_header_config(args) or (found.request_header if found else None)
    static = _static_parts(args, found.client_authorities if found else None)
    chain: list[RequestAuthenticator] = [FrontProxyAuthenticator(front)] if front else []
    chain += [static] if static is not None else []
    chain.append(TokenReviewAuthenticator(reviews, args.authentication_token_webhook_cache_ttl))
    return ChainAuthenticator(chain)


async def start_inventory(inventory: KubeInventory, timeout: float, server: str) -> None:
    """List and watch; return once both lists are in (upstream's WaitForCacheSync), or
    fail with why, so that the first scrape knows every node."""
    await inventory.start()
    try:
        await asyncio.wait_for(inventory.synced.wait(), timeout)
    except TimeoutError:
        reason = (
            inventory.node_reflector.last_error or inventory.pod_reflector.last_error or "no answer"
        )
        await inventory.stop()
        raise CommandError(
            f"nodes and pods were not listed from {server} within {timeout:g}s: {reason}"
        ) from None
    except BaseException:
        await inventory.stop()
        raise


async def start_cluster_server(args: argparse.Namespace, where: Cluster) -> RunningServer:
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        reviews = ReviewClient(where.creds, token_file=where.token_file)
        await reviews.__aenter__()
        closers.append(lambda: reviews.__aexit__(None, None, None))
        auth = await cluster_authenticator(args, reviews)
        authorizer = SubjectAccessReviewAuthorizer(
            reviews,
            args.authorization_webhook_cache_authorized_ttl,
            args.authorization_webhook_cache_unauthorized_ttl,
        )
        inventory = KubeInventory(
            KubeClient(where.creds, token_file=where.token_file),
            node_selector=args.node_selector,
        )
        await start_inventory(inventory, args.cache_sync_timeout, where.creds.server)
        closers.append(inventory.stop)
        kubelet_token = read_token(args.kubelet_token_file)
        with tempfile.TemporaryDirectory(prefix="kubepulse-kubelet-") as tmp:
            server = await start_server(
                args,
                inventory,
                kubelet_token,
                auth,
                authorizer=authorizer,
                kubelet_defaults=kubelet_defaults(where, Path(tmp)),
                dashboard=args.dashboard,
                # Where the API is and its CA, never the server's own token or certificate.
                cluster=without_credentials(where.creds),
            )
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    server.closers.extend(closers)
    return server


async def run_against_cluster(args: argparse.Namespace) -> int:
    where = cluster(args)
    server = await start_cluster_server(args, where)
    tune_for_many_nodes()
    return await serve_until_signalled(args, server)
