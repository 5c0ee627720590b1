"""`kubepulse agent`: kubelet-compatible resource stats for a host without a kubelet.

This module only reads the command line into an AgentConfig; kubepulse/agent runs it.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from kubepulse.agent import bootstrap
from kubepulse.agent.config import AgentConfig
from kubepulse.agent.run import start_agent
from kubepulse.cli import flags
from kubepulse.model import Resources
from kubepulse.server import serving


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
    flags.add(
        p,
        "--tls-min-version",
        "string",
        "lowest TLS version served: VersionTLS10, VersionTLS11, VersionTLS12 (empty), VersionTLS13",
        "",
    )
    flags.add(
        p,
        "--tls-cipher-suites",
        "strings",
        "TLS 1.2 cipher suites, by Go's names; TLS 1.3 ones are accepted and stay on",
    )
    flags.add_connection_flags(p)
    add_bootstrap_flags(p)
    flags.add_logging_flags(p)
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


def config(args: argparse.Namespace) -> AgentConfig:
    values = {f.name: getattr(args, f.name) for f in fields(AgentConfig)}
    return AgentConfig(**{**values, "tls_cipher_suites": tuple(args.tls_cipher_suites)})


async def run(args: argparse.Namespace) -> int:
    agent = await start_agent(config(args))
    print(f"kubepulse agent: {serving.url(args.address, agent.port)}/metrics/resource", flush=True)
    try:
        await serving.until_signalled()
    finally:
        await agent.stop()
    return 0
