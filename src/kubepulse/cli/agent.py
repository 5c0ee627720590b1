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

from kubepulse.agent import cgroups
from kubepulse.agent.collector import Collector
from kubepulse.agent.procfs import ProcFS
from kubepulse.agent.server import AgentState, make_app, serving_files, ssl_context
from kubepulse.agent.workloads import RuntimeMetadata
from kubepulse.api.authn import (
    AuthConfigError,
    Authenticator,
    NoAuthentication,
    TokenFileError,
    from_files,
)
from kubepulse.cli import flags, serving
from kubepulse.cli.errors import CommandError
from kubepulse.model import Resources

log = logging.getLogger("kubepulse.agent")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "agent", help="serve kubelet resource stats (/metrics/resource, /stats/summary)"
    )
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
    p.add_argument("--proc-root", type=Path, default=Path("/proc"), help=argparse.SUPPRESS)
    p.add_argument("--runtime-root", type=Path, default=Path("/"), help=argparse.SUPPRESS)


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

    async def stop(self) -> None:
        self.housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.housekeeping
        await self.runner.cleanup()


async def start_agent(args: argparse.Namespace) -> RunningAgent:
    node_name = args.hostname_override or socket.gethostname()
    authenticator = build_authenticator(args)
    state = build_state(args, node_name)
    files = serving_files(
        args.tls_cert_file, args.tls_private_key_file, args.cert_dir, node_name, args.address
    )
    try:
        ctx = ssl_context(files, request_client_certs=bool(authenticator.client_authorities))
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot load serving certificate: {err}") from err
    runner, port = await serving.start(make_app(state, authenticator), args.address, args.port, ctx)
    task = asyncio.create_task(state.housekeeping(args.housekeeping_interval))
    log.info("agent for node %s serving on %s", node_name, serving.url(args.address, port))
    return RunningAgent(runner, port, state, task)


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
