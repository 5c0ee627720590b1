"""The live view over a server that offers the metrics API's watch: it changes as each
scrape is stored, not at --interval."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse.api.metrics_watch import MetricsWatchers
from kubepulse.cli.up import kubeconfig
from tests.api.conftest import (
    COREDNS,
    MI,
    T1,
    TOKEN,
    _container,
    _node,
    _pod,
    filled_store,
    inventory,
)
from tests.top.conftest import ServerThread, cluster_app, tls
from tests.top.test_live import Tmux, rows, start

# Polled this seldom, the view would show no change within any test's deadline.
SELDOM = ("--watch", "--interval", "3600")


class WatchedCluster:
    """A metrics API with watch whose test stores node-b's next scrapes itself."""

    def __init__(self, tmp: Path) -> None:
        self.store = filled_store()
        self.watchers = MetricsWatchers(self.store, inventory())
        ca, ctx = tls(tmp)
        self.server = ServerThread(cluster_app(self.store, metrics_watch=self.watchers), ctx)
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            kubeconfig(f"https://127.0.0.1:{self.server.port}", ca.cert_pem(), TOKEN)
        )

    def scrape_node_b(self, seconds: int, nginx_cores: int | None) -> None:
        """node-b scraped `seconds` after the fixture's second scrape, with web-1 using
        nginx_cores since then, or without web-1 (None); stored on the server's loop, as
        the scrape manager stores it."""

        async def store() -> None:
            t = T1 + seconds
            nginx = _container(
                "nginx", t, 1_500_000_000 + seconds * (nginx_cores or 0) * 10**9, 7 * MI
            )
            pods = (_pod("default", "web-1", nginx),) if nginx_cores is not None else ()
            self.store.store("node-b", _node("node-b", t, 10**12 + 10**10, 900 * MI), pods)
            self.watchers.node_stored("node-b")

        asyncio.run_coroutine_threadsafe(store(), self.server.loop).result(10)


@pytest.fixture
def pane() -> Iterator[Tmux]:
    t = Tmux()
    yield t
    t.close()


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[WatchedCluster]:
    cluster = WatchedCluster(tmp_path)
    with cluster.server:
        yield cluster


def test_the_live_view_follows_the_metrics_watch_as_scrapes_are_stored(
    pane: Tmux, watched: WatchedCluster
) -> None:
    start(pane, watched.kubeconfig, "pods", "-A", watch=SELDOM)
    screen = pane.wait_for_text("web-1", "the pods to appear")
    assert "as scraped" in screen and "every 3600s" not in screen
    assert rows(screen) == ["web-1", COREDNS]
    watched.scrape_node_b(15, nginx_cores=2)
    screen = pane.wait_until(
        lambda s: any(" web-1 " in line and " 2000m " in line for line in s.splitlines()),
        "web-1's new scrape: 2 cores",
    )
    web = next(line for line in screen.splitlines() if " web-1 " in line)
    assert "7Mi" in web.split()
    watched.scrape_node_b(30, nginx_cores=None)
    screen = pane.wait_until(lambda s: "web-1" not in s, "web-1 gone with node-b's scrape")
    assert rows(screen) == [COREDNS]


def test_the_live_view_polls_a_server_without_the_metrics_watch(pane: Tmux, tmp_path: Path) -> None:
    ca, ctx = tls(tmp_path)
    with ServerThread(cluster_app(filled_store()), ctx) as server:
        config = tmp_path / "kubeconfig"
        config.write_text(kubeconfig(f"https://127.0.0.1:{server.port}", ca.cert_pem(), TOKEN))
        start(pane, config, "nodes")
        screen = pane.wait_for_text("node-a")
        assert "every 0.5s" in screen and "as scraped" not in screen
