"""The live view's data: a watch of the metrics API where the server offers one, polling
where it does not.

A server whose discovery lists the `watch` verb for nodes or pods of metrics.k8s.io
(kubepulse, metrics-server 0.8+) sends NodeMetrics and PodMetrics as each scrape is
stored; the view changes when the numbers do instead of every --interval. The watch
asks for its initial events (WatchList: sendInitialEvents=true and bookmarks), so a
new connection starts from what is stored and the view is replaced whole at the
BOOKMARK that ends them. When the watch ends (its timeoutSeconds, the server closing a
slow consumer, a 410) a new one starts; any other failure is shown and retried, as
the poller does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.metrics import METRICS
from kubepulse.kube.objects import ObjectError
from kubepulse.top import query
from kubepulse.top.layout import View
from kubepulse.top.printer import CpuMemory, milli, pod_usage, value
from kubepulse.top.query import TopError, TopRequest

WATCH_SECONDS = 300
"""timeoutSeconds of each watch: a connection gone silent is noticed by then."""
REDRAW_EVERY = 0.25
"""Events of one scrape come together: the rows are rebuilt at most this often."""
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
Key = tuple[str, str]


async def offers_watch(client: KubeClient, kind: str) -> bool:
    """Whether discovery lists `watch` for the metrics of this kind."""
    try:
        resources = (await client.get(METRICS)).get("resources") or []
    except ApiError as err:
        if err.code == 404:  # no resource list to read: the LIST is all there is
            return False
        raise
    name = f"{kind}s"
    return any(r.get("name") == name and "watch" in (r.get("verbs") or []) for r in resources)


def watch_path(request: TopRequest, namespace: str) -> tuple[str, dict[str, str]]:
    """The watch that sees what the same `top` LIST would list."""
    params = {"labelSelector": request.selector}
    if request.kind == "node":
        if request.name:
            params = {"fieldSelector": f"metadata.name={request.name}"}
        return f"{METRICS}/nodes", params
    if request.name:
        return f"{METRICS}/namespaces/{namespace}/pods", {
            "fieldSelector": f"metadata.name={request.name}"
        }
    params["fieldSelector"] = request.field_selector
    if request.all_namespaces:
        return f"{METRICS}/pods", params
    return f"{METRICS}/namespaces/{namespace}/pods", params


def usage_of(kind: str, obj: Mapping[str, Any]) -> CpuMemory:
    return CpuMemory.of(obj.get("usage") or {}) if kind == "node" else pod_usage(obj)


def allocatable(nodes: list[Any]) -> CpuMemory:
    """The nodes' allocatable, summed, for the totals line."""
    total = CpuMemory(0, 0)
    for n in nodes:
        alloc = (n.get("status") or {}).get("allocatable") or {}
        total = total + CpuMemory(milli(alloc.get("cpu", "0")), value(alloc.get("memory", "0")))
    return total


async def capacity(client: KubeClient, request: TopRequest) -> CpuMemory:
    """What the totals line compares node usage with (pods show usage only)."""
    if request.kind != "node":
        return CpuMemory(0, 0)
    if request.name:
        return allocatable([await client.get(f"/api/v1/nodes/{request.name}")])
    nodes = await client.get("/api/v1/nodes", {"labelSelector": request.selector})
    return allocatable(nodes["items"])


class Follower:
    """One watch after another into the view, until cancelled."""

    def __init__(self, client: KubeClient, request: TopRequest, view: View, namespace: str):
        self.client, self.request, self.view, self.namespace = client, request, view, namespace
        self.usage: dict[Key, CpuMemory] = {}
        self.capacity = CpuMemory(0, 0)
        self.changed = asyncio.Event()

    async def run(self) -> None:
        publisher = asyncio.create_task(self._publish())
        try:
            while True:
                try:
                    await self._watch_once()
                except ApiError as err:
                    if err.code != 410:  # Expired: watch again from what is stored now
                        raise
        finally:
            publisher.cancel()

    async def _watch_once(self) -> None:
        self.capacity = await capacity(self.client, self.request)
        path, params = watch_path(self.request, self.namespace)
        params |= {
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        # Filled from the initial events, and shown once they are all in.
        fresh: dict[Key, CpuMemory] | None = {}
        events = self.client.watch(path, params, timeout=WATCH_SECONDS + 30)
        async for event in events:
            kind, obj = event.get("type"), event.get("object") or {}
            meta = obj.get("metadata") or {}
            if kind == "BOOKMARK":
                if fresh is not None and INITIAL_EVENTS_END in (meta.get("annotations") or {}):
                    self.usage, fresh = fresh, None
                    self.changed.set()
                continue
            if fresh is not None and kind != "ADDED":
                # A server without the initial-events-end bookmark: the first change
                # after its ADDED events ends them.
                self.usage, fresh = fresh, None
            key = (meta.get("namespace", ""), meta.get("name", ""))
            target = fresh if fresh is not None else self.usage
            if kind == "DELETED":
                target.pop(key, None)
            elif kind in ("ADDED", "MODIFIED"):
                target[key] = usage_of(self.request.kind, obj)
            if fresh is None:
                self.changed.set()
        if fresh is not None:
            # The watch ended before any change: what came is what is stored.
            self.usage = fresh
            self.changed.set()

    async def _publish(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            rows = [(ns, name, usage) for (ns, name), usage in self.usage.items()]
            self.view.update(rows, self.capacity, time.monotonic(), time.time())
            await asyncio.sleep(REDRAW_EVERY)  # coalescing the events of one scrape


async def follow(creds: Credentials, request: TopRequest, view: View) -> None:
    """Feed the view by watch until cancelled; returns at once when the server offers
    no watch of these metrics (or refuses one with 405), for the caller to poll."""
    retrying = f"retrying every {request.interval:g}s"
    while True:
        try:
            async with KubeClient(creds, timeout=max(2.0, request.interval)) as client:
                await query.metrics_available(client)
                if not await offers_watch(client, request.kind):
                    return
                view.watching = True
                await Follower(client, request, view, creds.namespace).run()
        except ApiError as err:
            if err.code == 405:
                view.watching = False
                return
            view.status = f"{retrying}: {err}"
        except (Unreachable, ObjectError, TopError) as err:
            view.status = f"{retrying}: {err}"
        except Exception as err:
            # As the poller: shown and retried, never a view that looks alive and is not.
            view.status = f"{retrying}: unexpected {type(err).__name__}: {err}"
        await asyncio.sleep(request.interval)
