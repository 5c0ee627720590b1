"""kubectl's flags for choosing and overriding the kubeconfig (clientcmd's
RecommendedConfigOverrideFlags), shared by every command that reads one for a user."""

from __future__ import annotations

import argparse

from kubepulse.cli.errors import CommandError
from kubepulse.kube.kubeconfig import KubeconfigError, Overrides, parse_timeout


def add_kubeconfig_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig", default=None, help="the cluster (default: $KUBECONFIG, ~/.kube/config)"
    )
    p.add_argument("--context", default=None, help="the kubeconfig context to use")
    p.add_argument("--cluster", default=None, help="the kubeconfig cluster to use")
    p.add_argument("--user", default=None, help="the kubeconfig user to use")
    p.add_argument("-s", "--server", default=None, help="the address of the API server")
    p.add_argument("--token", default=None, help="bearer token for the API server")
    p.add_argument("--certificate-authority", default=None, help="a CA file for the API server")
    p.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        help="do not verify the API server's certificate (logs a warning)",
    )
    p.add_argument("--tls-server-name", default=None, help="the name its certificate must have")
    p.add_argument("--as", dest="as_user", default=None, help="user to impersonate")
    p.add_argument(
        "--as-group", action="append", default=[], help="group to impersonate (repeatable)"
    )
    p.add_argument("--as-uid", default=None, help="UID to impersonate")
    p.add_argument(
        "--request-timeout",
        default="0",
        help="how long to wait for one request (1s, 2m; 0: no limit)",
    )


def overrides(args: argparse.Namespace) -> Overrides:
    """The flags as clientcmd.ConfigOverrides; --request-timeout checked as kubectl does."""
    try:
        timeout = parse_timeout(args.request_timeout)
    except KubeconfigError as err:
        raise CommandError(str(err)) from err
    return Overrides(
        cluster=args.cluster,
        user=args.user,
        server=args.server,
        token=args.token,
        certificate_authority=args.certificate_authority,
        insecure_skip_tls_verify=args.insecure_skip_tls_verify,
        tls_server_name=args.tls_server_name,
        as_user=args.as_user,
        as_groups=tuple(args.as_group),
        as_uid=args.as_uid,
        request_timeout=timeout or None,
    )
