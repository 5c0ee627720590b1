"""The page in real Chromium (Debian's /usr/bin/chromium) driven by Playwright, against
the dashboard served on 127.0.0.1 over plain HTTP (the loopback cookie option).

A screenshot of each view is kept in test-artifacts/dashboard/ (KUBEPULSE_ARTIFACTS
overrides the folder)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.api.conftest import TOKEN
from tests.dashboard.conftest import XSS_NAME, filled_history, inventory, parts, root_app, xss_pod

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
expect = playwright_sync.expect
TIMEOUT = 10_000
ARTIFACTS = Path(
    os.environ.get("KUBEPULSE_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts"
)


def screenshot(page: playwright_sync.Page, name: str) -> Path:
    """Keep what the page looks like now as test-artifacts/dashboard/NAME.png."""
    path = ARTIFACTS / "dashboard" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


class Server:
    """The dashboard on its own event loop in a thread; build makes its application in
    that loop (so clients it opens belong to it)."""

    def __init__(self, build: Callable[[], Awaitable[web.Application]]) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready, build), daemon=True)
        self.thread.start()
        assert ready.wait(20)

    def _run(self, ready: threading.Event, build: Callable[[], Awaitable[web.Application]]) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.loop.run_until_complete(build()))
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dashboard/"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    history = filled_history(tmp_path_factory.mktemp("history") / "history.db")

    async def build() -> web.Application:
        return root_app(parts(history, pods_and_nodes=inventory([xss_pod()])))

    s = Server(build)
    yield s
    s.stop()
    history.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_sync.Browser]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    def __init__(self, page: playwright_sync.Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))
        page.on("dialog", self._dialog)

    def _console(self, msg: playwright_sync.ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            self.errors.append(f"{msg.type}: {msg.text}")

    def _dialog(self, dialog: playwright_sync.Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def watched(browser: playwright_sync.Browser) -> Iterator[Watched]:
    context = browser.new_context(color_scheme="light")
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    w = Watched(page)
    yield w
    context.close()
    # Every test: no console errors (CSP violations are console errors), no dialogs.
    assert w.errors == []
    assert w.dialogs == []


def sign_in(
    page: playwright_sync.Page,
    server: Server,
    hash_: str = "",
    token: str = TOKEN,
    user: str = "admin",
) -> None:
    page.goto(server.url + hash_)
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("#user")).to_have_text(user)


def test_a_wrong_token_is_refused_with_a_message(server: Server, watched: Watched) -> None:
    page = watched.page
    page.goto(server.url)
    expect(page).to_have_url(server.url + "login")
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("That token was not accepted")
    expect(page).to_have_url(server.url + "login")
    screenshot(page, "login-refused")
    watched.errors = [e for e in watched.errors if "401" not in e]  # the refused POST


def test_sign_in_shows_the_overview_with_the_stores_numbers(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    expect(page.locator("#total-nodes")).to_have_text("4")
    row = page.locator("#overview-nodes tr", has_text="node-a")
    expect(row).to_contain_text("500m / 3.80 cores (13%)")
    expect(page.locator("#overview-nodes tr", has_text="node-d")).to_contain_text("2.00 cores")
    screenshot(page, "overview")


def test_a_node_shows_charts_and_the_hash_keeps_the_view_across_reload(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    page.locator("#overview-nodes a", has_text="node-a").click()
    expect(page.locator("#node-name")).to_have_text("node-a")
    assert page.url.endswith("#/nodes/node-a")
    expect(page.locator(".chart canvas").first).to_be_visible()
    page.locator(".ranges a", has_text="15m").click()
    expect(page).to_have_url(server.url + "#/nodes/node-a?range=15m")
    expect(page.locator(".ranges a[aria-current=true]")).to_have_text("15m")
    page.reload()
    expect(page.locator("#node-name")).to_have_text("node-a")
    expect(page.locator(".ranges a[aria-current=true]")).to_have_text("15m")
    expect(page.locator(".chart canvas").first).to_be_visible()
    screenshot(page, "node")


def test_a_pod_named_like_markup_is_shown_as_text(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server, "#/pods?name=onerror")
    rows = page.locator("#pods-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(XSS_NAME)
    assert page.locator("#pods-table img").count() == 0
    rows.first.locator("a").click()
    expect(page.locator("#pod-name")).to_have_text("default/" + XSS_NAME)
    assert page.locator("main img").count() == 0
    # Local mode: no cluster to act on, so no actions and no Create view.
    assert page.locator("#pod-actions").count() == 0
    expect(page.locator("#nav-create")).to_be_hidden()
    screenshot(page, "pod-named-like-markup")


def test_the_dark_mode_toggle_switches_and_is_remembered(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(255, 255, 255)"
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark == "rgb(20, 23, 29)"
    page.reload()
    expect(page.locator("#theme-toggle")).to_have_text("Light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark
    screenshot(page, "overview-dark")


def test_the_system_dark_preference_is_followed(
    server: Server, browser: playwright_sync.Browser
) -> None:
    context = browser.new_context(color_scheme="dark")
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    sign_in(page, server)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(20, 23, 29)"
    context.close()


def test_keyboard_tab_reaches_a_row_and_enter_opens_it(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server, "#/nodes")
    expect(page.locator("#nodes-table tbody tr")).to_have_count(4)
    page.locator("h1").click()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('#nodes-table tr.row')"):
            break
    assert page.evaluate("document.activeElement.dataset.href") == "#/nodes/node-a"
    page.keyboard.press("Enter")
    expect(page.locator("#node-name")).to_have_text("node-a")
    assert page.url.endswith("#/nodes/node-a")


def test_the_pods_filter_and_sort_go_into_the_url(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server, "#/pods")
    page.fill("input[name=namespace]", "default")
    page.press("input[name=namespace]", "Enter")
    expect(page).to_have_url(server.url + "#/pods?namespace=default&sort=cpu")
    page.select_option("select[name=sort]", "memory")
    expect(page).to_have_url(server.url + "#/pods?namespace=default&sort=memory")
    expect(page.locator("#pods-table tbody tr").first).to_contain_text("web-1")
    expect(page.locator("#pods-table tbody tr")).to_have_count(3)  # web-1, web-2, the XSS pod
    expect(page.locator("#pods-count")).to_have_text("3 pods")
    screenshot(page, "pods")
    page.fill("input[name=namespace]", "kube-system")
    page.press("input[name=namespace]", "Enter")
    expect(page.locator("#pods-table tbody tr")).to_have_count(1)  # coredns
    expect(page.locator("#pods-count")).to_have_text("1 pod")


def test_a_namespace_of_one_pod_says_1_pod(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server, "#/namespaces/kube-system")
    expect(page.locator("#namespace-info")).to_contain_text("1 pod · CPU ")
    page.goto(server.url + "#/namespaces/default")
    expect(page.locator("#namespace-info")).to_contain_text("3 pods · CPU ")


def test_a_poll_answered_after_a_filter_was_applied_does_not_replace_its_rows(
    server: Server, watched: Watched
) -> None:
    """A poll of every pod is on its way when the namespace filter is applied; the
    filtered rows come first, the poll's answer after: the table keeps the filter's
    rows, not the poll's, until the next poll (filtered too) draws them again."""
    page = watched.page
    sign_in(page, server, "#/pods")
    rows = page.locator("#pods-table tbody tr")
    expect(rows.first).to_be_visible()
    everything = rows.count()
    held: list[Any] = []
    page.route("**/dashboard/api/pods?sort=cpu", lambda route: held.append(route))
    with page.expect_request("**/dashboard/api/pods?sort=cpu"):
        pass  # the next poll (every second here), held
    # Every redraw of the table from now on, by the number of rows it drew.
    page.evaluate(
        """() => { window.drawn = [];
            const tbody = document.querySelector("#pods-table tbody");
            new MutationObserver(() => window.drawn.push(tbody.rows.length))
                .observe(tbody, { childList: true }); }"""
    )
    page.fill("input[name=namespace]", "default")
    page.press("input[name=namespace]", "Enter")
    expect(rows).to_have_count(3)
    assert everything > 3 and len(held) == 1
    with page.expect_event("requestfinished", lambda r: r.url.endswith("pods?sort=cpu")):
        held[0].continue_()
    # The next poll asks with the filter: once it has drawn, the held answer has come.
    with page.expect_response("**/dashboard/api/pods?namespace=default&sort=cpu"):
        pass
    page.wait_for_function("() => window.drawn.length > 0 && window.drawn.at(-1) === 3")
    assert everything not in page.evaluate("window.drawn")
    expect(rows).to_have_count(3)


def test_sign_out_ends_the_session(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    page.click("#logout")
    expect(page).to_have_url(server.url + "login")
    page.goto(server.url)
    expect(page).to_have_url(server.url + "login")
