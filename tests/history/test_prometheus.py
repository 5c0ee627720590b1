"""History from a real Prometheus that scrapes kubepulse's exposition every second.

Needs Debian's `prometheus` package (/usr/bin/prometheus): see prometheus_run.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from kubepulse.api.exposition import metric_name, prometheus_handler, render
from kubepulse.history.prometheus import (
    PrometheusError,
    PrometheusHistory,
    alternation,
    check_url,
    selector,
)
from kubepulse.kube.inventory import StaticInventory
from kubepulse.store.points import MetricsStore
from tests.api.test_exposition import inventory, samples_of, scraped_store
from tests.history.prometheus_run import api, require_prometheus, run_prometheus, scrape_job
from tests.support import free_port, wait_for
from tests.top.conftest import ServerThread


@contextmanager
def exposition_server() -> Iterator[tuple[ServerThread, MetricsStore, StaticInventory]]:
    """The exposition on 127.0.0.1 (plain HTTP), from its own thread and event loop so that
    it keeps answering Prometheus whatever the test's loop is doing."""
    store, inv = scraped_store(), inventory()
    app = web.Application()
    app.router.add_get("/metrics", prometheus_handler(store, inv))
    with ServerThread(app, None) as server:  # type: ignore[arg-type]  # None: no TLS
        yield server, store, inv


@dataclass
class Running:
    url: str
    exposed: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    started: float


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    binary = require_prometheus()
    tmp = tmp_path_factory.mktemp("prometheus")
    with exposition_server() as (exposition, store, inv):
        started = time.time()
        with run_prometheus(binary, tmp, scrape_job(f"127.0.0.1:{exposition.port}")) as prom:
            # Three scrapes in: every step of two seconds in the range holds samples.
            probe = f'count_over_time({metric_name("node", "cpu")}{{node="node-a"}}[1m]) >= 3'
            wait_for(lambda: api(prom.url, probe), 20, "Prometheus to ingest three scrapes")
            exposed = samples_of(render(store, inv))
            yield Running(prom.url, exposed, started)


SERIES = [
    ("node", "", "node-a", "", {"node": "node-a"}),
    ("pod", "default", "web-0", "", {"namespace": "default", "pod": "web-0"}),
    (
        "container",
        "kube-system",
        "dns-1",
        "coredns",
        {"namespace": "kube-system", "pod": "dns-1", "container": "coredns"},
    ),
    ("namespace", "default", "", "", {"namespace": "default"}),
]


@pytest.mark.parametrize(("kind", "namespace", "name", "container", "labels"), SERIES)
async def test_range_from_prometheus_matches_what_was_exposed(
    prometheus: Running,
    kind: str,
    namespace: str,
    name: str,
    container: str,
    labels: dict[str, str],
) -> None:
    key = tuple(sorted(labels.items()))
    cpu = prometheus.exposed[(metric_name(kind, "cpu"), key)]
    mem = prometheus.exposed[(metric_name(kind, "memory"), key)]
    async with PrometheusHistory(prometheus.url) as history:
        points = await history.series(
            kind, namespace, name, container, prometheus.started - 10, time.time(), step=2
        )
    assert points, "Prometheus returned no points"
    assert all(p.timestamp % 2 == 0 for p in points)  # aligned as history.query()'s
    assert {(p.cpu_nanocores, p.cpu_max, p.memory_bytes, p.memory_max) for p in points} == {
        (cpu, cpu, mem, mem)
    }


async def test_many_nodes_at_once_are_each_what_one_series_gives(prometheus: Running) -> None:
    start, end = prometheus.started - 10, time.time()
    async with PrometheusHistory(prometheus.url) as history:
        many = await history.node_series(["node-a", "node-b", "node-z"], start, end, step=2)
        one = {
            name: await history.series("node", "", name, "", start, end, step=2)
            for name in ("node-a", "node-b")
        }
        # A dot stands for itself: "node.a" is not "node-a".
        assert await history.node_series(["node.a"], start, end, step=2) == {"node.a": []}
    assert many["node-a"] and many["node-b"]
    assert {n: many[n] for n in one} == one
    assert many["node-z"] == []  # never seen: no points


async def test_the_cluster_series_is_the_sum_of_every_node(prometheus: Running) -> None:
    exposed = prometheus.exposed.items()
    cpu = sum(v for (name, _), v in exposed if name == metric_name("node", "cpu"))
    mem = sum(v for (name, _), v in exposed if name == metric_name("node", "memory"))
    assert cpu > 0 and mem > 0
    async with PrometheusHistory(prometheus.url) as history:
        points = await history.series(
            "cluster", "", "", "", prometheus.started - 10, time.time(), step=2
        )
    assert points, "Prometheus returned no points"
    assert {(p.cpu_nanocores, p.memory_bytes) for p in points} == {(cpu, mem)}


