"""`kubepulse server`: a drop-in metrics-server. Flag names and meanings are upstream's.

This module only reads the command line into a ServerConfig; kubepulse/server runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kubepulse.api.authz import DEFAULT_ALWAYS_ALLOW_PATHS
from kubepulse.cli import flags
from kubepulse.server import run as server_run
from kubepulse.server.config import (
    DEFAULT_MAX_SIZE,
    AuthOptions,
    HistoryOptions,
    KubeletOptions,
    ServerConfig,
    ServingOptions,
)


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
        help=f"cap on the history file (default {DEFAULT_MAX_SIZE >> 30}Gi, 0 for none):"
        " the oldest coarse data goes first",
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
    flags.add_connection_flags(p)
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


def kubelet_options(args: argparse.Namespace) -> KubeletOptions:
    return KubeletOptions(
        preferred_address_types=names(args.kubelet_preferred_address_types),
        port=args.kubelet_port,
        use_node_status_port=args.kubelet_use_node_status_port,
        request_timeout=args.kubelet_request_timeout,
        certificate_authority=args.kubelet_certificate_authority,
        insecure_tls=args.kubelet_insecure_tls,
        client_certificate=args.kubelet_client_certificate,
        client_key=args.kubelet_client_key,
        token_file=args.kubelet_token_file,
        use_summary_api=args.kubelet_use_summary_api,
    )


def history_options(args: argparse.Namespace) -> HistoryOptions:
    """What add_history_flags (and --prometheus-url, where given) read."""
    max_size = args.history_max_size
    return HistoryOptions(
        file=args.history_file,
        tiers=args.history_tiers,
        max_size=DEFAULT_MAX_SIZE if max_size is None else (int(max_size) or None),
        prometheus_url=getattr(args, "prometheus_url", None),
    )


def config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        metric_resolution=args.metric_resolution,
        node_selector=args.node_selector,
        kubelet=kubelet_options(args),
        serving=ServingOptions(
            bind_address=args.bind_address,
            secure_port=args.secure_port,
            tls_cert_file=args.tls_cert_file,
            tls_private_key_file=args.tls_private_key_file,
            cert_dir=args.cert_dir,
            max_connections=args.max_connections,
        ),
        auth=AuthOptions(
            token_auth_file=args.token_auth_file,
            client_ca_file=args.client_ca_file,
            requestheader_client_ca_file=args.requestheader_client_ca_file,
            requestheader_allowed_names=tuple(args.requestheader_allowed_names),
            requestheader_username_headers=tuple(args.requestheader_username_headers),
            requestheader_group_headers=tuple(args.requestheader_group_headers),
            requestheader_extra_headers_prefix=tuple(args.requestheader_extra_headers_prefix),
            token_webhook_cache_ttl=args.authentication_token_webhook_cache_ttl,
            authorized_cache_ttl=args.authorization_webhook_cache_authorized_ttl,
            unauthorized_cache_ttl=args.authorization_webhook_cache_unauthorized_ttl,
            always_allow_paths=tuple(args.authorization_always_allow_paths),
        ),
        history=history_options(args),
        dashboard=args.dashboard,
        targets=args.targets,
        kubeconfig=args.kubeconfig,
        context=args.context,
        cache_sync_timeout=args.cache_sync_timeout,
    )


async def run(args: argparse.Namespace) -> int:
    return await server_run.run(config(args))
