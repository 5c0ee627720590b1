"""`kubepulse top --watch`: a live view of nodes or pods in the terminal.

curses draws only what changed (erase, then one doupdate), so the view does not
flicker, and it works over SSH. Keys: c, m, n, s sort by CPU, memory, name, namespace
(again to reverse); / filters by name; Esc clears the filter; q or Ctrl-C quits and
leaves the terminal as it was. When the server goes away, or answers something
unexpected, the view says so and retries. What is drawn comes from live_layout; the
numbers come from the metrics API's watch where the server offers one (follow.py),
else from a LIST every --interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import curses
import locale
import time
from typing import Any

from kubepulse.kube.client import ApiError, KubeClient, Unreachable, sign_in
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.objects import ObjectError
from kubepulse.top import query
from kubepulse.top.follow import allocatable, follow
from kubepulse.top.layout import ASCII, UNICODE, Glyphs, Style, View, lines
from kubepulse.top.printer import CpuMemory, pod_usage
from kubepulse.top.query import TopError, TopRequest

SORT_KEYS = {ord("c"): "cpu", ord("m"): "memory", ord("n"): "name", ord("s"): "namespace"}
ESC, CTRL_C = 27, 3
ESC_DELAY_MS = 25  # curses waits this long after Esc for an escape sequence (default 1 s)


def handle_key(view: View, ch: int) -> bool:
    """Apply one key to the view; False means quit."""
    if view.editing:
        if ch in (10, 13, curses.KEY_ENTER):
            view.editing = False
        elif ch == ESC:
            view.editing, view.filter = False, ""
        elif ch in (curses.KEY_BACKSPACE, 127, 8):
            view.filter = view.filter[:-1]
        elif 32 <= ch < 127:
            view.filter += chr(ch)
        return True
    if ch in (ord("q"), ord("Q"), CTRL_C):
        return False
    sort = SORT_KEYS.get(ch)
    if sort and not (sort == "namespace" and view.kind == "node"):  # nodes have no namespace
        view.reverse = not view.reverse if view.sort == sort else False
        view.sort = sort
    elif ch == ord("/"):
        view.editing, view.filter = True, ""
    elif ch == ESC:
        view.filter = ""
    return True


def draw(screen: Any, view: View, glyphs: Glyphs) -> None:
    height, width = screen.getmaxyx()
    attrs: dict[Style, int] = {
        "title": curses.A_BOLD,
        "notice": curses.A_REVERSE,
        "header": curses.A_UNDERLINE,
        "row": 0,
    }
    screen.erase()
    for y, (text, style) in enumerate(lines(view, width, height, glyphs, time.monotonic())):
        with contextlib.suppress(curses.error):
            screen.addnstr(y, 0, text.ljust(width), max(0, width - 1), attrs[style])
    screen.noutrefresh()
    curses.doupdate()


async def fetch(
    client: KubeClient, request: TopRequest, namespace: str
) -> tuple[list[tuple[str, str, CpuMemory]], CpuMemory]:
    if request.kind == "node":
        metrics, nodes = await query.node_data(client, request)
        rows = [("", m["metadata"]["name"], CpuMemory.of(m["usage"])) for m in metrics]
        return rows, allocatable(nodes)
    items = await query.pod_metrics(client, request, namespace)
    rows = [
        (m["metadata"].get("namespace", ""), m["metadata"]["name"], pod_usage(m)) for m in items
    ]
    return rows, CpuMemory(0, 0)


async def poll(creds: Credentials, request: TopRequest, view: View) -> None:
    retrying = f"retrying every {request.interval:g}s"
    while True:
        try:
            async with KubeClient(creds, timeout=max(2.0, request.interval)) as client:
                while True:
                    rows, capacity = await fetch(client, request, creds.namespace)
                    view.update(rows, capacity, time.monotonic(), time.time())
                    await asyncio.sleep(request.interval)
        except (ApiError, Unreachable, ObjectError, TopError) as err:
            view.status = f"{retrying}: {err}"
        except Exception as err:
            # An answer of an unexpected shape (or a bug) must not end the refreshes
            # silently behind a screen that looks alive: it is shown and retried too.
            view.status = f"{retrying}: unexpected {type(err).__name__}: {err}"
        await asyncio.sleep(request.interval)


async def feed(creds: Credentials, request: TopRequest, view: View) -> None:
    """The metrics API's watch where the server offers one, else polling every interval."""
    await follow(creds, request, view)
    await poll(creds, request, view)


async def run(request: TopRequest) -> int:
    creds = query.credentials(request)
    try:
        await sign_in(creds)
    except Unreachable as err:
        raise query.TopError(str(err), raw=True) from err
    locale.setlocale(locale.LC_ALL, "")
    glyphs = UNICODE if "utf" in locale.getpreferredencoding().lower() else ASCII
    view = View(request.kind, request.interval, sort=request.sort_by or "cpu")
    screen = curses.initscr()
    try:
        curses.noecho()
        curses.cbreak()
        curses.raw()  # Ctrl-C arrives as a key, so quitting always goes through cleanup
        curses.set_escdelay(ESC_DELAY_MS)
        screen.keypad(True)
        screen.nodelay(True)
        with contextlib.suppress(curses.error):
            curses.curs_set(0)
        poller = asyncio.create_task(feed(creds, request, view))
        try:
            running = True
            while running:
                draw(screen, view, glyphs)
                for _ in range(10):
                    ch = screen.getch()
                    if ch == -1:
                        await asyncio.sleep(0.05)
                        continue
                    running = handle_key(view, ch)
                    if not running:
                        break
                    draw(screen, view, glyphs)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
    finally:
        screen.keypad(False)
        curses.noraw()
        curses.nocbreak()
        curses.echo()
        curses.endwin()
    return 0
