"""ScrapeManager with a scraper of its own: what a tick stores, forgets, tells its
recorders and observer, and how failures are kept and logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import Node, NodeAddress
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.scrape.bounds import ScrapeResult
from kubepulse.scrape.client import ScrapeError
from kubepulse.scrape.manager import ScrapeManager
from kubepulse.store.points import MetricsStore

T = 1_700_000_000.0
Answer = Callable[[Node, int], Awaitable[ScrapeResult]]


def node(name: str, **labels: str) -> Node:
    return Node(name=name, labels=labels, addresses=(NodeAddress("InternalIP", "127.0.0.9"),))


async def healthy(target: Node, tick: int) -> ScrapeResult:
    t = T + 15 * tick
    pod = PodSample(
        "default",
        f"{target.name}-web",
        "uid",
        T - 60,
        (ContainerSample("app", T - 60, Usage(t, tick * 10**9, 2**20)),),
    )
    return ScrapeResult(NodeSample(target.name, T - 600, Usage(t, tick * 10**10, 2**30)), (pod,))


class FakeScraper:
    """Answers each node as `answers[name]` says; healthy() for any other node."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.ticks = 0
        self.asked: list[str] = []

    async def scrape(self, target: Node) -> ScrapeResult:
        self.asked.append(target.name)
        return await self.answers.get(target.name, healthy)(target, self.ticks)


class Heard:
    """Recorder and Observer at once: what the manager told them, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.requests: list[tuple[str, bool]] = []

    def node_stored(self, node_name: str) -> None:
        self.events.append(f"stored {node_name}")

    def tick_done(self, seconds: float | None = None) -> None:
        self.events.append("tick" if seconds is None else "observed tick")

    def request_done(self, node: str, seconds: float, success: bool) -> None:
        self.requests.append((node, success))


def manager(
    nodes: list[Node], scraper: FakeScraper, heard: Heard, resolution: float = 2.0, **kw: object
) -> ScrapeManager:
    return ScrapeManager(
        scraper,
        MetricsStore(resolution),
        StaticInventory(nodes, []),
        resolution,
        recorder=heard,
        observer=heard,
        **kw,  # type: ignore[arg-type]
    )


async def ticks(m: ScrapeManager, scraper: FakeScraper, count: int) -> None:
    for _ in range(count):
        scraper.ticks += 1
        await m.tick()


async def test_a_tick_stores_every_node_and_tells_the_recorders_then_the_end() -> None:
    scraper, heard = FakeScraper(), Heard()
    m = manager([node("a"), node("b")], scraper, heard)

    await ticks(m, scraper, 2)

    assert m.store.node_names() == {"a", "b"}
    assert m.store.node("a") is not None  # two points: a rate
    assert m.store.pod("b", "default", "b-web") is not None
    per_tick = heard.events[:4]
    assert sorted(per_tick[:2]) == ["stored a", "stored b"]
    assert per_tick[2:] == ["tick", "observed tick"]
    assert heard.requests.count(("a", True)) == 2


async def test_a_failing_node_is_forgotten_and_named_while_the_others_are_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scraper, heard = FakeScraper(), Heard()
    m = manager([node("a"), node("b")], scraper, heard)
    await ticks(m, scraper, 1)

    async def refused(_target: Node, _tick: int) -> ScrapeResult:
        raise ScrapeError("refused", 'Get "https://127.0.0.9:10250": connection refused')

    scraper.answers["b"] = refused
    with caplog.at_level(logging.WARNING, "kubepulse.scrape.manager"):
        await ticks(m, scraper, 3)

    assert m.store.node_names() == {"a"}
    assert m.errors() == {"b": ("refused", 'Get "https://127.0.0.9:10250": connection refused')}
    assert "stored b" not in heard.events[3:]
    # Logged once for the cause, not once a tick.
    assert [r.getMessage() for r in caplog.records].count(
        'failed to scrape node b (refused): Get "https://127.0.0.9:10250": connection refused'
    ) == 1
    since = m.node_errors()["b"].since

    async def timed_out(_target: Node, _tick: int) -> ScrapeResult:
        raise ScrapeError("timeout", "context deadline exceeded")

    scraper.answers["b"] = timed_out
    with caplog.at_level(logging.WARNING, "kubepulse.scrape.manager"):
        await ticks(m, scraper, 1)
    assert m.errors()["b"][0] == "timeout"
    assert m.node_errors()["b"].since >= since  # a new cause starts its own clock
    assert sum("failed to scrape node b" in r.getMessage() for r in caplog.records) == 2


async def test_a_node_that_answers_again_is_stored_and_its_error_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scraper, heard = FakeScraper(), Heard()
    m = manager([node("a")], scraper, heard)

    async def broken(_target: Node, _tick: int) -> ScrapeResult:
        raise ScrapeError("bad-payload", "not a Prometheus text")

    scraper.answers["a"] = broken
    await ticks(m, scraper, 1)
    assert "a" in m.errors()
    del scraper.answers["a"]
    with caplog.at_level(logging.INFO, "kubepulse.scrape.manager"):
        await ticks(m, scraper, 1)

    assert m.errors() == {}
    assert m.store.node_names() == {"a"}
    assert any("scraping node a works again" in r.getMessage() for r in caplog.records)


async def test_a_scrape_that_outlives_the_resolution_is_cut_and_holds_back_nobody() -> None:
    scraper, heard = FakeScraper(), Heard()
    m = manager([node("a"), node("slow")], scraper, heard, resolution=0.5)
    hung = asyncio.Event()

    async def never(_target: Node, _tick: int) -> ScrapeResult:
        await hung.wait()  # never set: the tick's deadline must end it
        raise AssertionError("unreachable")

    scraper.answers["slow"] = never
    loop = asyncio.get_running_loop()
    began = loop.time()
    await ticks(m, scraper, 1)

    assert loop.time() - began < 0.5 + 0.3
    assert m.store.node_names() == {"a"}
    assert m.errors()["slow"][0] == "timeout"


async def test_only_nodes_the_selector_picks_are_scraped() -> None:
    scraper, heard = FakeScraper(), Heard()
    m = manager(
        [node("gpu-1", pool="gpu"), node("cpu-1", pool="cpu")],
        scraper,
        heard,
        node_selector=lambda labels: labels.get("pool") == "gpu",
    )

    await ticks(m, scraper, 1)

    assert scraper.asked == ["gpu-1"]
    assert m.store.node_names() == {"gpu-1"}


async def test_a_node_gone_from_the_inventory_takes_its_data_and_its_error_with_it() -> None:
    scraper, heard = FakeScraper(), Heard()
    inventory = StaticInventory([node("a"), node("b")], [])
    m = ScrapeManager(scraper, MetricsStore(2.0), inventory, 2.0, recorder=heard)

    async def refused(_target: Node, _tick: int) -> ScrapeResult:
        raise ScrapeError("refused", "connection refused")

    scraper.answers["b"] = refused
    await ticks(m, scraper, 1)
    assert "b" in m.errors()
    m.inventory = StaticInventory([node("a")], [])
    await ticks(m, scraper, 1)

    assert m.errors() == {}
    assert m.store.node_names() == {"a"}
