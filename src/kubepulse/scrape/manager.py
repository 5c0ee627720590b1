"""The scrape loop: every resolution, scrape every node in parallel and store each result.

Upstream (metrics-server pkg/server/server.go, pkg/scraper/scraper.go) ticks every
resolution, starting at once, gives each tick a deadline of one resolution, spreads the
node requests over a random delay of up to min(8 ms x nodes, 4 s) (see start_delays),
and replaces the stored batch at the end. kubepulse stores each node as soon as its
answer is in, so a slow or dead node never holds back the others, then drops at the end
of the tick the nodes that failed (as upstream's batch would not hold them). After the
first tick it takes the second sample early, so that metrics are served within seconds
of start.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from kubepulse import logs
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.objects import Node
from kubepulse.scrape.bounds import ScrapeResult
from kubepulse.scrape.client import ScrapeError
from kubepulse.store.points import MetricsStore

log = logging.getLogger(__name__)
V2 = logs.v(2)
"""Once a scrape cycle (klog's V(2)); each node's scrape is DEBUG, V(4)."""

EARLY_SECOND_SAMPLE_INTERVAL = 0.5
SPREAD_PER_NODE = 0.008
MAX_SPREAD = 4.0
SPREAD_STEP = 0.25
_RNG = random.Random()


def start_delays(count: int, rng: random.Random | None = None) -> list[float]:
    """When each of `count` scrapes of a tick starts, in seconds after the tick begins.

    Upstream spreads a tick's requests over a random delay of up to min(8 ms x nodes,
    4 s) (scraper.go: delayPerSourceMs, maxDelayMs), so that the kubelets are not all
    asked at once. kubepulse keeps that spread in steps of SPREAD_STEP: the scrapes of
    one step start together, so the event loop takes their answers in a few passes
    instead of waking up for each one. At 1,000 nodes the per-node wake-ups cost a third
    of a tick's CPU (BENCHMARKS.md, "Where the time goes").
    """
    pick = (rng or _RNG).randrange
    steps = max(1, math.ceil(min(SPREAD_PER_NODE * count, MAX_SPREAD) / SPREAD_STEP))
    return [SPREAD_STEP * pick(steps) for _ in range(count)]


class Scraper(Protocol):
    async def scrape(self, node: Node) -> ScrapeResult: ...


class Observer(Protocol):
    """Self-metrics hooks (kubepulse_kubelet_request_*, kubepulse_manager_tick_*)."""

    def request_done(self, node: str, seconds: float, success: bool) -> None: ...

    def tick_done(self, seconds: float) -> None: ...


class Recorder(Protocol):
    """Where every stored scrape also goes (the history)."""

    def node_stored(self, node_name: str) -> None:
        """The store holds this node's new scrape: what it serves changed."""

    def tick_done(self) -> None: ...


class Recorders:
    """Several recorders as one: each hears every stored scrape and every tick's end."""

    def __init__(self, *recorders: Recorder | None) -> None:
        self.recorders = [r for r in recorders if r is not None]

    def node_stored(self, node_name: str) -> None:
        for recorder in self.recorders:
            recorder.node_stored(node_name)

    def tick_done(self) -> None:
        for recorder in self.recorders:
            recorder.tick_done()


class _NoObserver:
    def request_done(self, node: str, seconds: float, success: bool) -> None:
        pass

    def tick_done(self, seconds: float) -> None:
        pass


@dataclass(frozen=True, slots=True)
class NodeError:
    cause: str
    message: str
    since: float


