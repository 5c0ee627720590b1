"""RatedStore keeps rates another metrics API served, and serves them back through the
same readers (store/reading.py) as MetricsStore serves scraped counters."""

from __future__ import annotations

import pytest

from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore
from kubepulse.store.rated import RatedStore
from kubepulse.store.rates import Columns, PodRates, Rate

T = 1_700_000_000.0
MI = 1 << 20


@pytest.mark.parametrize(
    ("window", "cpu"),
    [
        (15.0, 487_558_164),  # metrics-server's documented example
        (15.003, 487_558_164),  # a window that is not a whole second
        (14.997, 1),
        (1.0, 0),
        (60.5, 64_000_000_000),  # 64 cores
        (30.0, 123_456_789_011),
    ],
)
def test_a_stored_rate_is_served_back_exactly(window: float, cpu: int) -> None:
    store = RatedStore(15.0)
    node = Rate(T, window, cpu, 732_212 * 1024)
    pod = PodRates(T, window, (("app", Rate(T, window, cpu, 5 * MI)),))
    store.store_usage("node-a", node, {("default", "web"): pod})
    assert store.node("node-a") == node
    assert store.pod("node-a", "default", "web") == pod
    assert store.pods() == {("default", "web"): pod}


@pytest.mark.parametrize(
    ("node", "pods", "served_node", "served_pods"),
    [
        # A NodeMetrics without PodMetrics: the node only.
        (Rate(T, 15.0, 10, MI), {}, True, 0),
        # Pods without their node's NodeMetrics (a node not yet measured).
        (None, {("ns", "p"): PodRates(T, 15.0, (("c", Rate(T, 15.0, 10, MI)),))}, False, 1),
        # A window of zero is no rate, as rate() says: left out.
        (Rate(T, 0.0, 10, MI), {}, False, 0),
        (None, {("ns", "p"): PodRates(T, 0.0, (("c", Rate(T, 0.0, 10, MI)),))}, False, 0),
    ],
)
def test_what_is_served_after_store_usage(
    node: Rate | None, pods: dict[tuple[str, str], PodRates], served_node: bool, served_pods: int
) -> None:
    store = RatedStore(15.0)
    store.store_usage("node-a", node, pods)
    assert (store.node("node-a") is not None) is served_node
    assert len(store.pods()) == served_pods
    assert store.points() == {"node": int(served_node), "container": served_pods}


def test_store_usage_replaces_what_was_stored_for_the_node() -> None:
    store = RatedStore(15.0)
    old = PodRates(T, 15.0, (("c", Rate(T, 15.0, 10, MI)),))
    store.store_usage("node-a", Rate(T, 15.0, 10, MI), {("ns", "old"): old})
    generation = store.generation("node-a")
    new = PodRates(T + 15, 15.0, (("c", Rate(T + 15, 15.0, 20, MI)),))
    store.store_usage("node-a", Rate(T + 15, 15.0, 20, MI), {("ns", "new"): new})
    assert store.pods() == {("ns", "new"): new}
    assert store.node("node-a") == Rate(T + 15, 15.0, 20, MI)
    assert store.generation("node-a") > generation


def test_rated_usage_makes_the_store_ready() -> None:
    store = RatedStore(15.0)
    assert not store.ready()
    pod = PodRates(T, 15.0, (("c", Rate(T, 15.0, 10, MI)),))
    store.store_usage("node-a", Rate(T, 15.0, 10, MI), {("ns", "p"): pod})
    assert store.ready()


def test_a_rated_node_reads_as_the_scraped_node_it_came_from() -> None:
    """What MetricsStore serves for two scrapes, stored in a RatedStore as another API
    would serve it, reads back the same through every NodePods reader."""
    scraped = MetricsStore(15.0)
    for i, t in enumerate((T - 15, T)):
        containers = (
            ContainerSample("app", T - 3600, Usage(t, i * 3_000_000_000, 5 * MI)),
            ContainerSample("log", T - 3600, Usage(t - 1, i * 150_000_000, MI)),
        )
        scraped.store(
            "node-a",
            NodeSample("node-a", T - 86_400, Usage(t, i * 30 * 10**9, 900 * MI)),
            (PodSample("shop", "web-0", "uid", T - 3600, containers),),
        )
    rated = RatedStore(15.0)
    rated.store_usage("node-a", scraped.node("node-a"), scraped.pods())

    assert rated.node("node-a") == scraped.node("node-a")
    assert rated.pods() == scraped.pods()
    from_points, from_rates = Columns(), Columns()
    assert scraped.node_pods("node-a").usage(from_points) == rated.node_pods("node-a").usage(
        from_rates
    )
    assert sorted(zip(from_points.names, from_points.cpu, from_points.mem, strict=True)) == (
        sorted(zip(from_rates.names, from_rates.cpu, from_rates.mem, strict=True))
    )
    assert list(rated.node_pods("node-a").pod_rates()) == list(
        scraped.node_pods("node-a").pod_rates()
    )
    assert rated.node_pods("node-a").samples() == scraped.node_pods("node-a").samples() == 3
