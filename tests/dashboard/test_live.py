"""Live updates in real Chromium: where the store is fed in cycles, the page refreshes
as each cycle is ready (server-sent events from /api/cycles) and no longer polls; the
open stream does not hold up the server's shutdown."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kubepulse.dashboard.pod_index import PodIndex, pod_index
from tests.dashboard.conftest import filled_history, inventory, parts, root_app
from tests.dashboard.test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    Server,
    Watched,
    browser,
    expect,
    sign_in,
    watched,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


OVERVIEW_ASKED = """() => performance.getEntriesByType("resource")
    .filter((e) => e.name.includes("/api/overview")).length"""


class Live:
    def __init__(self, tmp: Path) -> None:
        self.history = filled_history(tmp / "history.db")
        p = parts(self.history, pods_and_nodes=inventory())
        p = dataclasses.replace(p, options=dataclasses.replace(p.options, live_updates=True))
        self.index: PodIndex = pod_index(p.store, p.inventory)

        async def build() -> web.Application:
            return root_app(p)

        self.server = Server(build)

    def cycle(self) -> None:
        """A scrape cycle ends, as the scrape manager ends one."""
        self.server.loop.call_soon_threadsafe(self.index.tick_done)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    found = Live(tmp_path)
    yield found
    if found.server.thread.is_alive():
        found.server.stop()
    found.history.close()


def test_the_page_refreshes_at_each_cycle_and_does_not_poll(live: Live, watched: Watched) -> None:
    page = watched.page
    sign_in(page, live.server)
    expect(page.locator("body")).to_have_attribute("data-updates", "live")
    seen = page.evaluate(OVERVIEW_ASKED)
    # Polling, the test server's page would ask every second: a 3 s window with no cycle
    # (a measurement, not a wait for something) sees no request.
    page.wait_for_timeout(3000)
    assert page.evaluate(OVERVIEW_ASKED) == seen
    for n in (1, 2):
        live.cycle()  # each cycle, one refresh
        page.wait_for_function(f"() => ({OVERVIEW_ASKED})() >= {seen + n}", timeout=5000)
    page.wait_for_timeout(1500)
    assert page.evaluate(OVERVIEW_ASKED) == seen + 2


def test_without_cycles_the_page_polls(live: Live, watched: Watched) -> None:
    """A store fed by no cycles (a static inventory and store): polling as before."""
    live.server.stop()
    history = filled_history(live.history.path.parent / "again.db")
    p = parts(history, pods_and_nodes=inventory())

    async def build() -> web.Application:
        return root_app(p)

    live.server = Server(build)
    page = watched.page
    sign_in(page, live.server)
    expect(page.locator("body")).to_have_attribute("data-updates", "polling")
    seen = page.evaluate(OVERVIEW_ASKED)
    page.wait_for_function(f"() => ({OVERVIEW_ASKED})() >= {seen + 2}", timeout=5000)
    history.close()


def test_an_open_stream_does_not_hold_up_shutdown(live: Live, watched: Watched) -> None:
    page = watched.page
    sign_in(page, live.server)
    expect(page.locator("body")).to_have_attribute("data-updates", "live")
    started = time.monotonic()
    live.server.stop()
    assert not live.server.thread.is_alive()
    assert time.monotonic() - started < 5
