"""The live view's data: a watch of the metrics API where the server offers one
(kube/metrics_watch.py), polling where it does not. The rows are rebuilt from what the
watch holds at most every REDRAW_EVERY, so the events of one scrape are drawn together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.metrics import METRICS
from kubepulse.kube.metrics_watch import MetricsWatch, offers_watch
from kubepulse.kube.objects import ObjectError
from kubepulse.top import query
from kubepulse.top.layout import View
from kubepulse.top.printer import CpuMemory, milli, pod_usage, value
from kubepulse.top.query import TopError, TopRequest

REDRAW_EVERY = 0.25
"""Events of one scrape come together: the rows are rebuilt at most this often."""


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
        self.client, self.request, self.view = client, request, view
        self.capacity = CpuMemory(0, 0)
        path, params = watch_path(request, namespace)
        self.watch = MetricsWatch(client, path, params, lambda o: usage_of(request.kind, o))

    async def run(self) -> None:
        publisher = asyncio.create_task(self._publish())
        try:
            await self.watch.run(before_each=self._read_capacity)
        finally:
            publisher.cancel()

    async def _read_capacity(self) -> None:
        self.capacity = await capacity(self.client, self.request)

    async def _publish(self) -> None:
        changed = self.watch.changed
        while True:
            await changed.wait()
            changed.clear()
            rows = [(ns, name, usage) for (ns, name), usage in self.watch.values.items()]
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
