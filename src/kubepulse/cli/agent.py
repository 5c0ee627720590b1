"""`kubepulse agent`: kubelet-compatible resource stats for a host without a kubelet."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kubepulse import pki
from kubepulse.agent import bootstrap, cgroups
from kubepulse.agent.collector import Collector
from kubepulse.agent.procfs import ProcFS
from kubepulse.agent.server import (
    AgentState,
    make_app,
    serving_context,
    serving_files,
    ssl_context,
)
from kubepulse.agent.workloads import RuntimeMetadata
from kubepulse.api.authn import (
    AuthConfigError,
    Authenticator,
    NoAuthentication,
    TokenFileError,
    from_files,
)
from kubepulse.cli import flags
from kubepulse.cli.errors import CommandError
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import SERVICE_ACCOUNT_DIR, KubeClient, in_cluster
from kubepulse.kube.kubeconfig import KubeconfigError
from kubepulse.model import Resources
from kubepulse.server import serving

log = logging.getLogger("kubepulse.agent")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_agent_flags(p)
    p.set_defaults(run=run)


def add_agent_flags(p: argparse.ArgumentParser) -> None:
    # Flag names are the kubelet's where the kubelet has one.
    p.add_argument("--address", default="0.0.0.0", help="IP address to serve on")
    p.add_argument("--port", type=int, default=10250, help="HTTPS port (0: any free port)")
    p.add_argument("--hostname-override", default=None, help="node name (default: hostname)")
    p.add_argument("--tls-cert-file", type=Path, help="serving certificate (PEM)")
    p.add_argument("--tls-private-key-file", type=Path, help="serving key (PEM)")
    p.add_argument(
        "--cert-dir",
        type=Path,
        default=Path("/var/lib/kubepulse/pki"),
        help="where a CA and serving certificate are made when no files are given",
    )
    p.add_argument("--client-ca-file", type=Path, help="CA that signs accepted client certs")
    p.add_argument("--token-file", type=Path, help="bearer tokens: one token, or token,user,uid")
    p.add_argument(
        "--authentication-skip",
        action="store_true",
        help="serve anyone without authentication (insecure; logs a warning)",
    )
    p.add_argument(
        "--housekeeping-interval",
        type=flags.duration,
        default=10.0,
        help="how often cgroups are read (default 10s, as cAdvisor in the kubelet)",
    )
    p.add_argument(
        "--system-reserved",
        type=flags.reserved,
        default=Resources(),
        help="resources kept from allocatable, e.g. cpu=500m,memory=1Gi",
    )
    add_bootstrap_flags(p)
    p.add_argument("--proc-root", type=Path, default=Path("/proc"), help=argparse.SUPPRESS)
    p.add_argument("--runtime-root", type=Path, default=Path("/"), help=argparse.SUPPRESS)


def add_bootstrap_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        action="store_true",
        help="get the serving certificate from a kubernetes.io/kubelet-serving CSR and renew "
        "it before expiry (the kubelet's serverTLSBootstrap)",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="the node's credentials for --bootstrap (default: the pod's service account)",
    )
    p.add_argument(
        "--bootstrap-ca-dir",
        type=Path,
        default=None,
        help="sign the bootstrap request with the CA in this directory (ca.crt, ca.key), "
        "as `kubepulse up` does, instead of through the API; implies --bootstrap",
    )
    p.add_argument(
        "--bootstrap-timeout",
        type=flags.duration,
        default=bootstrap.WAIT_TIMEOUT,
        help="how long to wait for the CSR to be approved and issued (default 15m)",
    )
    p.add_argument(
        "--bootstrap-cert-lifetime",
        type=flags.duration,
        default=None,
        help="requested lifetime (spec.expirationSeconds, at least 10m; default: the "
        "signer's); with --bootstrap-ca-dir the lifetime signed (default 1 year)",
    )
    p.add_argument(
        "--node-ip",
        default=None,
        help="comma-separated IP SANs of the bootstrap certificate (default: --address, "
        "or every non-loopback address when it is 0.0.0.0)",
    )


def bootstrap_signer(args: argparse.Namespace) -> bootstrap.Signer | None:
    """The signer --bootstrap asks, or None to serve a given or self-made certificate."""
    if not (args.bootstrap or args.bootstrap_ca_dir):
        return None
    if args.tls_cert_file or args.tls_private_key_file:
        raise CommandError(
            "--bootstrap and --tls-cert-file/--tls-private-key-file exclude each other"
        )
    lifetime: float | None = args.bootstrap_cert_lifetime
    if args.bootstrap_ca_dir is not None:
        if args.kubeconfig:
            raise CommandError("--bootstrap-ca-dir and --kubeconfig exclude each other")
        ca_dir: Path = args.bootstrap_ca_dir
        try:
            ca = pki.KeyPair.load(ca_dir / "ca.crt", ca_dir / "ca.key")
        except (OSError, ValueError) as err:
            raise CommandError(f"cannot load the CA in {ca_dir}: {err}") from err
        return bootstrap.LocalSigner(ca, lifetime or bootstrap.LOCAL_LIFETIME)
    if lifetime is not None and lifetime < bootstrap.MIN_EXPIRATION_SECONDS:
        raise CommandError("--bootstrap-cert-lifetime must be at least 10m (expirationSeconds)")
    try:
        if args.kubeconfig:
            client = KubeClient(kubeconfig.load(args.kubeconfig, None))
        else:
            client = KubeClient(in_cluster(), token_file=SERVICE_ACCOUNT_DIR / "token")
    except KubeconfigError as err:
        raise CommandError(str(err)) from err
    expiration = None if lifetime is None else int(lifetime)
    return bootstrap.APISigner(client, expiration, args.bootstrap_timeout)


def bootstrap_template(args: argparse.Namespace, node_name: str) -> bootstrap.Template:
    node_ips = [ip for ip in (args.node_ip or "").split(",") if ip.strip()]
    try:
        return bootstrap.Template(node_name, bootstrap.serving_ips(args.address, node_ips))
    except ValueError as err:
        raise CommandError(f"invalid --node-ip or --address: {err}") from err


def build_authenticator(args: argparse.Namespace) -> Authenticator:
    if args.authentication_skip:
        log.warning(
            "--authentication-skip: anyone who reaches this port can read its stats; "
            "use only on a trusted network"
        )
    try:
        return from_files(args.token_file, args.client_ca_file, skip=args.authentication_skip)
    except NoAuthentication as err:
        raise CommandError(
            "no authentication configured: give --token-file or --client-ca-file "
            "(or --authentication-skip, insecure)"
        ) from err
    except (AuthConfigError, TokenFileError) as err:
        raise CommandError(str(err)) from err


def build_state(args: argparse.Namespace, node_name: str) -> AgentState:
    try:
        hierarchy = cgroups.detect_host(args.proc_root)
        proc = ProcFS(args.proc_root)
    except (cgroups.CgroupError, OSError) as err:
        raise CommandError(str(err)) from err
    collector = Collector(
        node_name, hierarchy, proc, RuntimeMetadata(args.runtime_root), args.system_reserved
    )
    state = AgentState(collector)
    try:
        state.refresh()
    except RuntimeError as err:
        raise CommandError(str(err)) from err
    log.info(
        "cgroups %s; %d pods found", hierarchy.mode, len(state.latest.pods if state.latest else ())
    )
    return state


@dataclass
class RunningAgent:
    runner: web.AppRunner
    port: int
    state: AgentState
    housekeeping: asyncio.Task[None]
    certificates: bootstrap.ServingCertificate | None = None
    rotation: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        for task in (self.housekeeping, self.rotation):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.certificates is not None:
            await self.certificates.signer.close()
        await self.runner.cleanup()


async def start_agent(args: argparse.Namespace) -> RunningAgent:
    node_name = args.hostname_override or socket.gethostname()
    authenticator = build_authenticator(args)
    signer = bootstrap_signer(args)
    state = build_state(args, node_name)
    client_certs = bool(authenticator.client_authorities)
    if signer is None:
        files = serving_files(
            args.tls_cert_file, args.tls_private_key_file, args.cert_dir, node_name, args.address
        )
        try:
            ctx = ssl_context(files, request_client_certs=client_certs)
        except (OSError, ValueError) as err:
            raise CommandError(f"cannot load serving certificate: {err}") from err
    else:
        ctx = serving_context(request_client_certs=client_certs)
    runner, port = await serving.start(make_app(state, authenticator), args.address, args.port, ctx)
    certificates = None
    if signer is not None:
        certificates = bootstrap.ServingCertificate(
            signer, bootstrap_template(args, node_name), args.cert_dir, ctx
        )
        # The kubelet with serverTLSBootstrap listens at once but fails every handshake
        # ("no serving certificate available for the kubelet") until its CSR is issued:
        # so does the agent, whose context has no certificate until then.
        try:
            await certificates.start()
        except BaseException as err:
            await signer.close()
            await runner.cleanup()
            if isinstance(err, bootstrap.BootstrapError):
                raise CommandError(str(err)) from err
            raise
    task = asyncio.create_task(state.housekeeping(args.housekeeping_interval))
    rotation = asyncio.create_task(certificates.rotate_forever()) if certificates else None
    log.info("agent for node %s serving on %s", node_name, serving.url(args.address, port))
    return RunningAgent(runner, port, state, task, certificates, rotation)


async def run(args: argparse.Namespace) -> int:
    agent = await start_agent(args)
    print(f"kubepulse agent: {serving.url(args.address, agent.port)}/metrics/resource", flush=True)
    try:
        await serving.until_signalled()
    finally:
        await agent.stop()
    return 0


def build_parser_defaults(**overrides: Any) -> argparse.Namespace:
    """The agent's flags at their defaults, with overrides: for commands that embed it."""
    return flags.defaults(add_agent_flags, **overrides)