async def test_pods_and_their_containers_are_what_was_exposed(prometheus: Running) -> None:
    """What the dashboard asks of a pod no longer served: which pods had series, and a
    pod's containers."""
    exposed_pods = {
        (dict(labels)["namespace"], dict(labels)["pod"])
        for (name, labels) in prometheus.exposed
        if name == metric_name("pod", "memory")
    }
    containers = sorted(
        dict(labels)["container"]
        for (name, labels) in prometheus.exposed
        if name == metric_name("container", "memory")
        and dict(labels)["namespace"] == "kube-system"
        and dict(labels)["pod"] == "dns-1"
    )
    start, end = prometheus.started - 10, time.time()
    async with PrometheusHistory(prometheus.url) as history:
        pods = await history.pods(start, end)
        found = await history.containers("kube-system", "dns-1", start, end)
        nothing = await history.containers("kube-system", "never-was", start, end)
    assert set(pods) == exposed_pods and exposed_pods
    assert all(last is None for last in pods.values())
    assert found == containers == ["coredns"]
    assert nothing == []


@pytest.mark.parametrize(
    "names",
    [["node-a"], ["a.b", "a-b"], ["x(1)|y", "[z]", "^w$", "v+*?{2}", "back\\slash"]],
)
def test_an_alternation_matches_exactly_its_names(names: list[str]) -> None:
    # Python's re reads these escapes as RE2 does; PromQL anchors =~ at both ends.
    pattern = re.compile(alternation(names))
    for name in names:
        assert pattern.fullmatch(name)
    for other in ("node-b", "aXb", "x(1)", "y", "z", "w", "v", "backslash", "node-aa"):
        assert not pattern.fullmatch(other)


async def test_a_series_prometheus_never_saw_has_no_points(prometheus: Running) -> None:
    async with PrometheusHistory(prometheus.url) as history:
        points = await history.series(
            "pod", "default", "no-such-pod", "", prometheus.started, time.time(), step=2
        )
    assert points == []


async def test_a_query_prometheus_refuses_raises_its_error(prometheus: Running) -> None:
    async with PrometheusHistory(prometheus.url) as history:
        with pytest.raises(PrometheusError, match="bad_data"):
            # 12,000 points per series is over Prometheus's limit of 11,000.
            await history.series("node", "", "node-a", "", 0, 12_000, step=1)


async def test_an_unreachable_prometheus_raises() -> None:
    async with PrometheusHistory(f"http://127.0.0.1:{free_port()}") as history:
        with pytest.raises(PrometheusError, match=re.escape("127.0.0.1")):
            await history.series("node", "", "node-a", "", 0, 60, step=15)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("node", "cpu", "", "n1", ""), 'kubepulse_node_cpu_usage_nanocores{node="n1"}'),
        (
            ("container", "memory", "ns", "p", "c"),
            'kubepulse_container_memory_working_set_bytes{namespace="ns",pod="p",container="c"}',
        ),
        (
            ("namespace", "cpu", "ns", "", ""),
            'kubepulse_namespace_cpu_usage_nanocores{namespace="ns"}',
        ),
        (
            ("pod", "cpu", 'a"b', "p\\q", ""),
            r'kubepulse_pod_cpu_usage_nanocores{namespace="a\"b",pod="p\\q"}',
        ),
    ],
)
def test_selectors_name_one_series(args: tuple[str, str, str, str, str], expected: str) -> None:
    assert selector(*args) == expected


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        selector("deployment", "cpu", "ns", "d", "")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9090", "https://prometheus.monitoring.svc/prom", "http://[::1]:9090/"],
)
def test_a_prometheus_url_is_http_or_https_with_a_host(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("127.0.0.1:9090", "not an http:// or https:// URL"),
        ("ftp://127.0.0.1:9090", "not an http:// or https:// URL"),
        ("http://", "not an http:// or https:// URL"),
        ("", "not an http:// or https:// URL"),
        ("http://127.0.0.1:port", "is not a URL"),
        ("http://127.0.0.1:9090/api/v1/query?query=up", "without a query or fragment"),
    ],
)
def test_anything_else_is_refused_with_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        check_url(url)


async def test_messages_leave_out_the_password_in_the_url() -> None:
    port = free_port()
    async with PrometheusHistory(f"http://reader:s3cret@127.0.0.1:{port}") as history:
        assert history.shown == f"http://127.0.0.1:{port}"
        with pytest.raises(PrometheusError) as caught:
            await history.series("node", "", "node-a", "", 0, 60, step=15)
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith(f"http://127.0.0.1:{port}: ")


async def test_a_user_and_password_in_the_url_are_sent_as_basic_auth(aiohttp_server: Any) -> None:
    seen: list[str | None] = []

    async def query_range(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"status": "success", "data": {"result": []}})

    app = web.Application()
    app.router.add_post("/api/v1/query_range", query_range)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with PrometheusHistory(f"http://reader:s3cret@127.0.0.1:{server.port}") as history:
        assert await history.series("node", "", "node-a", "", 0, 60, step=15) == []
    expected = "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert seen == [expected] * 4
