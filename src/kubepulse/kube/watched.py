"""The nodes and pods of a cluster, listed and watched (client-go's shared informers):
the Inventory of `kubepulse server` against a cluster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubepulse.kube import kubeconfig
from kubepulse.kube.client import SERVICE_ACCOUNT_DIR, KubeClient, in_cluster
from kubepulse.kube.objects import Node, Pod, node_from_object, pod_from_object
from kubepulse.kube.reflector import DEFAULT_BACKOFF, Backoff, Reflector

log = logging.getLogger(__name__)


def _node_key(node: Node) -> tuple[str, str]:
    return ("", node.name)


def _pod_key(pod: Pod) -> tuple[str, str]:
    return (pod.namespace, pod.name)


class KubeInventory:
    """The Inventory (nodes() and pods()) of a cluster, from its API server.

    `await start()` begins listing and watching in the background; `synced` is set once
    both nodes and pods were listed; `await stop()` ends it and closes the connection.
    Until synced, nodes() and pods() are empty.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        node_selector: str = "",
        pod_field_selector: str = "",
        keep_raw: bool = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        watch_timeout: float = 300.0,
    ) -> None:
        options: dict[str, Any] = {
            "keep_raw": keep_raw,
            "backoff": backoff,
            "watch_timeout": watch_timeout,
        }
        self.client = client
        self.node_reflector = Reflector(
            client,
            "/api/v1/nodes",
            node_from_object,
            _node_key,
            label_selector=node_selector,
            **options,
        )
        self.pod_reflector = Reflector(
            client,
            "/api/v1/pods",
            pod_from_object,
            _pod_key,
            field_selector=pod_field_selector,
            **options,
        )
        self.synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(
        cls,
        kubeconfig_path: str | None = None,
        *,
        context: str | None = None,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> KubeInventory:
        """From a kubeconfig when one is named, else from the pod's service account (as
        metrics-server's --kubeconfig, empty by default, means in-cluster).
        Raises KubeconfigError with a one-line reason."""
        if kubeconfig_path:
            client = KubeClient(kubeconfig.load(kubeconfig_path, context))
        else:
            creds = in_cluster(service_account_dir, environ)
            client = KubeClient(creds, token_file=service_account_dir / "token")
        return cls(client, **options)

    async def start(self) -> None:
        await self.client.__aenter__()
        self._tasks = [
            asyncio.create_task(self.node_reflector.run(), name="watch nodes"),
            asyncio.create_task(self.pod_reflector.run(), name="watch pods"),
            asyncio.create_task(self._wait_synced(), name="inventory synced"),
        ]

    async def _wait_synced(self) -> None:
        await self.node_reflector.synced.wait()
        await self.pod_reflector.synced.wait()
        self.synced.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.client.__aexit__(None, None, None)

    async def __aenter__(self) -> KubeInventory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def nodes(self) -> list[Node]:
        return self.node_reflector.items()

    def pods(self) -> list[Pod]:
        return self.pod_reflector.items()
