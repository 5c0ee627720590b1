"""The list-then-watch protocol of the core API, driven directly over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from kubepulse.kube.feed import ObjectFeed
from kubepulse.kube.local import same_node
from tests.api.conftest import AUTH, MakeClient, node_object, pod_object

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def pod(name: str, app: str = "web", phase: str = "Running") -> dict[str, Any]:
    return pod_object("shop", name, "node-a", {"app": app}, ["main"], phase)


def node(ready: str = "True", heartbeat: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    obj = node_object("node-a", {}, "10.0.0.1")
    obj["status"]["conditions"] = [
        {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}
    ]
    return obj


@pytest.fixture
def feed() -> ObjectFeed:
    feed = ObjectFeed(window=4, start=100)
    feed.replace("pods", [pod("a"), pod("b")])
    feed.replace("nodes", [node()], same_node)
    return feed


@pytest.fixture
async def api(make_client: MakeClient, feed: ObjectFeed) -> TestClient[Any, Any]:
    return await make_client(serve_core_api=True, feed=feed)


async def next_event(response: ClientResponse, timeout: float = 5.0) -> dict[str, Any]:
    line = await asyncio.wait_for(response.content.readline(), timeout)
    assert line, "the watch ended"
    event: dict[str, Any] = orjson.loads(line)
    return event


async def watch(api: TestClient[Any, Any], path: str, **headers: str) -> ClientResponse:
    response = await api.get(path, headers={**AUTH, **headers})
    assert response.status == 200, await response.text()
    assert response.headers.get("Transfer-Encoding") == "chunked"
    return response


async def test_a_watch_from_the_lists_version_sends_only_later_changes(
    api: TestClient[Any, Any], feed: ObjectFeed
) -> None:
    listed = await (await api.get("/api/v1/namespaces/shop/pods", headers=AUTH)).json()
    version = listed["metadata"]["resourceVersion"]
    assert version == str(feed.resource_version)
    assert {p["metadata"]["resourceVersion"] for p in listed["items"]} == {"101", "102"}
    response = await watch(api, f"/api/v1/namespaces/shop/pods?watch=1&resourceVersion={version}")
    feed.replace("pods", [pod("a"), pod("b"), pod("c")])
    event = await next_event(response)
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "c"
    assert event["object"]["kind"] == "Pod"
    feed.replace("pods", [pod("a"), pod("c")])
    event = await next_event(response)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "b")
    assert int(event["object"]["metadata"]["resourceVersion"]) == feed.resource_version


async def test_a_watch_without_a_version_starts_with_every_object_then_a_bookmark(
    api: TestClient[Any, Any], feed: ObjectFeed
) -> None:
    response = await watch(
        api,
        "/api/v1/pods?watch=true&allowWatchBookmarks=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan",
    )
    events = [await next_event(response) for _ in range(3)]
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("BOOKMARK", None),
    ]
    mark = events[2]["object"]
    assert mark["kind"] == "Pod"
    assert mark["metadata"]["resourceVersion"] == str(feed.resource_version)
    assert mark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_a_watch_from_an_old_resource_version_gets_410_expired_and_a_relist_recovers(
    api: TestClient[Any, Any], feed: ObjectFeed
) -> None:
    for n in range(6):  # more changes than the window of 4 keeps
        feed.replace("pods", [pod("a", phase=f"Phase{n}"), pod("b")])
    response = await watch(api, "/api/v1/pods?watch=1&resourceVersion=101")
    event = await next_event(response)
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert await asyncio.wait_for(response.content.readline(), 5) == b""  # closed after it
    listed = await (await api.get("/api/v1/pods", headers=AUTH)).json()
    version = listed["metadata"]["resourceVersion"]
    response = await watch(api, f"/api/v1/pods?watch=1&resourceVersion={version}")
    feed.replace("pods", [pod("a", phase="Succeeded"), pod("b")])
    event = await next_event(response)
    assert event["type"] == "MODIFIED"
    assert event["object"]["status"]["phase"] == "Succeeded"


async def selected_watch(
    api: TestClient[Any, Any], feed: ObjectFeed, selector: str, *pod_sets: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """The (type, name) events of a selected pod watch as the pods become each set."""
    version = feed.resource_version
    response = await watch(api, f"/api/v1/pods?watch=1&{selector}&resourceVersion={version}")
    events = []
    for pods in pod_sets:
        feed.replace("pods", pods)
        event = await next_event(response)
        events.append((event["type"], event["object"]["metadata"]["name"]))
    return events


@pytest.mark.parametrize(
    ("selector", "pod_sets", "expected"),
    [
        pytest.param(
            "labelSelector=app%3Dweb",
            [
                [pod("a", app="db"), pod("b"), pod("c", app="db")],
                [pod("a"), pod("b"), pod("c", app="db")],
            ],
            [("DELETED", "a"), ("ADDED", "a")],
            id="a pod leaving the label selection is deleted for it, one entering it added",
        ),
        pytest.param(
            "fieldSelector=metadata.name%3Db",
            [[pod("a", phase="Failed"), pod("b", phase="Failed")]],
            [("MODIFIED", "b")],
            id="a field selector of one name sees that pod only",
        ),
    ],
)
async def test_a_selected_watch_sends_the_events_of_its_selection(
    api: TestClient[Any, Any],
    feed: ObjectFeed,
    selector: str,
    pod_sets: list[list[dict[str, Any]]],
    expected: list[tuple[str, str]],
) -> None:
    assert await selected_watch(api, feed, selector, *pod_sets) == expected


async def test_a_node_heartbeat_alone_is_no_event_but_its_status_change_is(
    api: TestClient[Any, Any], feed: ObjectFeed
) -> None:
    version = feed.resource_version
    response = await watch(api, f"/api/v1/nodes?watch=1&resourceVersion={version}")
    assert feed.replace("nodes", [node(heartbeat="2026-01-01T00:00:10Z")], same_node) == []
    feed.replace("nodes", [node(ready="False")], same_node)
    event = await next_event(response)
    assert event["type"] == "MODIFIED"
    assert event["object"]["status"]["conditions"][0]["status"] == "False"
    assert int(event["object"]["metadata"]["resourceVersion"]) == version + 1


async def test_timeout_seconds_ends_the_watch(api: TestClient[Any, Any]) -> None:
    response = await watch(api, "/api/v1/namespaces/shop/pods?watch=1&timeoutSeconds=1")
    lines = await asyncio.wait_for(response.content.read(), 10)
    names = [orjson.loads(line)["object"]["metadata"]["name"] for line in lines.splitlines()]
    assert names == ["a", "b"]  # the initial ADDED events, then the end


async def test_a_table_watch_carries_one_row_per_event(
    api: TestClient[Any, Any], feed: ObjectFeed
) -> None:
    response = await watch(
        api, f"/api/v1/pods?watch=1&resourceVersion={feed.resource_version}", Accept=TABLE
    )
    feed.replace("pods", [pod("a"), pod("b"), pod("c")])
    feed.replace("pods", [pod("a"), pod("b"), pod("c"), pod("d")])
    first, second = await next_event(response), await next_event(response)
    assert first["object"]["kind"] == "Table"
    assert first["object"]["rows"][0]["cells"][0] == "c"
    assert first["object"]["columnDefinitions"][0]["name"] == "Name"
    assert second["object"]["rows"][0]["cells"][0] == "d"
    assert second["object"]["columnDefinitions"] == []


async def test_bad_watch_parameters_get_a_400_status(api: TestClient[Any, Any]) -> None:
    response = await api.get("/api/v1/pods?watch=1&resourceVersion=abc", headers=AUTH)
    assert response.status == 400
    assert (await response.json())["kind"] == "Status"


async def test_discovery_lists_watch_for_the_core_resources(api: TestClient[Any, Any]) -> None:
    body = await (await api.get("/api/v1", headers=AUTH)).json()
    assert {r["name"]: r["verbs"] for r in body["resources"]}["pods"] == ["get", "list", "watch"]
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    body = await (await api.get("/api", headers={**AUTH, "Accept": aggregated})).json()
    verbs = {r["resource"]: r["verbs"] for r in body["items"][0]["versions"][0]["resources"]}
    assert verbs["nodes"] == ["get", "list", "watch"]


async def test_without_a_feed_a_watch_gets_405(core_client: TestClient[Any, Any]) -> None:
    response = await core_client.get("/api/v1/pods?watch=1", headers=AUTH)
    assert response.status == 405
