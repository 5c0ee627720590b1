"""The rate rule (store/rates.py): rates, pod sums and windows as the API serves them."""

from __future__ import annotations

import random
import time

import pytest

from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore
from kubepulse.store.rates import Columns, window

T0 = 1_700_000_100.0
MIB = 1 << 20


def _random_node(rng: random.Random, store: MetricsStore, node: str, at: float, odd: bool) -> None:
    """A scrape of a node: pods of 0 to 3 containers, each read a few ms apart; with
    `odd`, the cases that make a container or a pod not servable."""
    pods = []
    for p in range(12):
        containers = []
        for c in range(p % 4):
            cpu = int(at * 1e8) + rng.randint(0, 10**8) * (p + c)
            if odd and p == 5 and c == 0:
                cpu = 0  # the counter went back: the container is left out
            started = T0 - 3600
            if odd and p == 6:
                started = at - 1  # restarted since the last scrape: no rate
            ts = round(at - rng.uniform(0, 4), 3)
            if odd and p == 7:
                ts = at - rng.uniform(0, 4)  # not a whole millisecond
            containers.append(ContainerSample(f"c{c}", started, Usage(ts, cpu, (p + c) * MIB)))
        pods.append(PodSample("ns", f"{node}-pod-{p}", f"uid-{p}", T0 - 3600, tuple(containers)))
    if odd:
        pods.append(PodSample("ns", f"{node}-new", "uid-new", at, ()))
    store.store(node, NodeSample(node, T0 - 86400, Usage(at, int(at * 1e9), MIB)), tuple(pods))


@pytest.mark.parametrize("odd", [False, True], ids=["every-container-servable", "odd-cases"])
def test_pod_usage_is_what_the_store_serves(odd: bool) -> None:
    rng = random.Random(11)
    store = MetricsStore(resolution=15.0)
    for scrape in range(3):
        _random_node(rng, store, "node-a", T0 + 15 * scrape, odd and scrape == 2)
    columns = Columns()
    usage = store.node_pods("node-a").usage(columns)
    served = {(p.namespace, p.name): p for p in _served_pods(store, "node-a")}
    assert [u[0] for u in usage] == list(served)
    at = 0
    for key, cpu, mem, earliest, count in usage:
        rates = store.pod("node-a", *key)
        assert rates is not None
        assert (cpu, mem, earliest) == (
            sum(r.cpu_nanocores for _, r in rates.containers),
            sum(r.working_set_bytes for _, r in rates.containers),
            rates.timestamp,
        )
        assert sorted(columns.names[at : at + count]) == [n for n, _ in rates.containers]
        by_name = dict(rates.containers)
        for name, cpu_c in zip(
            columns.names[at : at + count], columns.cpu[at : at + count], strict=True
        ):
            assert cpu_c == by_name[name].cpu_nanocores
        at += count
    assert at == len(columns.names) == len(columns.ts) == len(columns.mem)


def _served_pods(store: MetricsStore, node: str) -> list[PodSample]:
    return [
        PodSample(ns, name, "", 0.0, ())
        for ns, name in store.node_pods(node)
        if store.pod(node, ns, name) is not None
    ]


def test_window_is_round_to_milliseconds() -> None:
    rng = random.Random(3)
    now = time.time()
    for i in range(200_000):
        if i % 3 == 0:  # between two millisecond timestamps, as kubelets give
            start = round(now - rng.uniform(0, 1e6), 3)
            seconds = round(start + rng.uniform(0.001, 120), 3) - start
        elif i % 3 == 1:
            seconds = rng.uniform(1e-4, 1e4)
        else:  # exact ties of the third decimal
            seconds = (rng.randint(1, 10**7) + 0.5) / 1000
        assert window(seconds) == round(seconds, 3), seconds
