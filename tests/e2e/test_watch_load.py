"""Many watches on `kubepulse up` at once: what they cost the server, and how soon a
change reaches every one of them. Real `up`, real TLS on loopback, 200 connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import psutil
import pytest

from kubepulse.kube import kubeconfig
from kubepulse.kube.client import ssl_context
from tests.e2e import host_process
from tests.e2e.test_kubectl_up import Up, start_up

WATCHES = 200
MEMORY_BUDGET = 20 * 1024 * 1024
SPREAD_BUDGET = 1.0
INITIAL = "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    # Scrapes every 2 s, so the metrics watch hears one soon; reads the host every 0.25 s,
    # so a process that starts is in the API (a change, as a write is to kube-apiserver)
    # within 0.25 s, and what the watches add to that is measured.
    yield from start_up(
        tmp / "state",
        tmp / "up.log",
        "--metric-resolution",
        "2s",
        "--housekeeping-interval",
        "250ms",
    )


@dataclass
class Watch:
    """One open watch: each event with the moment it arrived, and when its initial
    events ended (the BOOKMARK annotated k8s.io/initial-events-end)."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, response: aiohttp.ClientResponse) -> None:
        async for line in response.content:
            event = orjson.loads(line)
            self.events.append((time.monotonic(), event))
            annotations = event["object"]["metadata"].get("annotations") or {}
            if event["type"] == "BOOKMARK" and "k8s.io/initial-events-end" in annotations:
                self.synced.set()
            self.arrived.set()

    def first(self, kind: str, name: str | None = None, after: int = 0) -> float | None:
        """When the first event of this kind (for this object, of a resourceVersion
        after `after`) arrived."""
        for at, event in self.events:
            if event["type"] != kind or version_of(event) <= after:
                continue
            if name in (None, event["object"]["metadata"]["name"]):
                return at
        return None

    def version(self) -> int:
        """The newest resourceVersion this watch has seen."""
        return max(version_of(e) for _, e in self.events)


@asynccontextmanager
async def watches(up: Up, path: str, n: int) -> AsyncIterator[list[Watch]]:
    """n watches of path, each synced (its initial events read) before this yields."""
    creds = kubeconfig.load(str(up.kubeconfig))
    connector = aiohttp.TCPConnector(ssl=ssl_context(creds), limit=0)
    headers = {"Authorization": f"Bearer {creds.token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        opened = [Watch() for _ in range(n)]
        responses = await asyncio.gather(
            *(session.get(f"{creds.server}{path}?watch=1&{INITIAL}") for _ in opened)
        )
        readers = [asyncio.create_task(w.read(r)) for w, r in zip(opened, responses, strict=True)]
        try:
            assert all(r.status == 200 for r in responses)
            await asyncio.wait_for(asyncio.gather(*(w.synced.wait() for w in opened)), 60)
            yield opened
        finally:
            for task in readers:
                task.cancel()
            for r in responses:
                r.close()


def version_of(event: dict[str, Any]) -> int:
    return int(event["object"]["metadata"]["resourceVersion"])


def rss(up: Up) -> int:
    return int(psutil.Process(up.running.proc.pid).memory_info().rss)


async def all_arrived(opened: list[Watch], at: Any, timeout: float) -> list[float]:
    """When each watch got the event `at` looks for, polled until every one has it."""
    deadline = time.monotonic() + timeout
    while True:
        times = [at(w) for w in opened]
        if all(t is not None for t in times):
            return [t for t in times if t is not None]
        if time.monotonic() > deadline:
            missing = sum(t is None for t in times)
            raise AssertionError(f"{missing} of {len(opened)} watches never got the event")
        await asyncio.gather(*(w.arrived.wait() for w in opened if at(w) is None))
        for w in opened:
            w.arrived.clear()


async def test_200_pod_watches_cost_under_20_mib_and_all_see_a_new_pod_within_a_second(
    up: Up,
) -> None:
    async with watches(up, "/api/v1/pods", 10):
        pass  # the code paths of a watch loaded and warm before measuring
    before = rss(up)
    async with watches(up, "/api/v1/pods", WATCHES) as opened:
        cost = rss(up) - before
        with host_process.host_process("loadwatch") as pid:
            started = time.monotonic()  # the change: a process tree, a pod, has started
            name = f"loadwatch-{pid}"
            times = await asyncio.wait_for(
                all_arrived(opened, lambda w: w.first("ADDED", name), 30), 40
            )
    spread = max(times) - min(times)
    late = max(times) - started
    print(
        f"{WATCHES} pod watches: +{cost / 2**20:.1f} MiB RSS, event spread {spread:.3f} s,"
        f" last {late:.3f} s after the process started"
    )
    assert cost < MEMORY_BUDGET, f"{WATCHES} watches cost {cost / 2**20:.1f} MiB"
    assert spread < SPREAD_BUDGET, f"the last watch heard of {name} {spread:.2f} s after the first"
    assert late < SPREAD_BUDGET, f"the last watch heard of {name} {late:.2f} s after it started"


async def test_200_node_metrics_watches_all_get_each_stored_scrape_within_a_second(
    up: Up,
) -> None:
    async with watches(up, "/apis/metrics.k8s.io/v1beta1/nodes", WATCHES) as opened:
        # The first scrape stored once every watch is open: each must get its event.
        seen = max(w.version() for w in opened)
        times = await asyncio.wait_for(
            all_arrived(opened, lambda w: w.first("MODIFIED", after=seen), 30), 40
        )
        versions = set()
        for w in opened:
            modified = [e for _, e in w.events if e["type"] == "MODIFIED"]
            versions.add(next(v for e in modified if (v := version_of(e)) > seen))
    spread = max(times) - min(times)
    print(f"{WATCHES} node metrics watches: event spread {spread:.3f} s")
    assert len(versions) == 1  # the same stored scrape in every watch, none missed
    assert spread < SPREAD_BUDGET, f"the last watch got the scrape {spread:.2f} s after the first"
