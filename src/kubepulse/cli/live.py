"""`kubepulse top --watch`: a live view of nodes or pods in the terminal.

curses draws only what changed (erase, then one doupdate), so the view does not
flicker, and it works over SSH. Keys: c, m, n, s sort by CPU, memory, name, namespace
(again to reverse); / filters by name; Esc clears the filter; q or Ctrl-C quits and
leaves the terminal as it was. When the server goes away the view says so and retries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import curses
import locale
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kubepulse.cli import top
from kubepulse.cli.errors import CommandError
from kubepulse.cli.top_printer import Usage, milli, pod_usage, value
from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.kubeconfig import Credentials

HISTORY = 90  # samples kept per row: 3 minutes at the default 2 s
SPARK_WIDTH = 16
BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_BLOCKS = " .:-=+*#"


@dataclass
class Row:
    namespace: str
    name: str
    usage: Usage
    history: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))


@dataclass
class View:
    kind: str
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    capacity: Usage = field(default_factory=lambda: Usage(0, 0))
    sort: str = "cpu"
    reverse: bool = False
    filter: str = ""
    editing: bool = False
    status: str = "connecting..."
    updated: float = 0.0

    def update(self, items: list[tuple[str, str, Usage]], capacity: Usage) -> None:
        seen = set()
        for namespace, name, usage in items:
            key = (namespace, name)
            seen.add(key)
            row = self.rows.get(key) or Row(namespace, name, usage)
            row.usage = usage
            row.history.append(usage.cpu_milli)
            self.rows[key] = row
        for key in [k for k in self.rows if k not in seen]:
            del self.rows[key]
        self.capacity = capacity
        self.updated = time.time()
        self.status = ""

    def visible(self) -> list[Row]:
        rows = [r for r in self.rows.values() if self.filter in r.name]
        keys: dict[str, Any] = {
            "cpu": lambda r: (-r.usage.cpu_milli, r.namespace, r.name),
            "memory": lambda r: (-r.usage.memory_bytes, r.namespace, r.name),
            "name": lambda r: (r.name, r.namespace),
            "namespace": lambda r: (r.namespace, r.name),
        }
        rows.sort(key=keys[self.sort])
        return rows[::-1] if self.reverse else rows

    def key(self, ch: int) -> bool:
        """Handle one key; False means quit."""
        if self.editing:
            if ch in (10, 13, curses.KEY_ENTER):
                self.editing = False
            elif ch == 27:
                self.editing, self.filter = False, ""
            elif ch in (curses.KEY_BACKSPACE, 127, 8):
                self.filter = self.filter[:-1]
            elif 32 <= ch < 127:
                self.filter += chr(ch)
            return True
        sorts = {ord("c"): "cpu", ord("m"): "memory", ord("n"): "name", ord("s"): "namespace"}
        if ch in (ord("q"), ord("Q"), 3):
            return False
        if ch in sorts:
            self.reverse = not self.reverse if self.sort == sorts[ch] else False
            self.sort = sorts[ch]
        elif ch == ord("/"):
            self.editing, self.filter = True, ""
        elif ch == 27:
            self.filter = ""
        return True


def sparkline(values: deque[int], width: int, blocks: str) -> str:
    points = list(values)[-width:]
    if not points:
        return ""
    top_value = max(points) or 1
    return "".join(blocks[min(len(blocks) - 1, v * (len(blocks) - 1) // top_value)] for v in points)


def human_bytes(n: int) -> str:
    return f"{n // (1024 * 1024)}Mi"


def draw(screen: Any, view: View, blocks: str) -> None:
    height, width = screen.getmaxyx()
    screen.erase()

    def put(y: int, text: str, attr: int = 0) -> None:
        if 0 <= y < height:
            with contextlib.suppress(curses.error):
                screen.addnstr(y, 0, text.ljust(width), max(0, width - 1), attr)

    total = Usage(0, 0)
    for r in view.rows.values():
        total = total + r.usage
    title = f"kubepulse top {view.kind}s  {len(view.rows)} shown"
    clock = time.strftime("%H:%M:%S", time.localtime(view.updated)) if view.updated else "--:--:--"
    put(0, f"{title}  updated {clock}", curses.A_BOLD)
    if view.capacity.cpu_milli:
        cpu_pct = total.cpu_milli * 100 // view.capacity.cpu_milli
        mem_pct = total.memory_bytes * 100 // max(1, view.capacity.memory_bytes)
        memory = f"{human_bytes(total.memory_bytes)} of {human_bytes(view.capacity.memory_bytes)}"
        cpu = f"{total.cpu_milli}m of {view.capacity.cpu_milli}m"
        put(1, f"CPU {cpu} ({cpu_pct}%)   MEM {memory} ({mem_pct}%)")
    else:
        put(1, f"CPU {total.cpu_milli}m   MEM {human_bytes(total.memory_bytes)}")
    hint = (
        f"filter: {view.filter}_"
        if view.editing
        else (f"filter: {view.filter}" if view.filter else "")
    )
    put(
        2,
        view.status or hint or "c/m/n/s sort  / filter  q quit",
        curses.A_REVERSE if view.status else 0,
    )
    arrow = "v" if not view.reverse else "^"
    heads = {"namespace": "NAMESPACE", "name": "NAME", "cpu": "CPU", "memory": "MEMORY"}
    heads[view.sort] += arrow
    name_width = max(16, width - 12 - 9 - 9 - SPARK_WIDTH - 5)
    put(
        3,
        f"{heads['namespace'][:12]:<12} {heads['name'][:name_width]:<{name_width}} "
        f"{heads['cpu']:>8} {heads['memory']:>8} CPU HISTORY",
        curses.A_UNDERLINE,
    )
    for i, r in enumerate(view.visible()[: max(0, height - 4)]):
        put(
            4 + i,
            f"{r.namespace[:12]:<12} {r.name[:name_width]:<{name_width}} "
            f"{r.usage.cpu_milli:>7}m {human_bytes(r.usage.memory_bytes):>8} "
            f"{sparkline(r.history, SPARK_WIDTH, blocks)}",
        )
    screen.noutrefresh()
    curses.doupdate()


async def fetch(
    client: KubeClient, kind: str, args: argparse.Namespace, namespace: str
) -> tuple[list[tuple[str, str, Usage]], Usage]:
    if kind == "node":
        metrics, nodes = await top.node_data(client, args)
        capacity = Usage(0, 0)
        for n in nodes:
            alloc = (n.get("status") or {}).get("allocatable") or {}
            capacity = capacity + Usage(
                milli(alloc.get("cpu", "0")), value(alloc.get("memory", "0"))
            )
        return [("", m["metadata"]["name"], Usage.of(m["usage"])) for m in metrics], capacity
    items = await top.pod_metrics(client, args, namespace)
    rows = [
        (m["metadata"].get("namespace", ""), m["metadata"]["name"], pod_usage(m)) for m in items
    ]
    return rows, Usage(0, 0)


async def poll(creds: Credentials, kind: str, args: argparse.Namespace, view: View) -> None:
    while True:
        try:
            async with KubeClient(creds, timeout=max(2.0, args.interval)) as client:
                while True:
                    rows, capacity = await fetch(client, kind, args, creds.namespace)
                    view.update(rows, capacity)
                    await asyncio.sleep(args.interval)
        except (ApiError, Unreachable, CommandError) as err:
            view.status = f"retrying every {args.interval:g}s: {err}"
        await asyncio.sleep(args.interval)


async def run(creds: Credentials, kind: str, args: argparse.Namespace) -> int:
    locale.setlocale(locale.LC_ALL, "")
    blocks = BLOCKS if "utf" in locale.getpreferredencoding().lower() else ASCII_BLOCKS
    view = View(kind, sort="cpu" if not args.sort_by else args.sort_by)
    screen = curses.initscr()
    try:
        curses.noecho()
        curses.cbreak()
        curses.raw()  # Ctrl-C arrives as a key, so quitting always goes through cleanup
        screen.keypad(True)
        screen.nodelay(True)
        with contextlib.suppress(curses.error):
            curses.curs_set(0)
        poller = asyncio.create_task(poll(creds, kind, args, view))
        try:
            running = True
            while running:
                draw(screen, view, blocks)
                for _ in range(10):
                    ch = screen.getch()
                    if ch == -1:
                        await asyncio.sleep(0.05)
                        continue
                    running = view.key(ch)
                    if not running:
                        break
                    draw(screen, view, blocks)
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
