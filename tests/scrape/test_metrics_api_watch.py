"""`kubepulse dashboard` follows the metrics API's watch where the server offers one: each
burst of events is one stored cycle; a server without the watch, or refusing it, is
polled; a failing watch empties the store and says why once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kubepulse.api.status import status_response
from kubepulse.kube.client import KubeClient
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.metrics import METRICS
from kubepulse.kube.metrics_watch import INITIAL_EVENTS_END
from kubepulse.scrape.metrics_api import MetricsApiPoller, PolledInventory
from kubepulse.scrape.metrics_api_watch import follow_or_poll
from kubepulse.store.rated import RatedStore
from kubepulse.store.rates import Rate
from tests.api.conftest import COREDNS, MI, T1
from tests.fakeapi.fixtures import until
from tests.scrape.test_metrics_api import FakeCluster, node_metrics, pod_metrics


def initial_events_end() -> dict[str, Any]:
    annotations = {INITIAL_EVENTS_END: "true"}
    return {"type": "BOOKMARK", "object": {"metadata": {"annotations": annotations}}}


@dataclass
class WatchingCluster(FakeCluster):
    """FakeCluster, whose metrics API also lists and serves `watch` (or refuses it)."""

    watch_status: int = 200
    offers_watch: bool = True
    events: dict[str, asyncio.Queue[dict[str, Any] | str | None]] = field(
        default_factory=lambda: {"nodes": asyncio.Queue(), "pods": asyncio.Queue()}
    )
    watches: int = 0
    """Watches answered (refused ones not counted)."""

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._watch_middleware)
        app.router.add_get(METRICS, self._discovery)
        return app

    async def _discovery(self, _request: web.Request) -> web.Response:
        verbs = ["get", "list", "watch"] if self.offers_watch else ["get", "list"]
        resources = [{"name": n, "verbs": verbs} for n in ("nodes", "pods")]
        return web.json_response({"kind": "APIResourceList", "resources": resources})

    @web.middleware
    async def _watch_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return await handler(request)  # type: ignore[no-any-return]
        if self.watch_status != 200:
            return status_response(self.watch_status, "watch refused for the test")
        self.watches += 1
        queue = self.events[request.path.rsplit("/", 1)[-1]]
        response = web.StreamResponse()
        await response.prepare(request)
        while (event := await queue.get()) is not None:  # None: the server ends the watch
            if event == "abort":  # the server cuts it, as it cuts a slow consumer
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(orjson.dumps(event) + b"\n")
        return response


class CountingRecorder:
    def __init__(self) -> None:
        self.ticks = 0

    def node_stored(self, node_name: str) -> None:
        pass

    def tick_done(self) -> None:
        self.ticks += 1


@pytest.fixture
async def following(aiohttp_client: Any) -> AsyncIterator[tuple[WatchingCluster, Any]]:
    cluster = WatchingCluster()
    client: TestClient[Any, Any] = await aiohttp_client(cluster.app())
    creds = Credentials(server=str(client.make_url("")).rstrip("/"), token="poller-token")
    yield cluster, creds


@contextlib.asynccontextmanager
async def reading(creds: Credentials, interval: float = 3600.0) -> AsyncIterator[Any]:
    store, inventory, recorder = RatedStore(15.0), PolledInventory(), CountingRecorder()
    async with KubeClient(creds) as kube:
        poller = MetricsApiPoller(kube, store, inventory, interval, recorder)
        task = asyncio.create_task(follow_or_poll(poller))
        try:
            yield poller, store, recorder
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def node_event(kind: str, name: str, cpu: str) -> dict[str, Any]:
    return {"type": kind, "object": node_metrics(name, cpu, "1Mi")}


async def test_each_burst_of_events_is_stored_as_one_cycle(
    following: tuple[WatchingCluster, Credentials],
) -> None:
    cluster, creds = following
    nodes, pods = cluster.events["nodes"], cluster.events["pods"]
    async with reading(creds) as (poller, store, recorder):
        for event in (node_event("ADDED", "node-a", "500m"), node_event("ADDED", "node-b", "1")):
            nodes.put_nowait(event)
        nodes.put_nowait(initial_events_end())
        coredns = pod_metrics("kube-system", COREDNS, {"coredns": ("10m", "1Mi")})
        pods.put_nowait({"type": "ADDED", "object": coredns})
        pods.put_nowait(initial_events_end())
        await until(lambda: recorder.ticks == 1, "the first cycle")
        assert poller.following
        assert store.node("node-a") == Rate(T1, 15.003, 500_000_000, MI)
        assert store.node("node-b") == Rate(T1, 15.003, 1_000_000_000, MI)
        # Placed on its node by the core API's list, as a poll places it.
        assert store.pod("node-a", "kube-system", COREDNS) is not None
        # The next scrape: one more cycle with its numbers; a node deleted is dropped.
        nodes.put_nowait(node_event("MODIFIED", "node-a", "700m"))
        nodes.put_nowait(node_event("DELETED", "node-b", "1"))
        await until(lambda: recorder.ticks == 2, "the second cycle")
        assert store.node("node-a") == Rate(T1, 15.003, 700_000_000, MI)
        assert store.node("node-b") is None
        assert poller.polls == 0  # nothing was polled: the hour between polls never passed
        assert cluster.watches == 2


async def test_a_metrics_api_without_the_watch_is_polled(
    following: tuple[WatchingCluster, Credentials],
) -> None:
    cluster, creds = following
    cluster.offers_watch = False
    async with reading(creds) as (poller, store, recorder):
        await until(lambda: recorder.ticks == 1, "the first cycle")
        assert poller.polls == 1 and not poller.following
        assert store.node("node-a") == Rate(T1, 15.003, 500_000_000, MI)
    assert cluster.watches == 0


async def test_a_refused_watch_is_reported_and_polling_takes_over(
    following: tuple[WatchingCluster, Credentials], caplog: pytest.LogCaptureFixture
) -> None:
    cluster, creds = following
    cluster.watch_status = 405
    caplog.set_level(logging.WARNING, logger="kubepulse.scrape.metrics_api")
    async with reading(creds, interval=0.2) as (poller, store, _recorder):
        await until(lambda: poller.polls >= 1 and poller.problem == "", "a poll that worked")
        assert not poller.following
        assert store.node("node-a") is not None
    assert "405" in caplog.text


async def test_a_failing_watch_empties_the_store_and_says_why_once(
    following: tuple[WatchingCluster, Credentials], caplog: pytest.LogCaptureFixture
) -> None:
    cluster, creds = following
    caplog.set_level(logging.WARNING, logger="kubepulse.scrape.metrics_api")
    async with reading(creds, interval=0.1) as (poller, store, recorder):
        cluster.events["nodes"].put_nowait(node_event("ADDED", "node-a", "500m"))
        cluster.events["nodes"].put_nowait(initial_events_end())
        await until(lambda: store.node("node-a") is not None, "node-a stored")
        # The APIService's backend went away: the watch ends, and new ones are refused.
        cluster.watch_status = 503
        cluster.events["nodes"].put_nowait(None)
        await until(lambda: store.node("node-a") is None, "the store emptied")
        await until(lambda: recorder.ticks >= 4, "several tries")  # and one line
        assert poller.problem.startswith("Metrics API not available (503")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("following the metrics watch of http://127.0.0.1:")


async def test_a_watch_the_server_keeps_cutting_gives_way_to_polling(
    following: tuple[WatchingCluster, Credentials], caplog: pytest.LogCaptureFixture
) -> None:
    cluster, creds = following
    caplog.set_level(logging.WARNING, logger="kubepulse.scrape.metrics_api_watch")
    for _ in range(3):
        cluster.events["nodes"].put_nowait("abort")
    async with reading(creds, interval=0.1) as (poller, store, _recorder):
        await until(lambda: poller.polls >= 1, "a poll")
        assert not poller.following
        assert store.node("node-a") == Rate(T1, 15.003, 500_000_000, MI)  # polled
        await until(lambda: poller.polls >= 3, "more polls")  # and no watch again
    assert cluster.watches == 6  # nodes and pods, three times
    cut = [r.getMessage() for r in caplog.records if "was cut" in r.getMessage()]
    assert len(cut) == 1
    assert cut[0].endswith("was cut 3 times in 600s: polling every 0.1s instead")
