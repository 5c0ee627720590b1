"""`kubepulse csr-approver`: approve kubelet serving-certificate CSRs that pass every check.

It lists and watches CertificateSigningRequests for kubernetes.io/kubelet-serving and
decides each pending one with kubepulse.kube.csr.decide: approved when every check of
postfinance/kubelet-csr-approver (and kube-apiserver's kubelet-serving rules, and the
node's own addresses) passes, denied with the failing check's reason otherwise. Denying,
not leaving the request pending, is upstream's behaviour (csr_controller.go appends a
Denied condition; --skip-deny-step leaves it pending instead), so a forged request is
visibly refused and the kubelet asks again. Credentials: --kubeconfig/--context, else
the pod's service account.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re

from kubepulse.cli.errors import CommandError
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import SERVICE_ACCOUNT_DIR, ApiError, KubeClient, Unreachable, in_cluster
from kubepulse.kube.csr import (
    DEFAULT_ALLOWED_DNS_NAMES,
    MAX_EXPIRATION_SECONDS,
    ApproverConfig,
    ip_prefixes,
)
from kubepulse.kube.csr_approver import Approver
from kubepulse.kube.kubeconfig import KubeconfigError
from kubepulse.server import serving

log = logging.getLogger("kubepulse.csr-approver")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=None, help="default: the pod's service account")
    p.add_argument("--context", default=None)
    p.add_argument(
        "--provider-regex",
        default=".*",
        help="every DNS SAN must match it (Go's MatchString: anywhere, so anchor it)",
    )
    p.add_argument(
        "--allowed-dns-names",
        "--max-dns-sans",
        dest="allowed_dns_names",
        type=int,
        default=DEFAULT_ALLOWED_DNS_NAMES,
        help="at most this many DNS SANs (upstream default 1)",
    )
    p.add_argument(
        "--bypass-hostname-check",
        action="store_true",
        help="DNS SANs need not start with the node name",
    )
    p.add_argument(
        "--provider-ip-prefixes",
        "--allowed-ip-prefixes",
        dest="provider_ip_prefixes",
        default="0.0.0.0/0,::/0",
        help="every IP SAN must lie in one of these CIDRs",
    )
    p.add_argument(
        "--max-expiration-sec",
        type=int,
        default=MAX_EXPIRATION_SECONDS,
        help="largest spec.expirationSeconds approved (at most 367 days)",
    )
    p.add_argument(
        "--ignore-non-system-node",
        action="store_true",
        help="leave requests from users other than system:node:* alone instead of denying",
    )
    p.add_argument(
        "--skip-deny-step",
        action="store_true",
        help="leave failing requests pending instead of denying them",
    )
    p.add_argument("--once", action="store_true", help="decide the pending requests and exit")
    p.set_defaults(run=run)


def approver_config(args: argparse.Namespace) -> ApproverConfig:
    try:
        regex = re.compile(args.provider_regex)
    except re.error as err:
        raise CommandError(f"invalid --provider-regex: {err}") from err
    try:
        return ApproverConfig(
            provider_regex=regex,
            allowed_dns_names=args.allowed_dns_names,
            bypass_hostname_check=args.bypass_hostname_check,
            provider_ip_prefixes=ip_prefixes(args.provider_ip_prefixes),
            max_expiration_seconds=args.max_expiration_sec,
            ignore_non_system_node=args.ignore_non_system_node,
        )
    except ValueError as err:
        raise CommandError(str(err)) from err


def client_for(args: argparse.Namespace) -> KubeClient:
    try:
        if args.kubeconfig or args.context:
            return KubeClient(kubeconfig.load(args.kubeconfig, args.context))
        return KubeClient(in_cluster(), token_file=SERVICE_ACCOUNT_DIR / "token")
    except KubeconfigError as err:
        raise CommandError(str(err)) from err


async def run(args: argparse.Namespace) -> int:
    config = approver_config(args)
    client = client_for(args)
    async with client:
        approver = Approver(client, config, skip_deny=args.skip_deny_step)
        if args.once:
            try:
                await approver.pending()
            except (ApiError, Unreachable) as err:
                raise CommandError(str(err)) from err
            return 0
        watching = asyncio.create_task(approver.watch())
        signalled = asyncio.create_task(serving.until_signalled())
        await asyncio.wait({watching, signalled}, return_when=asyncio.FIRST_COMPLETED)
        for task in (watching, signalled):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0
