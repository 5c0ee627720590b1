"""`kubepulse server`: a drop-in metrics-server. Flag names and meanings are upstream's.

This module only reads the command line into a ServerConfig; kubepulse/server runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kubepulse.audit.backends import BatchOptions, TruncateOptions
from kubepulse.cli import flags, server_flags
from kubepulse.server import run as server_run
from kubepulse.server.config import (
    DEFAULT_MAX_SIZE,
    AuditOptions,
    AuthOptions,
    HistoryOptions,
    KubeletOptions,
    ServerConfig,
    ServingOptions,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    server_flags.add_server_flags(p)
    own = p.add_argument_group("Kubepulse flags")
    own.add_argument(
        "--targets",
        type=Path,
        metavar="string",
        help="YAML file of Node (and Pod) objects to scrape, instead of a cluster",
    )
    own.add_argument("--context", metavar="string", help="the --kubeconfig context to use")
    own.add_argument(
        "--cache-sync-timeout",
        type=flags.duration,
        default=60.0,
        metavar="duration",
        help="give up starting when nodes and pods are not listed within this time",
    )
    own.add_argument(
        "--kubelet-token-file", type=Path, metavar="string", help="bearer token sent to kubelets"
    )
    own.add_argument(
        "--kubelet-use-summary-api",
        action="store_true",
        help="scrape /stats/summary instead of /metrics/resource",
    )
    own.add_argument(
        "--token-auth-file",
        type=Path,
        metavar="string",
        help='static tokens: token,user,uid,"groups"',
    )
    flags.add_connection_flags(own)
    add_history_flags(
        own, "record every scrape in this SQLite file (kubepulse up: STATE_DIR/history.db)"
    )
    own.add_argument(
        "--history-pressure-interval",
        type=flags.duration,
        default=0.0,
        metavar="duration",
        help="also record each node's OOM kills and CPU throttling from /metrics/cadvisor"
        " this often (0: not; a kubelet's answer is megabytes, an agent's a few lines)",
    )
    own.add_argument(
        "--prometheus-url",
        metavar="string",
        help="the dashboard's charts read history from this Prometheus (its HTTP API, "
        "e.g. http://prometheus:9090) instead of --history-file",
    )
    own.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the web UI at /dashboard/ (sign in with a token the server accepts)",
    )
    p.set_defaults(run=run)


def add_history_flags(p: argparse._ActionsContainer, file_help: str) -> None:
    """--history-file, --history-tiers and --history-max-size (read by open_history)."""
    p.add_argument("--history-file", type=Path, metavar="string", help=file_help)
    p.add_argument(
        "--history-tiers",
        metavar="string",
        default="raw=1h,1m=24h,15m=30d",
        help="what the history keeps: raw and averaged tiers with their retention",
    )
    p.add_argument(
        "--history-max-size",
        type=flags.quantity,
        metavar="quantity",
        help=f"cap on the history file (default {DEFAULT_MAX_SIZE >> 30}Gi, 0 for none):"
        " the oldest coarse data goes first",
    )


def kubelet_options(args: argparse.Namespace) -> KubeletOptions:
    return KubeletOptions(
        preferred_address_types=tuple(args.kubelet_preferred_address_types),
        port=args.kubelet_port,
        use_node_status_port=args.kubelet_use_node_status_port,
        request_timeout=args.kubelet_request_timeout,
        certificate_authority=args.kubelet_certificate_authority,
        certificate_authority_text=args.kubelet_certificate_authority_text or "",
        completely_insecure=args.deprecated_kubelet_completely_insecure,
        insecure_tls=args.kubelet_insecure_tls,
        client_certificate=args.kubelet_client_certificate,
        client_key=args.kubelet_client_key,
        token_file=args.kubelet_token_file,
        use_summary_api=args.kubelet_use_summary_api,
    )


def batch_options(args: argparse.Namespace, backend: str) -> BatchOptions:
    """--audit-BACKEND-batch-*."""
    return BatchOptions(
        buffer_size=getattr(args, f"audit_{backend}_batch_buffer_size"),
        max_size=getattr(args, f"audit_{backend}_batch_max_size"),
        max_wait=getattr(args, f"audit_{backend}_batch_max_wait"),
        throttle_enable=getattr(args, f"audit_{backend}_batch_throttle_enable"),
        throttle_qps=getattr(args, f"audit_{backend}_batch_throttle_qps"),
        throttle_burst=getattr(args, f"audit_{backend}_batch_throttle_burst"),
    )


def truncate_options(args: argparse.Namespace, backend: str) -> TruncateOptions:
    """--audit-BACKEND-truncate-*."""
    return TruncateOptions(
        enabled=getattr(args, f"audit_{backend}_truncate_enabled"),
        max_event_size=getattr(args, f"audit_{backend}_truncate_max_event_size"),
        max_batch_size=getattr(args, f"audit_{backend}_truncate_max_batch_size"),
    )


def history_options(args: argparse.Namespace) -> HistoryOptions:
    """What add_history_flags (and --prometheus-url, where given) read."""
    max_size = args.history_max_size
    return HistoryOptions(
        file=args.history_file,
        tiers=args.history_tiers,
        max_size=DEFAULT_MAX_SIZE if max_size is None else (int(max_size) or None),
        prometheus_url=getattr(args, "prometheus_url", None),
        pressure_interval=getattr(args, "history_pressure_interval", 0.0),
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
            tls_min_version=args.tls_min_version or "",
            tls_cipher_suites=tuple(args.tls_cipher_suites),
            tls_sni_cert_keys=tuple(args.tls_sni_cert_key),
            permit_address_sharing=args.permit_address_sharing,
            permit_port_sharing=args.permit_port_sharing,
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
            authentication_kubeconfig=args.authentication_kubeconfig,
            authorization_kubeconfig=args.authorization_kubeconfig,
            skip_lookup=args.authentication_skip_lookup,
            tolerate_lookup_failure=args.authentication_tolerate_lookup_failure,
        ),
        history=history_options(args),
        audit=AuditOptions(
            policy_file=args.audit_policy_file,
            log_path=args.audit_log_path or "",
            log_format=args.audit_log_format,
            log_max_age_days=args.audit_log_maxage,
            log_max_backups=args.audit_log_maxbackup,
            log_max_size_mb=args.audit_log_maxsize,
            log_compress=args.audit_log_compress,
            log_mode=args.audit_log_mode,
            log_batch=batch_options(args, "log"),
            log_truncate=truncate_options(args, "log"),
            log_version=args.audit_log_version,
            webhook_config_file=args.audit_webhook_config_file,
            webhook_mode=args.audit_webhook_mode,
            webhook_batch=batch_options(args, "webhook"),
            webhook_initial_backoff=args.audit_webhook_initial_backoff,
            webhook_truncate=truncate_options(args, "webhook"),
            webhook_version=args.audit_webhook_version,
        ),
        dashboard=args.dashboard,
        targets=args.targets,
        kubeconfig=args.kubeconfig,
        context=args.context,
        cache_sync_timeout=args.cache_sync_timeout,
        ignored_flags=tuple(
            (flag, why)
            for flag, why in server_flags.IGNORED_REASONS.items()
            if flag in getattr(args, "changed", ())
        ),
    )


async def run(args: argparse.Namespace) -> int:
    return await server_run.run(config(args))
