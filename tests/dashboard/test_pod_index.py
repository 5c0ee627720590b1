"""The dashboard's PodIndex gives what a dict per pod from MetricsStore.pods() gives.

A random cluster with the awkward cases (a container with one point, a counter that went
back, a pod the inventory does not name, an inventory pod without metrics, a pod that
moved between nodes) is read through the index and through a plain reference built from
the store's public rates; then nodes are scraped again, forgotten, and the inventory is
replaced, and the index must follow each change.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kubepulse.dashboard import pod_index as data
from kubepulse.dashboard.pod_index import TOP, Access, PodIndex
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import node_from_object, pod_from_object
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore
from tests.api.conftest import node_object, pod_object
from tests.dashboard.conftest import parts, root_app, sign_in

NAMESPACES = ("default", "shop", "kube-system", "data")
T0 = 1_700_000_000.0
EVERYTHING = Access()


class Cluster:
    """A random cluster scraped into a MetricsStore, one scrape per call to scrape()."""

    def __init__(self, nodes: int = 12, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.store = MetricsStore(15.0)
        self.at = T0
        self.nodes = [f"node-{i:02d}" for i in range(nodes)]
        # node -> [(namespace, pod, [container names])]
        self.pods: dict[str, list[tuple[str, str, list[str]]]] = {}
        for node in self.nodes:
            self.pods[node] = [
                (
                    self.rng.choice(NAMESPACES),
                    f"{node}-pod-{p}",
                    [f"c{c}" for c in range(self.rng.randint(1, 3))],
                )
                for p in range(self.rng.randint(3, 8))
            ]
        self.cpu: dict[tuple[str, str, str], int] = {}

    def inventory(self, leave_out: int = 2, extra: int = 2) -> StaticInventory:
        """Node and Pod objects: all but `leave_out` scraped pods, and `extra` pods that
        are never scraped."""
        nodes = [node_from_object(node_object(n, {}, "127.0.0.1")) for n in self.nodes]
        objects: list[dict[str, Any]] = [
            pod_object(ns, name, node, {"app": name[-1]}, containers)
            for node in self.nodes
            for ns, name, containers in self.pods[node]
        ][leave_out:]
        objects += [
            pod_object("data", f"pending-{i}", self.nodes[0], {}, ["c0"]) for i in range(extra)
        ]
        return StaticInventory(nodes, [pod_from_object(o) for o in objects])

    def scrape(self, nodes: list[str] | None = None) -> None:
        """A scrape of these nodes (default all): counters advance, each container at its
        own millisecond timestamp; the first pod of node-01 gains a new container (one
        point), and a counter of node-02 goes back."""
        self.at += 15.0
        rng = self.rng
        for node in nodes or self.nodes:
            samples = []
            for i, (ns, name, containers) in enumerate(self.pods[node]):
                if node == "node-01" and i == 0 and self.at > T0 + 15:
                    containers = [*containers, f"new-{int(self.at)}"]
                cs = []
                for c in containers:
                    key = (ns, name, c)
                    step = rng.randint(0, 3_000_000_000)
                    if node == "node-02" and i == 0 and c == "c0":
                        step = -1_000_000  # a counter that went back: left out
                    self.cpu[key] = max(0, self.cpu.get(key, 10**9) + step)
                    ts = round(self.at - rng.uniform(0, 2), 3)
                    usage = Usage(ts, self.cpu[key], rng.randint(10**6, 10**9))
                    cs.append(ContainerSample(c, T0 - 3600, usage))
                samples.append(PodSample(ns, name, f"uid-{name}", T0 - 3600, tuple(cs)))
            node_usage = Usage(self.at, int(self.at * 1e9), 8 * 2**30)
            self.store.store(node, NodeSample(node, T0 - 86400, node_usage), tuple(samples))


def reference(
    store: MetricsStore, inventory: StaticInventory, access: Access
) -> tuple[dict[str, list[float]], list[tuple[float, tuple[str, str]]], list[Any]]:
    """Namespaces, top by CPU, and the pods sorted by CPU, from store.pods()."""
    rates = store.pods()
    pods = {(p.namespace, p.name): p for p in inventory.pods()}
    keys = {k for k in pods.keys() | rates.keys() if access.sees(k[0])}
    usage = {
        k: (sum(r.cpu_nanocores for _, r in rates[k].containers),
            sum(r.working_set_bytes for _, r in rates[k].containers))
        for k in keys if k in rates
    }  # fmt: skip
    namespaces: dict[str, list[float]] = {}
    for ns, name in keys:
        total = namespaces.setdefault(ns, [0, 0, 0])
        total[0] += 1
        cpu, mem = usage.get((ns, name), (0, 0))
        total[1] += cpu
        total[2] += mem
    top = sorted(((cpu, k) for k, (cpu, _) in usage.items()), reverse=True)[:TOP]
    by_cpu = sorted(usage, key=lambda k: (-usage[k][0], k)) + sorted(keys - usage.keys())
    return namespaces, top, by_cpu


def check(index: PodIndex, store: MetricsStore, inventory: StaticInventory) -> None:
    for access in (EVERYTHING, Access(namespaces=frozenset({"shop", "data"}))):
        namespaces, top, by_cpu = reference(store, inventory, access)
        assert index.namespace_totals(access) == namespaces
        rows = index.top(access, "cpu")
        assert [(r["namespace"], r["name"]) for r in rows] == [k for _, k in top]
        assert [r["used"] for r in rows] == [round(cpu / 1e6, 3) for cpu, _ in top]
        if access is EVERYTHING:
            assert index.view().by_cpu == by_cpu


def test_the_index_matches_a_dict_per_pod_through_every_change() -> None:
    cluster = Cluster()
    cluster.scrape()
    cluster.scrape()
    inventory = cluster.inventory()
    index = PodIndex(cluster.store, inventory)
    view = index.view()
    assert len(view.usage) > 30 and view.unused  # the cases are there
    check(index, cluster.store, inventory)

    cluster.scrape(["node-03", "node-04"])  # two nodes scraped again
    assert index.view() is not view
    check(index, cluster.store, inventory)

    cluster.store.forget("node-05")
    check(index, cluster.store, inventory)

    moved = cluster.pods["node-06"].pop()  # a pod moves to another node
    cluster.pods["node-07"].append(moved)
    cluster.scrape(["node-07"])  # ...and is stored under both until node-06's next scrape
    cluster.scrape(["node-07"])
    assert not index.view().exact_per_node
    check(index, cluster.store, inventory)

    replaced = cluster.inventory(leave_out=5, extra=4)
    index.inventory = replaced
    check(index, cluster.store, replaced)


def test_a_view_is_reused_until_something_changes() -> None:
    cluster = Cluster()
    cluster.scrape()
    cluster.scrape()
    index = PodIndex(cluster.store, cluster.inventory())
    first = index.view()
    assert index.view() is first
    cluster.scrape(["node-00"])
    assert index.view() is not first


async def test_after_a_cycle_the_next_request_finds_the_nodes_digested(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = Cluster()
    cluster.scrape()
    cluster.scrape()
    index = PodIndex(cluster.store, cluster.inventory())
    index.namespace_totals(EVERYTHING)  # a request: the dashboard is watched
    digested: list[str] = []
    real = data.digest
    monkeypatch.setattr(data, "digest", lambda n, *a: digested.append(n) or real(n, *a))

    cluster.scrape()
    index.tick_done()
    await index.prepared()
    assert sorted(digested) == sorted(cluster.nodes)
    view = index.view()
    assert "namespaces" in view.__dict__  # built by prepare(), as the last view had it
    index.namespace_totals(EVERYTHING)
    assert len(digested) == len(cluster.nodes)  # the request digested nothing more


async def test_nothing_is_prepared_while_nobody_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster()
    cluster.scrape()
    cluster.scrape()
    index = PodIndex(cluster.store, cluster.inventory())
    digested: list[str] = []
    monkeypatch.setattr(data, "digest", lambda n, *a: digested.append(n))
    index.tick_done()
    await index.prepared()
    assert digested == []


async def test_the_overview_and_pods_endpoints_answer_from_the_index(aiohttp_client: Any) -> None:
    cluster = Cluster()
    cluster.scrape()
    cluster.scrape()
    inventory = cluster.inventory()
    client = await aiohttp_client(
        root_app(parts(history=None, store=cluster.store, pods_and_nodes=inventory))
    )
    await sign_in(client)
    namespaces, top, by_cpu = reference(cluster.store, inventory, EVERYTHING)
    overview = await (await client.get("/dashboard/api/overview")).json()
    assert overview["totals"]["pods"] == len(by_cpu)
    assert [(n["name"], n["pods"]) for n in overview["namespaces"]] == sorted(
        (ns, t[0]) for ns, t in namespaces.items()
    )
    assert [(p["namespace"], p["name"]) for p in overview["top_cpu"]] == [k for _, k in top]
    pods = await (await client.get("/dashboard/api/pods")).json()
    assert pods["total"] == len(by_cpu)
    assert [(p["namespace"], p["name"]) for p in pods["items"]] == by_cpu
    shop = await (await client.get("/dashboard/api/pods", params={"namespace": "shop"})).json()
    assert [(p["namespace"], p["name"]) for p in shop["items"]] == [
        k for k in by_cpu if k[0] == "shop"
    ]
