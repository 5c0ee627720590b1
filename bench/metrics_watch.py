"""Benchmark: a watch of the metrics API over many simulated nodes keeps up with every
scrape.

    .venv/bin/python -m bench.metrics_watch                 # 5,000 nodes, 150,000 pods
    .venv/bin/python -m bench.metrics_watch --nodes 1000 --cycles 2

bench.sim.kubelets serves N nodes of 30 pods x 2 containers over TLS, and the real
`kubepulse server` scrapes them every --resolution seconds (both separate processes,
as in bench.server_scale). Once the server holds every node, its CPU is measured over
--cycles resolutions without watches; then one watch of NodeMetrics and one of
PodMetrics (all namespaces) are opened, read here as fast as they come, and the CPU is
measured over as many resolutions again.

Kept up means: neither watch was closed by the server (it closes a consumer 1,000
events behind), and no stored scrape was missed. The server's resourceVersion grows by
one for each node's stored scrape, and every event of that scrape carries it, so the
versions a watch sees must follow each other without a gap (a gap of k is k scrapes it
never got). Reported: events per cycle of each watch against what N nodes make, the
gaps, and the server's CPU per cycle with and without the watches.

Exit status: 0 when both watches kept up, 1 when one did not, 2 when the benchmark
could not run or a deadline passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

from bench.server_scale import family_cpu, machine
from bench.sim.process import (
    BenchError,
    Missed,
    Server,
    add_kubelet_port_flag,
    raise_fd_limit,
    run_bounded,
    start_server,
    start_simulator,
    stop,
    wait_ready,
)

PODS_PER_NODE = 30
SYNC_S = 300.0
"""How long the initial events of both watches may take (150,000 pods at 5,000 nodes)."""
METRICS = "/apis/metrics.k8s.io/v1beta1"
VERSION_KEY = b'"resourceVersion":"'
INITIAL = "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"


@dataclass
class WatchStats:
    """What one watch brought: versions in order, events, and whether it ended early."""

    name: str
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    counting: bool = False
    events: int = 0
    versions: list[int] = field(default_factory=list)
    ended: str = ""

    def gaps(self) -> int:
        """Scrapes stored while it was measured that it never got."""
        return sum(b - a - 1 for a, b in zip(self.versions, self.versions[1:], strict=False))

    def take_line(self, line: bytes) -> None:
        """One event line. Only what the count needs is read from ADDED, MODIFIED and
        DELETED lines (their resourceVersion, which the server writes once, in the
        object's metadata): this reader shares the CPUs with the server and the
        simulator, and must not be what falls behind. Anything else is parsed whole."""
        if not line.startswith(b'{"type":"BOOKMARK"') and self.counting:
            at = line.find(VERSION_KEY)
            if at >= 0:
                start = at + len(VERSION_KEY)
                self.count(int(line[start : line.index(b'"', start)]))
                return
        self.take(orjson.loads(line))

    def count(self, version: int) -> None:
        # Every kind counts for the versions: a node the server dropped is DELETED with
        # a version of its own.
        self.events += 1
        if not self.versions or self.versions[-1] != version:
            self.versions.append(version)

    def take(self, event: dict[str, Any]) -> None:
        meta = event["object"]["metadata"]
        if event["type"] == "BOOKMARK":
            if "k8s.io/initial-events-end" in (meta.get("annotations") or {}):
                self.synced.set()
            return
        if self.counting:
            self.count(int(meta["resourceVersion"]))


async def follow(session: aiohttp.ClientSession, server: Server, path: str, w: WatchStats) -> None:
    url = f"{server.url}{path}?watch=1&{INITIAL}&timeoutSeconds=3600"
    headers = {"Authorization": f"Bearer {server.token}"}
    try:
        async with session.get(url, headers=headers) as resp:
            if resp.status != 200:
                w.ended = f"HTTP {resp.status}: {(await resp.read())[:200]!r}"
                return
            buffer = b""
            async for chunk in resp.content.iter_any():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    w.take_line(line)
        w.ended = "the server ended the watch"
    except (aiohttp.ClientError, OSError) as err:
        w.ended = f"{type(err).__name__}: {err}"


class CurlFollower:
    """A watch read by curl into a file (curl drains the connection at C speed, whatever
    this process is doing); the file is parsed here, and the measured window is the
    bytes that arrived in it (marked by their offsets), so parsing late counts nothing
    wrong."""

    def __init__(self, server: Server, path: str, w: WatchStats, workdir: Path) -> None:
        self.server, self.path, self.w = server, path, w
        self.out = workdir / f"{w.name}.watch"
        self.header = workdir / f"{w.name}.header"
        self.window = (0, 0)

    def size(self) -> int:
        return self.out.stat().st_size if self.out.exists() else 0

    async def run(self) -> None:
        self.header.write_text(f"Authorization: Bearer {self.server.token}\n")
        self.header.chmod(0o600)
        url = f"{self.server.url}{self.path}?watch=1&{INITIAL}&timeoutSeconds=3600"
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-N", "--cacert", str(self.server.ca_file),
            "-H", f"@{self.header}", "-o", str(self.out), url,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        offset = 0
        try:
            while not self.w.synced.is_set() and curl.returncode is None:
                # Until the initial events end: only bookmarks are looked for.
                size = self.size()
                if size > offset:
                    with self.out.open("rb") as f:
                        f.seek(offset)
                        data = f.read(size - offset)
                    end = data.rfind(b"\n") + 1
                    for line in data[:end].split(b"\n"):
                        if line.startswith(b'{"type":"BOOKMARK"'):
                            self.w.take(orjson.loads(line))
                    offset += end
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(curl.wait(), 0.2)
            await curl.wait()
            err = (await curl.stderr.read()).decode().strip() if curl.stderr else ""
            self.w.ended = f"curl exited {curl.returncode}: {err}"
        finally:
            if curl.returncode is None:
                curl.kill()
                await curl.wait()

    def count_window(self) -> None:
        """Count the events that arrived between the window's two offsets."""
        start, end = self.window
        with self.out.open("rb") as f:
            f.seek(start)
            data = f.read(end - start)
        first = data.find(b"\n") + 1 if start else 0  # a line cut by the first mark
        last = data.rfind(b"\n")
        self.w.counting = True
        for line in data[first:last].split(b"\n"):
            if line:
                self.w.take_line(line)
        self.w.counting = False


async def count_nodes(session: aiohttp.ClientSession, server: Server) -> int:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with session.get(f"{server.url}{METRICS}/nodes", headers=headers) as resp:
        return len(orjson.loads(await resp.read()).get("items") or []) if resp.ok else 0


async def cpu_over(process: psutil.Process, seconds: float) -> float:
    before = family_cpu(process)
    await asyncio.sleep(seconds)  # the measured window itself, not a synchronisation
    return family_cpu(process) - before


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kubepulse-watch-bench-") as tmp:
        workdir = Path(tmp)
        sim = start_simulator(args.nodes, workdir, True, "json", port=args.kubelet_port)
        if args.simulator_nice:
            # Its kubelets stand for other machines: on a shared one, the server and this
            # reader get the CPU first.
            simulated = psutil.Process(sim.process.pid)
            for proc in (simulated, *simulated.children(recursive=True)):
                proc.nice(args.simulator_nice)
        server: Server | None = None
        try:
            server = start_server(sim, workdir, args.resolution)
            if args.reader_nice:
                # This process reads the watches for a client on another machine: it
                # gets the CPU before the server it measures (started above, unchanged).
                os.setpriority(os.PRIO_PROCESS, 0, args.reader_nice)
            await wait_ready(server, 120 + args.nodes * 0.4)
            process = psutil.Process(server.process.pid)
            ctx = ssl.create_default_context(cafile=str(server.ca_file))
            connector = aiohttp.TCPConnector(ssl=ctx, limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                # Every node served, or as many as a busy machine lets the server keep
                # (a node whose scrape timed out is left out that cycle): the versions,
                # not the count, say whether a watch missed a stored scrape.
                deadline = time.monotonic() + 8 * args.resolution
                served = await count_nodes(session, server)
                while served < args.nodes and time.monotonic() < deadline:
                    await asyncio.sleep(1.0)
                    served = await count_nodes(session, server)
                if served == 0:
                    raise Missed("the server serving nodes", 8 * args.resolution)
                window = args.cycles * args.resolution
                print(f"measuring {window:g}s without watches", file=sys.stderr, flush=True)
                cpu_without = await cpu_over(process, window)
                nodes, pods = WatchStats("NodeMetrics"), WatchStats("PodMetrics")
                curls: list[CurlFollower] = []
                if args.reader == "curl":
                    curls = [
                        CurlFollower(server, f"{METRICS}/nodes", nodes, workdir),
                        CurlFollower(server, f"{METRICS}/pods", pods, workdir),
                    ]
                    readers = [asyncio.create_task(c.run()) for c in curls]
                else:
                    readers = [
                        asyncio.create_task(follow(session, server, f"{METRICS}/nodes", nodes)),
                        asyncio.create_task(follow(session, server, f"{METRICS}/pods", pods)),
                    ]
                try:
                    try:
                        await asyncio.wait_for(
                            asyncio.gather(nodes.synced.wait(), pods.synced.wait()), SYNC_S
                        )
                    except TimeoutError:
                        ended = f"nodes: {nodes.ended or 'open'}, pods: {pods.ended or 'open'}"
                        raise Missed("both watches' initial events", SYNC_S, ended) from None
                    nodes.counting = pods.counting = not curls
                    starts = [c.size() for c in curls]
                    print(f"measuring {window:g}s with watches", file=sys.stderr, flush=True)
                    cpu_with = await cpu_over(process, window)
                    nodes.counting = pods.counting = False
                    for c, start in zip(curls, starts, strict=True):
                        c.window = (start, c.size())
                finally:
                    for task in readers:
                        # A curl still running when the window ended kept up to its end.
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                for c in curls:
                    c.count_window()
        finally:
            if server is not None:
                stop(server.process)
            stop(sim.process)
    return {
        "nodes": args.nodes,
        "nodes_served_before": served,
        "resolution_s": args.resolution,
        "cycles": args.cycles,
        "node_events_per_cycle": nodes.events / args.cycles,
        "pod_events_per_cycle": pods.events / args.cycles,
        "expected_node_events_per_cycle": args.nodes,
        "expected_pod_events_per_cycle": args.nodes * PODS_PER_NODE,
        "node_watch_gaps": nodes.gaps(),
        "pod_watch_gaps": pods.gaps(),
        "node_watch_ended": nodes.ended,
        "pod_watch_ended": pods.ended,
        "cpu_per_cycle_without_s": cpu_without / args.cycles,
        "cpu_per_cycle_with_s": cpu_with / args.cycles,
        "machine": machine(),
    }


def report(r: dict[str, Any]) -> str:
    added = r["cpu_per_cycle_with_s"] - r["cpu_per_cycle_without_s"]
    return "\n".join(
        [
            f"{r['nodes']} nodes ({r['nodes_served_before']} served when measuring began), "
            f"{r['resolution_s']:g} s resolution, {r['cycles']} cycles",
            f"NodeMetrics watch: {r['node_events_per_cycle']:.0f} events/cycle "
            f"(of {r['expected_node_events_per_cycle']}), gaps {r['node_watch_gaps']}, "
            f"ended: {r['node_watch_ended'] or 'no'}",
            f"PodMetrics watch: {r['pod_events_per_cycle']:.0f} events/cycle "
            f"(of {r['expected_pod_events_per_cycle']}), gaps {r['pod_watch_gaps']}, "
            f"ended: {r['pod_watch_ended'] or 'no'}",
            f"server CPU per cycle: {r['cpu_per_cycle_without_s']:.2f} s without watches, "
            f"{r['cpu_per_cycle_with_s']:.2f} s with ({added:+.2f} s, "
            f"{added * 1000 / r['resolution_s'] / r['nodes']:+.4f} m/node)",
        ]
    )


def kept_up(r: dict[str, Any]) -> bool:
    # An ended watch was closed mid-window: a reader cancelled at the end never says so.
    ended = r["node_watch_ended"] or r["pod_watch_ended"]
    return not ended and r["node_watch_gaps"] == 0 and r["pod_watch_gaps"] == 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.metrics_watch", description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--cycles", type=int, default=4, help="measured resolutions, each phase")
    p.add_argument("--resolution", type=float, default=15.0, help="seconds")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument(
        "--simulator-nice",
        type=int,
        default=0,
        help="run the simulator at this niceness (its kubelets stand for other machines)",
    )
    p.add_argument(
        "--reader",
        choices=("python", "curl"),
        default="python",
        help="read the watches here (aiohttp) or with curl into files, parsed afterwards",
    )
    p.add_argument(
        "--reader-nice",
        type=int,
        default=0,
        help="run this reader at this niceness once the server started (negative: root)",
    )
    add_kubelet_port_flag(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    budget = 300 + args.nodes * 0.5 + 2 * args.cycles * args.resolution
    try:
        result = run_bounded(lambda: run(args), budget, "the whole benchmark")
    except BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json:
        args.json.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if kept_up(result) else 1


if __name__ == "__main__":
    sys.exit(main())
