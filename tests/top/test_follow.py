"""The live view's watch against servers that differ from kubepulse's own."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import web

from kubepulse.kube.client import KubeClient
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.top.follow import Follower
from kubepulse.top.layout import View
from kubepulse.top.query import TopRequest


def node_metrics(name: str, cpu: str) -> dict[str, Any]:
    return {
        "kind": "NodeMetrics",
        "metadata": {"name": name},
        "usage": {"cpu": cpu, "memory": "1Mi"},
    }


async def test_a_watch_without_the_initial_events_bookmark_is_shown_from_its_first_change(
    aiohttp_server: Any,
) -> None:
    change = asyncio.Event()

    async def nodes(_request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(_request)
        for name in ("node-x", "node-y"):
            line = {"type": "ADDED", "object": node_metrics(name, "100m")}
            await response.write(orjson.dumps(line) + b"\n")
        await change.wait()
        line = {"type": "MODIFIED", "object": node_metrics("node-x", "700m")}
        await response.write(orjson.dumps(line) + b"\n")
        await asyncio.Event().wait()  # kept open, as a watch is
        return response

    async def node_list(_request: web.Request) -> web.Response:
        return web.json_response({"kind": "NodeList", "items": []})

    app = web.Application()
    app.router.add_get("/apis/metrics.k8s.io/v1beta1/nodes", nodes)
    app.router.add_get("/api/v1/nodes", node_list)
    server = await aiohttp_server(app)
    view = View("node", 2.0)
    async with KubeClient(Credentials(server=str(server.make_url("")).rstrip("/"))) as client:
        following = asyncio.create_task(Follower(client, TopRequest("node"), view, "").run())
        try:
            change.set()
            async with asyncio.timeout(10):
                while {k: r.usage.cpu_milli for k, r in view.rows.items()} != {
                    ("", "node-x"): 700,
                    ("", "node-y"): 100,
                }:
                    await asyncio.sleep(0.05)  # polled, bounded by the timeout
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
