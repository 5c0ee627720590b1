"""MetricsStore.store_usage keeps rates another metrics API served, and serves them back
through the same readers as scraped counters."""

from __future__ import annotations

import pytest

from kubepulse.store.points import MetricsStore, PodRates, Rate

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
    store = MetricsStore(15.0)
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
    store = MetricsStore(15.0)
    store.store_usage("node-a", node, pods)
    assert (store.node("node-a") is not None) is served_node
    assert len(store.pods()) == served_pods
    assert store.points() == {"node": int(served_node), "container": served_pods}


def test_store_usage_replaces_what_was_stored_for_the_node() -> None:
    store = MetricsStore(15.0)
    old = PodRates(T, 15.0, (("c", Rate(T, 15.0, 10, MI)),))
    store.store_usage("node-a", Rate(T, 15.0, 10, MI), {("ns", "old"): old})
    generation = store.generation("node-a")
    new = PodRates(T + 15, 15.0, (("c", Rate(T + 15, 15.0, 20, MI)),))
    store.store_usage("node-a", Rate(T + 15, 15.0, 20, MI), {("ns", "new"): new})
    assert store.pods() == {("ns", "new"): new}
    assert store.node("node-a") == Rate(T + 15, 15.0, 20, MI)
    assert store.generation("node-a") > generation


def test_rated_usage_makes_the_store_ready() -> None:
    store = MetricsStore(15.0)
    assert not store.ready()
    pod = PodRates(T, 15.0, (("c", Rate(T, 15.0, 10, MI)),))
    store.store_usage("node-a", Rate(T, 15.0, 10, MI), {("ns", "p"): pod})
    assert store.ready()
    assert store.has_two_points("node-a")
