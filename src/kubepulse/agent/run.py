"""The agent put together from an AgentConfig: authentication, the serving certificate
(given, self-made, or bootstrapped through a CSR), the collector and its housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kubepulse import pki
from kubepulse.agent import bootstrap, cgroups
from kubepulse.agent.collector import Collector
from kubepulse.agent.config import AgentConfig, AgentError
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
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import SERVICE_ACCOUNT_DIR, KubeClient, in_cluster
from kubepulse.kube.kubeconfig import KubeconfigError
from kubepulse.server import serving, tlsoptions
from kubepulse.server.connections import Limits

log = logging.getLogger("kubepulse.agent")


def bootstrap_signer(config: AgentConfig) -> bootstrap.Signer | None:
    """The signer --bootstrap asks, or None to serve a given or self-made certificate."""
    if not (config.bootstrap or config.bootstrap_ca_dir):
        return None
    if config.tls_cert_file or config.tls_private_key_file:
        raise AgentError(
            "--bootstrap and --tls-cert-file/--tls-private-key-file exclude each other"
        )
    lifetime: float | None = config.bootstrap_cert_lifetime
    if config.bootstrap_ca_dir is not None:
        if config.kubeconfig:
            raise AgentError("--bootstrap-ca-dir and --kubeconfig exclude each other")
        ca_dir: Path = config.bootstrap_ca_dir
        try:
            ca = pki.KeyPair.load(ca_dir / "ca.crt", ca_dir / "ca.key")
        except (OSError, ValueError) as err:
            raise AgentError(f"cannot load the CA in {ca_dir}: {err}") from err
        return bootstrap.LocalSigner(ca, lifetime or bootstrap.LOCAL_LIFETIME)
    if lifetime is not None and lifetime < bootstrap.MIN_EXPIRATION_SECONDS:
        raise AgentError("--bootstrap-cert-lifetime must be at least 10m (expirationSeconds)")
    try:
        if config.kubeconfig:
            client = KubeClient(kubeconfig.load(config.kubeconfig, None))
        else:
            client = KubeClient(in_cluster(), token_file=SERVICE_ACCOUNT_DIR / "token")
    except KubeconfigError as err:
        raise AgentError(str(err)) from err
    expiration = None if lifetime is None else int(lifetime)
    return bootstrap.APISigner(client, expiration, config.bootstrap_timeout)


def bootstrap_template(config: AgentConfig, node_name: str) -> bootstrap.Template:
    node_ips = [ip for ip in (config.node_ip or "").split(",") if ip.strip()]
    try:
        return bootstrap.Template(node_name, bootstrap.serving_ips(config.address, node_ips))
    except ValueError as err:
        raise AgentError(f"invalid --node-ip or --address: {err}") from err


def build_authenticator(config: AgentConfig) -> Authenticator:
    if config.authentication_skip:
        log.warning(
            "--authentication-skip: anyone who reaches this port can read its stats; "
            "use only on a trusted network"
        )
    try:
        return from_files(config.token_file, config.client_ca_file, skip=config.authentication_skip)
    except NoAuthentication as err:
        raise AgentError(
            "no authentication configured: give --token-file or --client-ca-file "
            "(or --authentication-skip, insecure)"
        ) from err
    except (AuthConfigError, TokenFileError) as err:
        raise AgentError(str(err)) from err


def build_state(config: AgentConfig, node_name: str) -> AgentState:
    try:
        hierarchy = cgroups.detect_host(config.proc_root)
        proc = ProcFS(config.proc_root)
    except (cgroups.CgroupError, OSError) as err:
        raise AgentError(str(err)) from err
    collector = Collector(
        node_name, hierarchy, proc, RuntimeMetadata(config.runtime_root), config.system_reserved
    )
    state = AgentState(collector)
    try:
        state.refresh()
    except RuntimeError as err:
        raise AgentError(str(err)) from err
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


async def start_agent(config: AgentConfig) -> RunningAgent:
    try:
        tls_version = tlsoptions.checked(config.tls_min_version, config.tls_cipher_suites)
    except tlsoptions.TLSOptionError as err:
        raise AgentError(str(err)) from err
    node_name = config.hostname_override or socket.gethostname()
    authenticator = build_authenticator(config)
    signer = bootstrap_signer(config)
    state = build_state(config, node_name)
    client_authorities = authenticator.client_authorities_for_tls
    if signer is None:
        files = serving_files(
            config.tls_cert_file,
            config.tls_private_key_file,
            config.cert_dir,
            node_name,
            config.address,
        )
        try:
            ctx = ssl_context(files, client_authorities)
        except (OSError, ValueError) as err:
            raise AgentError(f"cannot load serving certificate: {err}") from err
    else:
        ctx = serving_context(client_authorities)
    # The kubelet's --tls-min-version and --tls-cipher-suites, with the server's rules.
    tlsoptions.restrict(ctx, tls_version, config.tls_cipher_suites)
    runner, port = await serving.start(
        make_app(state, authenticator),
        config.address,
        config.port,
        ctx,
        Limits(max_connections=config.max_connections),
    )
    certificates = None
    if signer is not None:
        certificates = bootstrap.ServingCertificate(
            signer, bootstrap_template(config, node_name), config.cert_dir, ctx
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
                raise AgentError(str(err)) from err
            raise
    task = asyncio.create_task(state.housekeeping(config.housekeeping_interval))
    rotation = asyncio.create_task(certificates.rotate_forever()) if certificates else None
    log.info("agent for node %s serving on %s", node_name, serving.url(config.address, port))
    return RunningAgent(runner, port, state, task, certificates, rotation)
