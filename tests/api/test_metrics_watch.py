"""Watch of NodeMetrics and PodMetrics: events as each scrape is stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from kubepulse.api.metrics_watch import SLOW_CONSUMER_EVENTS, MetricsWatchers
from kubepulse.store.points import MetricsStore
from tests.api.conftest import (
    AUTH,
    MI,
    T1,
    ZONE,
    MakeClient,
    _container,
    _node,
    _pod,
    filled_store,
    inventory,
)
from tests.api.test_watch import next_event, watch

PREFIX = "/apis/metrics.k8s.io/v1beta1"
INITIAL = "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"


@pytest.fixture
def store() -> MetricsStore:
    return filled_store()


@pytest.fixture
def watchers(store: MetricsStore) -> MetricsWatchers:
    return MetricsWatchers(store, inventory())


@pytest.fixture
async def api(
    make_client: MakeClient, store: MetricsStore, watchers: MetricsWatchers
) -> TestClient[Any, Any]:
    return await make_client(store=store, metrics_watch=watchers)


def scrape_node_b(store: MetricsStore, watchers: MetricsWatchers, n: int, web: bool) -> None:
    """Node-b's scrape n seconds after the second, with or without its pod web-1."""
    t = T1 + n
    pods = (_pod("default", "web-1", _container("nginx", t, 2_000_000_000 * n, 2 * MI)),)
    store.store("node-b", _node("node-b", t, 10**12 + 10**10 * n, 800 * MI), pods if web else ())
    watchers.node_stored("node-b")


async def test_initial_events_then_a_bookmark_then_one_event_per_stored_scrape(
    api: TestClient[Any, Any], store: MetricsStore, watchers: MetricsWatchers
) -> None:
    response = await watch(api, f"{PREFIX}/nodes?watch=true&{INITIAL}")
    initial = [await next_event(response) for _ in range(4)]
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in initial] == [
        ("ADDED", "node-a"),
        ("ADDED", "node-b"),
        ("ADDED", "node-d"),
        ("BOOKMARK", None),
    ]
    assert initial[1]["object"]["kind"] == "NodeMetrics"
    assert initial[1]["object"]["usage"] == {"cpu": "487558164n", "memory": "732212Ki"}
    mark = initial[3]["object"]["metadata"]
    assert mark == {
        "resourceVersion": str(watchers.resource_version),
        "annotations": {"k8s.io/initial-events-end": "true"},
    }
    scrape_node_b(store, watchers, 1, web=True)
    event = await next_event(response)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("MODIFIED", "node-b")
    assert event["object"]["metadata"]["resourceVersion"] == str(watchers.resource_version)
    assert event["object"]["usage"]["memory"] == "800Mi"


async def test_a_pod_watch_is_filtered_by_namespace_and_labels_and_sees_a_pod_go(
    api: TestClient[Any, Any], store: MetricsStore, watchers: MetricsWatchers
) -> None:
    version = watchers.resource_version
    path = f"{PREFIX}/namespaces/default/pods?watch=1&labelSelector=app%3Dweb"
    response = await watch(api, f"{path}&resourceVersion={version}")
    # node-a's scrape holds only kube-system's coredns: nothing for this watch.
    store.store("node-a", _node("node-a", T1 + 1, 8 * 10**9, MI), ())
    watchers.node_stored("node-a")
    scrape_node_b(store, watchers, 1, web=True)
    event = await next_event(response)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "web-1")
    assert event["object"]["metadata"]["labels"] == {"app": "web"}
    assert event["object"]["containers"][0]["name"] == "nginx"
    scrape_node_b(store, watchers, 2, web=True)
    assert (await next_event(response))["type"] == "MODIFIED"
    scrape_node_b(store, watchers, 3, web=False)
    event = await next_event(response)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "web-1")


async def test_a_slow_consumer_is_closed_once_its_buffer_is_full(
    api: TestClient[Any, Any], store: MetricsStore, watchers: MetricsWatchers
) -> None:
    version = watchers.resource_version
    unread = await watch(api, f"{PREFIX}/nodes?watch=1&resourceVersion={version}")
    read = await watch(api, f"{PREFIX}/nodes?watch=1&resourceVersion={version}")
    received = 0

    async def reader() -> None:
        nonlocal received
        with contextlib.suppress(aiohttp.ClientConnectionError):  # at the test's end
            while await read.content.readline():
                received += 1

    reading = asyncio.create_task(reader())
    # Scrapes stored, the loop turning between them, until the client that never reads
    # has filled the socket's buffers and then its 1,000 events (with a bound).
    stored = 0
    while len(watchers.watches) == 2 and stored < 200_000:
        stored += 1
        scrape_node_b(store, watchers, stored, web=True)
        await asyncio.sleep(0)  # the handlers' turn: they write as they would in a server
    assert len(watchers.watches) == 1, f"still open after {stored} scrapes"
    # The client that reads has every event so far; the other's stream has ended.
    await asyncio.wait_for(_until(lambda: received == stored), 10)
    # The other's connection was cut: what it had not read of the stream is all it gets.
    body = b""
    with contextlib.suppress(aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        async for chunk in unread.content.iter_any():
            body += chunk
    assert 0 < body.count(b"\n") < stored - SLOW_CONSUMER_EVENTS
    reading.cancel()


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.01)  # polled, bounded by the caller's wait_for


async def test_a_watch_from_an_older_version_gets_410(
    api: TestClient[Any, Any], watchers: MetricsWatchers
) -> None:
    old = watchers.resource_version - 1
    response = await watch(api, f"{PREFIX}/pods?watch=1&resourceVersion={old}")
    event = await next_event(response)
    assert (event["type"], event["object"]["code"], event["object"]["reason"]) == (
        "ERROR",
        410,
        "Expired",
    )


async def test_discovery_lists_watch_for_the_metrics(api: TestClient[Any, Any]) -> None:
    body = await (await api.get(PREFIX, headers=AUTH)).json()
    assert {r["name"]: r["verbs"] for r in body["resources"]} == {
        "nodes": ["get", "list", "watch"],
        "pods": ["get", "list", "watch"],
    }


async def test_nothing_is_built_while_nobody_watches(
    store: MetricsStore, watchers: MetricsWatchers
) -> None:
    before = watchers.resource_version
    scrape_node_b(store, watchers, 1, web=True)
    assert watchers.resource_version == before + 1
    assert not watchers._pods_of_node and not watchers._nodes_sent


async def test_a_node_the_store_drops_is_deleted_with_its_pods(
    api: TestClient[Any, Any], store: MetricsStore, watchers: MetricsWatchers
) -> None:
    nodes = await watch(api, f"{PREFIX}/nodes?watch=1&labelSelector=topology.kubernetes.io%2Fzone")
    pods = await watch(api, f"{PREFIX}/pods?watch=1")
    added = [(await next_event(nodes))["object"]["metadata"]["name"] for _ in range(2)]
    assert added == ["node-a", "node-b"]  # node-d has no zone
    initial_pods = {(await next_event(pods))["object"]["metadata"]["name"] for _ in range(2)}
    store.retain(store.node_names() - {"node-b"})  # node-b's scrape failed this cycle
    watchers.tick_done()
    event = await next_event(nodes)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "node-b")
    assert event["object"]["metadata"]["labels"][ZONE] == "zone-b"
    event = await next_event(pods)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "web-1")
    assert "web-1" in initial_pods
