"""History from a real Prometheus that scrapes kubepulse's exposition every second.

Needs Debian's `prometheus` package (/usr/bin/prometheus); the test installs it when it
is missing and it can (root with apt-get), and skips only when neither works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from kubepulse.kube.inventory import StaticInventory
from kubepulse.store.exposition import metric_name, prometheus_handler, render
from kubepulse.store.points import MetricsStore
from kubepulse.store.prometheus import PrometheusError, PrometheusHistory, selector
from tests.store.test_exposition import inventory, samples_of, scraped_store
from tests.support import free_port, wait_for
from tests.top.conftest import ServerThread

SCRAPE_INTERVAL = 1


def prometheus_binary() -> str | None:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "prometheus"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
            return None
    return shutil.which("prometheus")


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


def api(url: str, query: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(
        f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}", timeout=5
    ) as response:
        return json.load(response)["data"]["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    binary = prometheus_binary()
    if binary is None:
        pytest.skip("no prometheus binary and it cannot be installed (apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("prometheus")
    with exposition_server() as (exposition, store, inv):
        config = tmp / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {SCRAPE_INTERVAL}s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: kubepulse\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{exposition.port}']\n"
        )
        port = free_port()
        log = (tmp / "prometheus.log").open("w")
        started = time.time()
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            # Three scrapes in: every step of two seconds in the range holds samples.
            probe = f'count_over_time({metric_name("node", "cpu")}{{node="node-a"}}[1m]) >= 3'
            wait_for(lambda: api(url, probe), 20, "Prometheus to ingest three scrapes")
            exposed = samples_of(render(store, inv))
            yield Running(url, exposed, started)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


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
