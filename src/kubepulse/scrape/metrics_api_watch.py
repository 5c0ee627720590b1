"""Usage followed by watch where the cluster's metrics API offers one (kubepulse,
metrics-server 0.8+): what `kubepulse dashboard` reads instead of polling there.

Two watches (NodeMetrics, and PodMetrics of every namespace, kube/metrics_watch.py)
keep the newest object of each; the nodes and pods of the core API are still listed
every interval, as the poller lists them. A server stores a scrape as a burst of events
(one per node and per pod), so the burst is taken whole: once the events pause for
QUIET seconds, or LONGEST after the first, what the watches hold goes into the store
and the history as one poll's answer would (MetricsApiPoller.store_usage), and the
dashboard hears that a cycle ended. The dashboard then shows a scrape about a second
after the cluster stored it, where polling shows it up to an interval later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubepulse.kube.client import ApiError, Unreachable
from kubepulse.kube.metrics import METRICS, node_rate, pod_rates
from kubepulse.kube.metrics_watch import MetricsWatch, offers_watch
from kubepulse.kube.objects import ObjectError
from kubepulse.scrape.metrics_api import (
    FAILURES,
    MetricsApiPoller,
    PodKey,
    describe,
    metrics_problem,
)
from kubepulse.store.rates import PodRates, Rate

log = logging.getLogger(__name__)

QUIET = 0.5
"""Seconds without an event that end a burst."""
LONGEST = 5.0
"""A burst that goes on (a large cluster's scrapes spread over the cycle) is stored
this long after its first event, so that the page never lags further behind."""
DROPS_BEFORE_POLLING = 3
DROPS_WINDOW = 600.0
T = TypeVar("T")


def _noting(
    parse: Callable[[Any], tuple[Any, T]], skipped: dict[str, str]
) -> Callable[[Mapping[str, Any]], T | None]:
    """parse() of one object, or None with the reason kept (a bad object is left out and
    said, never the whole watch: as the poller's `each`)."""

    def convert(obj: Mapping[str, Any]) -> T | None:
        meta = obj.get("metadata") or {}
        name = f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name', '')}"
        try:
            value = parse(obj)[1]
        except ObjectError as err:
            skipped[name] = str(err)
            return None
        skipped.pop(name, None)
        return value

    return convert


class UsageWatch:
    """Runs until cancelled; any failure of a watch or of the lists goes to the caller
    (the poller reports it and tries again)."""

    def __init__(self, poller: MetricsApiPoller) -> None:
        self.poller = poller
        self.skipped: dict[str, str] = {}
        client = poller.client
        self.nodes: MetricsWatch[Rate] = MetricsWatch(
            client, f"{METRICS}/nodes", {}, _noting(node_rate, self.skipped)
        )
        self.pods: MetricsWatch[PodRates] = MetricsWatch(
            client, f"{METRICS}/pods", {}, _noting(pod_rates, self.skipped)
        )
        self.changed = asyncio.Event()
        self.list_problem = ""
        self.list_skipped: list[str] = []

    async def run(self) -> None:
        # Plain tasks, not a TaskGroup: on 3.11 a TaskGroup can lose its parent's
        # cancellation when a child fails at the same moment, and a stopping dashboard
        # would then follow the watch again instead of stopping.
        tasks = [
            asyncio.create_task(self.nodes.run()),
            asyncio.create_task(self.pods.run()),
            asyncio.create_task(self._forward(self.nodes.changed)),
            asyncio.create_task(self._forward(self.pods.changed)),
            asyncio.create_task(self._list_every_interval()),
            asyncio.create_task(self._store_bursts()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if (err := task.exception()) is not None:
                    raise err
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward(self, changed: asyncio.Event) -> None:
        while True:
            await changed.wait()
            changed.clear()
            self.changed.set()

    async def _list_every_interval(self) -> None:
        poller = self.poller
        while True:
            skipped: list[str] = []
            try:
                poller.inventory.replace(*await poller.list_objects(skipped))
                self.list_problem = ""
            except FAILURES as err:
                # The last lists are kept; usage still comes by watch.
                self.list_problem = f"cannot list nodes and pods: {describe(err)}"
            self.list_skipped = skipped
            await asyncio.sleep(poller.interval)

    async def _store_bursts(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.changed.wait()
            first = loop.time()
            while True:
                self.changed.clear()
                left = min(QUIET, first + LONGEST - loop.time())
                if left <= 0:
                    break
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that comes as the event is set (gh-86296), and a
                    # stopping dashboard would then wait here for ever.
                    async with asyncio.timeout(left):
                        await self.changed.wait()
                except TimeoutError:
                    break
            self._store()

    def _store(self) -> None:
        node_rates = {name: rate for (_, name), rate in self.nodes.values.items()}
        pods: dict[PodKey, PodRates] = dict(self.pods.values)
        self.poller.store_usage(node_rates, pods)
        self.poller.cycle_done()
        problems = [self.list_problem] if self.list_problem else []
        skipped = [*self.list_skipped, *self.skipped.values()]
        if skipped:
            problems.append(f"skipped {len(skipped)} object(s) that cannot be read: {skipped[0]}")
        self.poller.report(problems)


async def follow_or_poll(poller: MetricsApiPoller) -> None:
    """Follow the metrics API's watch while the server offers one, else poll every
    interval, until cancelled. A failure is reported once (the poller's rule), the
    store emptied so that stale numbers are never shown as current, and the watch
    asked for again an interval later. A server that refuses the watch (405) is
    polled, and so is one that keeps cutting it (DROPS_BEFORE_POLLING within
    DROPS_WINDOW: the server closes a slow consumer, and a large cluster's bursts of
    PodMetrics may outrun this reader; each new watch would resend every pod)."""
    loop = asyncio.get_running_loop()
    refused = False
    drops: list[float] = []
    next_at = loop.time()
    while True:
        try:
            if not refused and await offers_watch(poller.client, "node", "pod"):
                if not poller.following:
                    log.info("following the metrics watch of %s", poller.client.creds.server)
                poller.following = True
                await UsageWatch(poller).run()
            else:
                poller.following = False
                await poller.poll()
        except FAILURES as err:
            refused = refused or (isinstance(err, ApiError) and err.code == 405)
            if poller.following and isinstance(err, Unreachable):
                drops = [t for t in drops if t > loop.time() - DROPS_WINDOW] + [loop.time()]
                if len(drops) >= DROPS_BEFORE_POLLING and not refused:
                    refused = True
                    log.warning(
                        "the metrics watch of %s was cut %d times in %gs: polling every %gs"
                        " instead",
                        poller.client.creds.server,
                        len(drops),
                        DROPS_WINDOW,
                        poller.interval,
                    )
            poller.store.retain(set())
            poller.cycle_done()
            poller.report([metrics_problem(err)])
        except Exception as err:  # a long-running reader keeps reading, whatever broke
            poller.report([f"reading usage failed: {type(err).__name__}: {err}"])
        next_at = max(next_at + poller.interval, loop.time())
        await asyncio.sleep(next_at - loop.time())
