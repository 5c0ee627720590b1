"""The rendered PodMetricsList: parts reused until a scrape, prerendered after a cycle."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kubepulse.api import metrics, pod_list
from kubepulse.api.pod_list import RenderedPods
from kubepulse.kube.objects import Node, Pod
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore
from tests.api.conftest import COREDNS, TOKEN, MakeClient

CREATED = "2026-11-26T06:00:00Z"
T = 1_790_000_000.0


def scrape(store: MetricsStore, nodes: int, pods: int, t: float, cpu_seconds: float) -> None:
    for n in range(nodes):
        node = f"node-{n}"
        samples = tuple(
            PodSample(
                "ns",
                f"pod-{n}-{p}",
                "uid",
                T - 3600,
                (ContainerSample("app", T - 3600, Usage(t, int(cpu_seconds * 1e9), 4096 * 1000)),),
            )
            for p in range(pods)
        )
        store.store(node, NodeSample(node, T - 7200, Usage(t, int(t * 1e9), 1 << 30)), samples)


def inventory_pods(nodes: int, pods: int) -> list[Pod]:
    return sorted(
        (
            Pod(namespace="ns", name=f"pod-{n}-{p}", node_name=f"node-{n}")
            for n in range(nodes)
            for p in range(pods)
        ),
        key=lambda p: (p.namespace, p.name),
    )


def cpu_of(body: bytes) -> set[str]:
    return {i["containers"][0]["usage"]["cpu"] for i in orjson.loads(body)["items"]}


def test_a_node_is_rendered_once_per_scrape_however_many_lists() -> None:
    store = MetricsStore(15.0)
    scrape(store, 3, 4, T, 0)
    scrape(store, 3, 4, T + 15, 15)  # one core
    rendered, pods = RenderedPods(store), inventory_pods(3, 4)
    first = b"".join(rendered.body(pods, CREATED, whole=True))
    again = b"".join(rendered.body(pods, CREATED, whole=True))
    assert first == again and rendered.renders == 3
    assert cpu_of(first) == {"1"}
    scrape(store, 3, 4, T + 30, 45)  # two cores
    after = b"".join(rendered.body(pods, CREATED, whole=True))
    assert rendered.renders == 6 and cpu_of(after) == {"2"}


def test_stored_nodes_are_prerendered_only_while_clients_list() -> None:
    store = MetricsStore(15.0)
    scrape(store, 2, 3, T, 0)
    scrape(store, 2, 3, T + 15, 15)
    rendered, pods = RenderedPods(store), inventory_pods(2, 3)
    rendered.node_stored("node-0")  # nobody has listed: nothing to do
    assert rendered.renders == 0
    rendered.body(pods, CREATED, whole=True)
    assert rendered.renders == 2
    scrape(store, 2, 3, T + 30, 45)
    for node in ("node-0", "node-1"):
        rendered.node_stored(node)
    assert rendered.renders == 4  # rendered as stored, before anyone asked
    body = b"".join(rendered.body(pods, CREATED, whole=True))
    assert rendered.renders == 4 and cpu_of(body) == {"2"}


def test_nodes_no_list_needed_for_two_resolutions_are_not_prerendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(pod_list.time, "monotonic", lambda: clock[0])
    store = MetricsStore(15.0)
    scrape(store, 1, 2, T, 0)
    scrape(store, 1, 2, T + 15, 15)
    rendered = RenderedPods(store)
    rendered.body(inventory_pods(1, 2), CREATED, whole=True)
    clock[0] += 31  # more than two resolutions without a LIST
    rendered.tick_done()
    scrape(store, 1, 2, T + 30, 45)
    rendered.node_stored("node-0")
    assert rendered.renders == 1


def test_pods_without_a_node_are_found_in_the_store() -> None:
    store = MetricsStore(15.0)
    scrape(store, 2, 2, T, 0)
    scrape(store, 2, 2, T + 15, 15)
    pods = [Pod(namespace="ns", name=name) for name in ("pod-0-1", "pod-1-0", "pod-9-9")]
    items = orjson.loads(b"".join(RenderedPods(store).body(pods, CREATED, whole=False)))["items"]
    assert [i["metadata"]["name"] for i in items] == ["pod-0-1", "pod-1-0"]


@pytest.mark.parametrize("chunk_items", [1, 2, 1000], ids=["one", "two", "all at once"])
async def test_a_list_written_in_chunks_is_the_same_json(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, chunk_items: int
) -> None:
    monkeypatch.setattr(metrics, "CHUNK_ITEMS", chunk_items)
    client = await make_client()
    resp = await client.get(
        "/apis/metrics.k8s.io/v1beta1/pods", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    assert resp.content_length == len(orjson.dumps(body))
    assert [i["metadata"]["name"] for i in body["items"]] == ["web-1", COREDNS]


class ChangingInventory:
    """An inventory whose pods change between LISTs, as a watched cluster's do."""

    def __init__(self, pods: list[Pod]) -> None:
        self.snapshot = pods

    def nodes(self) -> list[Node]:
        return []

    def pods(self) -> list[Pod]:
        return self.snapshot


async def test_a_list_follows_the_inventory_when_its_snapshot_changes(
    make_client: MakeClient,
) -> None:
    store = MetricsStore(15.0)
    scrape(store, 2, 2, T, 0)
    scrape(store, 2, 2, T + 15, 15)
    pods = inventory_pods(2, 2)
    changing = ChangingInventory(pods[:2])
    client = await make_client(store=store, pods_and_nodes=changing)

    async def names() -> list[str]:
        resp = await client.get(
            "/apis/metrics.k8s.io/v1beta1/pods", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        return [i["metadata"]["name"] for i in (await resp.json())["items"]]

    assert await names() == ["pod-0-0", "pod-0-1"]
    changing.snapshot = list(reversed(pods))  # a new snapshot, in no particular order
    assert await names() == ["pod-0-0", "pod-0-1", "pod-1-0", "pod-1-1"]
