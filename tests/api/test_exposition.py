"""The Prometheus exposition of every node, pod, container and namespace series."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from kubepulse.api.exposition import CONTENT_TYPE, prometheus_handler, render
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import Node, Pod
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore

T0 = 1_700_000_000.0
MIB = 1 << 20
CORE = 10**9

# node -> pods as (namespace, name, {container: (cores, MiB)})
CLUSTER: dict[str, list[tuple[str, str, dict[str, tuple[float, int]]]]] = {
    "node-a": [
        ("default", "web-0", {"app": (0.25, 100), "sidecar": (0.05, 20)}),
        ("kube-system", "dns-1", {"coredns": (0.1, 30)}),
    ],
    "node-b": [("default", "web-1", {"app": (0.5, 120)})],
}
NODE_CORES = {"node-a": 1.5, "node-b": 2.0}


def scraped_store(cluster: Any = None) -> MetricsStore:
    """A store after two scrapes 15 s apart: every series has a rate."""
    cluster = CLUSTER if cluster is None else cluster
    store = MetricsStore(resolution=15.0)
    for i, ts in enumerate((T0, T0 + 15)):
        for node, pods in cluster.items():
            samples = tuple(
                PodSample(
                    ns,
                    name,
                    f"uid-{name}",
                    T0 - 3600,
                    tuple(
                        ContainerSample(
                            c, T0 - 3600, Usage(ts, int(i * 15 * cores * CORE), mib * MIB)
                        )
                        for c, (cores, mib) in containers.items()
                    ),
                )
                for ns, name, containers in pods
            )
            cpu = int(i * 15 * NODE_CORES.get(node, 1.0) * CORE)
            store.store(node, NodeSample(node, T0 - 86400, Usage(ts, cpu, 4096 * MIB)), samples)
    return store


def inventory(cluster: Any = None, with_pods: bool = True) -> StaticInventory:
    cluster = CLUSTER if cluster is None else cluster
    nodes = [Node(name=n) for n in cluster]
    pods = [
        Pod(namespace=ns, name=name, node_name=node)
        for node, node_pods in cluster.items()
        for ns, name, _ in node_pods
    ]
    return StaticInventory(nodes, pods if with_pods else [])


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


@pytest.mark.parametrize(
    ("name", "labels", "value"),
    [
        ("kubepulse_node_cpu_usage_nanocores", {"node": "node-a"}, 1.5 * CORE),
        ("kubepulse_node_memory_working_set_bytes", {"node": "node-b"}, 4096 * MIB),
        ("kubepulse_pod_cpu_usage_nanocores", {"namespace": "default", "pod": "web-0"}, 0.3 * CORE),
        (
            "kubepulse_pod_memory_working_set_bytes",
            {"namespace": "default", "pod": "web-0"},
            120 * MIB,
        ),
        (
            "kubepulse_container_cpu_usage_nanocores",
            {"namespace": "default", "pod": "web-0", "container": "sidecar"},
            0.05 * CORE,
        ),
        (
            "kubepulse_container_memory_working_set_bytes",
            {"namespace": "kube-system", "pod": "dns-1", "container": "coredns"},
            30 * MIB,
        ),
        ("kubepulse_namespace_cpu_usage_nanocores", {"namespace": "default"}, 0.8 * CORE),
        ("kubepulse_namespace_memory_working_set_bytes", {"namespace": "default"}, 240 * MIB),
        ("kubepulse_namespace_memory_working_set_bytes", {"namespace": "kube-system"}, 30 * MIB),
    ],
)
def test_every_series_is_exposed_with_the_served_value(
    name: str, labels: dict[str, str], value: float
) -> None:
    exposed = samples_of(render(scraped_store(), inventory()))
    assert exposed[(name, tuple(sorted(labels.items())))] == pytest.approx(value, rel=1e-9)


def test_counts_of_series_per_family() -> None:
    exposed = samples_of(render(scraped_store(), inventory()))
    names = [name for name, _ in exposed]
    assert {n: names.count(n) for n in set(names)} == {
        "kubepulse_node_cpu_usage_nanocores": 2,
        "kubepulse_node_memory_working_set_bytes": 2,
        "kubepulse_pod_cpu_usage_nanocores": 3,
        "kubepulse_pod_memory_working_set_bytes": 3,
        "kubepulse_container_cpu_usage_nanocores": 4,
        "kubepulse_container_memory_working_set_bytes": 4,
        "kubepulse_namespace_cpu_usage_nanocores": 2,
        "kubepulse_namespace_memory_working_set_bytes": 2,
    }


def test_every_family_has_help_and_gauge_type() -> None:
    text = render(scraped_store(), inventory())
    families = list(text_string_to_metric_families(text))
    assert len(families) == 8
    assert {f.type for f in families} == {"gauge"}
    assert all(f.documentation for f in families)


def test_only_pods_the_inventory_names_are_exposed_when_it_names_any() -> None:
    inv = inventory()
    inv = StaticInventory(inv.nodes(), [p for p in inv.pods() if p.name != "web-1"])
    text = render(scraped_store(), inv)
    assert 'pod="web-1"' not in text
    assert 'pod="web-0"' in text


def test_every_scraped_pod_is_exposed_when_the_inventory_names_no_pods() -> None:
    text = render(scraped_store(), inventory(with_pods=False))
    pods = {s for (n, s) in samples_of(text) if n == "kubepulse_pod_cpu_usage_nanocores"}
    assert len(pods) == 3


def test_a_node_with_one_scrape_has_no_value_yet() -> None:
    store = MetricsStore(resolution=15.0)
    store.store("node-a", NodeSample("node-a", T0 - 86400, Usage(T0, 0, MIB)), ())
    text = render(store, inventory({"node-a": []}))
    assert "node-a" not in text
    assert "# TYPE kubepulse_node_cpu_usage_nanocores gauge" in text


def test_label_values_are_escaped() -> None:
    odd = 'we"ird\\pod\nname'
    cluster = {"node-a": [("default", odd, {"app": (0.1, 10)})]}
    exposed = samples_of(render(scraped_store(cluster), inventory(cluster)))
    key = ("kubepulse_pod_cpu_usage_nanocores", (("namespace", "default"), ("pod", odd)))
    assert exposed[key] == pytest.approx(0.1 * CORE)


async def test_handler_serves_the_exposition_as_prometheus_text(aiohttp_client: Any) -> None:
    store, inv = scraped_store(), inventory()
    app = web.Application()
    app.router.add_get("/metrics/history", prometheus_handler(store, inv))
    client = await aiohttp_client(app)
    response = await client.get("/metrics/history")
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert await response.text() == render(store, inv)