class ScrapeManager:
    def __init__(
        self,
        scraper: Scraper,
        store: MetricsStore,
        inventory: Inventory,
        resolution: float,
        node_selector: Callable[[Mapping[str, str]], bool] = lambda _labels: True,
        observer: Observer | None = None,
        recorder: Recorder | None = None,
        delays: Callable[[int], list[float]] = start_delays,
    ) -> None:
        """delays: when each of a tick's scrapes starts (start_delays; a benchmark may
        compare other spreads)."""
        self.scraper, self.store, self.inventory = scraper, store, inventory
        self.delays = delays
        self.resolution = resolution
        self.node_selector = node_selector
        self.observer = observer or _NoObserver()
        self.recorder = recorder
        self.last_tick_start: float | None = None
        self._errors: dict[str, NodeError] = {}

    def errors(self) -> Mapping[str, tuple[str, str]]:
        return {name: (e.cause, e.message) for name, e in self._errors.items()}

    def node_errors(self) -> Mapping[str, NodeError]:
        return dict(self._errors)

    def targets(self) -> list[Node]:
        return [n for n in self.inventory.nodes() if self.node_selector(n.labels)]

    async def run(self) -> None:
        """Tick forever. The first tick runs at once, then the second sample comes early."""
        started = time.monotonic()
        await self.tick()
        await self._second_sample(started)
        next_tick = started + self.resolution
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick + self.resolution, time.monotonic())
            await self.tick()

    async def _second_sample(self, started: float) -> None:
        """Re-scrape nodes that have one point until they have two, within a resolution.

        A kubelet's counters only move when its stats are refreshed, so this polls: the
        node's point is replaced only when it carries a newer timestamp.
        """
        deadline = started + self.resolution * 0.9
        while time.monotonic() < deadline:
            waiting = [n for n in self.targets() if not self.store.has_two_points(n.name)]
            waiting = [n for n in waiting if n.name not in self._errors]
            if not waiting:
                return
            await asyncio.sleep(EARLY_SECOND_SAMPLE_INTERVAL)
            await asyncio.gather(*(self._scrape_one(n, 0.0) for n in waiting))

    async def tick(self) -> None:
        self.last_tick_start = time.time()
        begun = time.monotonic()
        nodes = self.targets()
        delays = self.delays(len(nodes))
        tasks = [
            asyncio.create_task(self._scrape_one(n, d)) for n, d in zip(nodes, delays, strict=True)
        ]
        done, pending = (
            await asyncio.wait(tasks, timeout=self.resolution) if tasks else (set(), set())
        )
        for task in pending:
            task.cancel()
        succeeded = {t.result() for t in done if not t.cancelled() and t.exception() is None}
        for node in nodes:
            if node.name not in succeeded and node.name not in self._errors:
                late = ScrapeError("timeout", "scrape did not finish within the resolution")
                self._record_error(node.name, late)
        self.store.retain({name for name in succeeded if name is not None})
        # A node no longer a target (deleted, or outside -l now) has no error either.
        for name in self._errors.keys() - {n.name for n in nodes}:
            del self._errors[name]
        if self.recorder is not None:
            self.recorder.tick_done()
        took = time.monotonic() - begun
        self.observer.tick_done(took)
        log.log(
            V2,
            "scrape cycle: %d of %d nodes in %.3fs",
            len(succeeded - {None}),
            len(nodes),
            took,
            extra={"kv": {"nodes": len(nodes), "scraped": len(succeeded - {None})}},
        )

    async def _scrape_one(self, node: Node, delay: float) -> str | None:
        """Scrape and store one node; returns its name on success."""
        if delay:
            await asyncio.sleep(delay)
        begun = time.monotonic()
        try:
            node_sample, pods, rejected = await self.scraper.scrape(node)
        except ScrapeError as err:
            self.observer.request_done(node.name, time.monotonic() - begun, False)
            self._record_error(node.name, err)
            return None
        took = time.monotonic() - begun
        self.observer.request_done(node.name, took, True)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "scraped node %s in %.3fs: %d pods",
                node.name,
                took,
                len(pods),
                extra={"kv": {"node": node.name, "duration": round(took, 6), "pods": len(pods)}},
            )
        self.store.store(node.name, node_sample, pods)
        if self.recorder is not None:
            self.recorder.node_stored(node.name)
        if rejected:
            # What could be kept is served; what cannot be real is named (bounds.py).
            more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
            message = f"left out values that cannot be real: {rejected[0]}{more}"
            self._record_error(node.name, ScrapeError("bad-values", message))
        elif node.name in self._errors:
            log.info("scraping node %s works again", node.name)
            del self._errors[node.name]
        return node.name

    def _record_error(self, node: str, err: ScrapeError) -> None:
        previous = self._errors.get(node)
        # Logged once per change of cause, not every tick.
        if previous is None or previous.cause != err.cause:
            log.warning("failed to scrape node %s (%s): %s", node, err.cause, err.message)
        since = previous.since if previous and previous.cause == err.cause else time.time()
        self._errors[node] = NodeError(err.cause, err.message, since)
