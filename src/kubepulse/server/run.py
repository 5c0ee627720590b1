"""`kubepulse server` from a ServerConfig: nodes from a file, or from a cluster.

Against a cluster the server lists and watches nodes and pods through --kubeconfig or
the pod's service account, and authenticates and authorizes requests through it, as
every aggregated API server does.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubepulse.api.authn import RequestAuthenticator, ReviewClient
from kubepulse.api.authz import Authorizer, SubjectAccessReviewAuthorizer
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import SERVICE_ACCOUNT_DIR, KubeClient, in_cluster
from kubepulse.kube.inventory import Inventory, StaticInventory
from kubepulse.kube.kubeconfig import Credentials, KubeconfigError, without_credentials
from kubepulse.kube.objects import ObjectError
from kubepulse.kube.watched import KubeInventory
from kubepulse.server import serving
from kubepulse.server.assemble import Closer, RunningServer, start_server, tune_for_many_nodes
from kubepulse.server.auth import authenticator, cluster_authenticator
from kubepulse.server.config import CompletedConfig, ConfigError, ServerConfig
from kubepulse.server.kubelets import kubelet_defaults, read_token


async def run(config: ServerConfig) -> int:
    completed = config.complete()
    if config.targets is None:
        server = await start_cluster_server(completed, cluster(config))
        tune_for_many_nodes()
    else:
        try:
            # In a child process: the parse's peak never becomes the server's resident size.
            inventory = StaticInventory.from_file_isolated(config.targets)
        except ObjectError as err:
            raise ConfigError(str(err)) from err
        tune_for_many_nodes()
        server = await start_file_server(completed, inventory)
    return await serve_until_signalled(config, server)


async def close_all(closers: list[Closer]) -> None:
    for close in reversed(closers):
        await close()


async def start_file_server(completed: CompletedConfig, inventory: Inventory) -> RunningServer:
    """Nodes from --targets; requests checked by the static authenticators, and by the
    clusters --authentication-kubeconfig and --authorization-kubeconfig name."""
    config = completed.config
    closers: list[Closer] = []
    try:
        auth, authorizer = await delegation(config, None, closers)
        token = read_token(config.kubelet.token_file)
        server = await start_server(completed, inventory, token, auth, authorizer=authorizer)
    except BaseException:
        await close_all(closers)
        raise
    server.closers.extend(closers)
    return server


async def serve_until_signalled(config: ServerConfig, server: RunningServer) -> int:
    print(f"kubepulse server: {serving.url(config.serving.bind_address, server.port)}", flush=True)
    try:
        await serving.until_signalled()
    finally:
        await server.stop()
    return 0


@dataclass(frozen=True)
class Cluster:
    """Where the Kubernetes API is and how to speak to it."""

    creds: Credentials
    token_file: Path | None = None
    """The service account's token file, read again as the kubelet rotates it."""
    ca_file: Path | None = None
    """The service account's CA file."""


def cluster(
    config: ServerConfig,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> Cluster:
    """--kubeconfig (and --context), else the pod's service account, as metrics-server's
    --kubeconfig (empty: client-go's rest.InClusterConfig)."""
    try:
        if config.kubeconfig is not None:
            return Cluster(kubeconfig.load(str(config.kubeconfig), config.context))
        if config.context is not None:
            raise ConfigError(
                "--context needs --kubeconfig: without it the server uses the in-cluster "
                "service account"
            )
        creds = in_cluster(service_account_dir, environ)
    except KubeconfigError as err:
        if config.kubeconfig is not None:
            raise ConfigError(str(err)) from err
        raise ConfigError(
            "no nodes to scrape: give --targets FILE or --kubeconfig FILE, or run in a pod "
            f"with a service account: {err}"
        ) from err
    return Cluster(creds, service_account_dir / "token", service_account_dir / "ca.crt")


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
        raise ConfigError(
            f"nodes and pods were not listed from {server} within {timeout:g}s: {reason}"
        ) from None
    except BaseException:
        await inventory.stop()
        raise


def reviewer(path: Path | None, default: Cluster | None, flag: str) -> Cluster | None:
    """The cluster named by --authentication-kubeconfig or --authorization-kubeconfig,
    else the default one (None: no cluster reviews anything)."""
    if path is None:
        return default
    try:
        return Cluster(kubeconfig.load(str(path)))
    except KubeconfigError as err:
        raise ConfigError(f"{flag}: {err}") from err


async def open_reviews(where: Cluster, closers: list[Closer]) -> ReviewClient:
    reviews = ReviewClient(where.creds, token_file=where.token_file)
    await reviews.__aenter__()
    closers.append(lambda: reviews.__aexit__(None, None, None))
    return reviews


async def delegation(
    config: ServerConfig, default: Cluster | None, closers: list[Closer]
) -> tuple[RequestAuthenticator, Authorizer | None]:
    """Who asks, and whether they may (k8s.io/apiserver's delegating authentication and
    authorization): TokenReview and SubjectAccessReview through their kubeconfigs, else
    through the cluster's credentials; without either, the static authenticators and
    no authorizer (everyone authenticated may read)."""
    a = config.auth
    authn = reviewer(a.authentication_kubeconfig, default, "--authentication-kubeconfig")
    authz = reviewer(a.authorization_kubeconfig, default, "--authorization-kubeconfig")
    reviews = await open_reviews(authn, closers) if authn is not None else None
    if reviews is None:
        auth: RequestAuthenticator = authenticator(a)
    else:
        auth = await cluster_authenticator(a, reviews)
    if authz is None:
        return auth, None
    if reviews is None or authz is not authn:
        reviews = await open_reviews(authz, closers)
    return auth, SubjectAccessReviewAuthorizer(
        reviews, a.authorized_cache_ttl, a.unauthorized_cache_ttl
    )


async def start_cluster_server(completed: CompletedConfig, where: Cluster) -> RunningServer:
    config = completed.config
    closers: list[Closer] = []
    try:
        auth, authorizer = await delegation(config, where, closers)
        inventory = KubeInventory(
            KubeClient(where.creds, token_file=where.token_file),
            node_selector=config.node_selector,
        )
        await start_inventory(inventory, config.cache_sync_timeout, where.creds.server)
        closers.append(inventory.stop)
        kubelet_token = read_token(config.kubelet.token_file)
        with tempfile.TemporaryDirectory(prefix="kubepulse-kubelet-") as tmp:
            defaults = kubelet_defaults(where.creds, Path(tmp), where.token_file, where.ca_file)
            server = await start_server(
                completed,
                inventory,
                kubelet_token,
                auth,
                authorizer=authorizer,
                kubelet_defaults=defaults,
                # Where the API is and its CA, never the server's own token or certificate.
                cluster=without_credentials(where.creds),
            )
    except BaseException:
        await close_all(closers)
        raise
    server.closers.extend(closers)
    return server
