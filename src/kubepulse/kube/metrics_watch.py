"""Following a metrics.k8s.io watch: what `top --watch` and `dashboard --kubeconfig` read
where the server offers one.

A server whose discovery lists the `watch` verb for nodes or pods of metrics.k8s.io
(kubepulse, metrics-server 0.8+: its pkg/api/watcher.go) sends NodeMetrics and
PodMetrics as each scrape is stored, so a reader sees the numbers change when they do
instead of at its next poll. The watch asks for its initial events (WatchList:
sendInitialEvents=true with bookmarks), so a new connection starts from what is stored
and the objects are replaced whole at the BOOKMARK that ends them. When a watch ends
(its timeoutSeconds, the server closing a slow consumer, a 410 Expired) a new one
starts; any other failure goes to the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from kubepulse.kube.client import ApiError, KubeClient
from kubepulse.kube.metrics import METRICS

WATCH_SECONDS = 300
"""timeoutSeconds of each watch: a connection gone silent is noticed by then."""
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
Key = tuple[str, str]
"""(namespace, name); a node's namespace is ""."""
T = TypeVar("T")


async def offers_watch(client: KubeClient, *kinds: str) -> bool:
    """Whether discovery lists `watch` for the metrics of each kind ("node", "pod")."""
    try:
        resources = (await client.get(METRICS)).get("resources") or []
    except ApiError as err:
        if err.code == 404:  # no resource list to read: the LIST is all there is
            return False
        raise
    watchable = {r.get("name") for r in resources if "watch" in (r.get("verbs") or [])}
    return all(f"{kind}s" in watchable for kind in kinds)


class MetricsWatch(Generic[T]):
    """One watch after another of one metrics path, into `values` (what `convert` makes
    of each object; None leaves the object out). `changed` is set after every change."""

    def __init__(
        self,
        client: KubeClient,
        path: str,
        params: Mapping[str, str],
        convert: Callable[[Mapping[str, Any]], T | None],
    ) -> None:
        self.client, self.path, self.params, self.convert = client, path, dict(params), convert
        self.values: dict[Key, T] = {}
        self.changed = asyncio.Event()

    async def run(self, before_each: Callable[[], Awaitable[None]] | None = None) -> None:
        """Watch until cancelled; `before_each` runs before every new watch."""
        while True:
            if before_each is not None:
                await before_each()
            try:
                await self.once()
            except ApiError as err:
                if err.code != 410:  # Expired: watch again from what is stored now
                    raise

    async def once(self) -> None:
        params = self.params | {
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        # Filled from the initial events, and made current once they are all in.
        fresh: dict[Key, T] | None = {}
        async for event in self.client.watch(self.path, params, timeout=WATCH_SECONDS + 30):
            kind, obj = event.get("type"), event.get("object") or {}
            meta = obj.get("metadata") or {}
            if kind == "BOOKMARK":
                if fresh is not None and INITIAL_EVENTS_END in (meta.get("annotations") or {}):
                    self.values, fresh = fresh, None
                    self.changed.set()
                continue
            if fresh is not None and kind != "ADDED":
                # A server without the initial-events-end bookmark: the first change
                # after its ADDED events ends them.
                self.values, fresh = fresh, None
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            key = (meta.get("namespace", ""), meta.get("name", ""))
            target = fresh if fresh is not None else self.values
            value = None if kind == "DELETED" else self.convert(obj)
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
            if fresh is None:
                self.changed.set()
        if fresh is not None:
            # The watch ended before any change: what came is what is stored.
            self.values = fresh
            self.changed.set()
