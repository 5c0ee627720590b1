"""Benchmark: what recording history costs `kubepulse server` at 1,000 nodes.

Target (issue #6): history writes cost <= 20% of the scrape cost at 1,000 nodes.

How, in one run:
1. bench.sim.kubelets serves 1,000 nodes of 30 pods x 2 containers over TLS on 127.1.x.y
   (one process), as for bench.server_scale, on a port of its own (KUBELET_PORT, or the
   next free one), so that it can run beside bench.server_scale.
2. Two real `kubepulse server` processes scrape it with bench.server_scale's flags (from
   bench.sim.process.server_command): A without history, B with `--history-file`
   (default tiers, a file on this machine's disk). B starts half a resolution after A
   is ready, so that their scrape cycles alternate: A's cycle, then B's, in every
   resolution, and neither scrapes while the other does (the simulator's request
   bursts, two a resolution, show it).
3. After both have made WARMUP_TICKS ticks, the CPU time of each whole process (utime +
   stime of every thread, psutil; for B that includes the history's writer thread) is
   read at the start of each of WINDOWS windows of two resolutions. Each window holds
   exactly two cycles of each server, whatever their phase. Per window: each server's
   CPU per cycle, and the ratio (B - A) / A: the history's extra CPU over the scrape's
   own, both measured over the same 30 s. The difference is also split into the main
   thread's (the event loop: the recorder) and the other threads' (the writer).
4. Afterwards B's history file is opened: its rows per tier must hold every scrape of
   the measured window (nothing dropped).

Run from the repository root:
    .venv/bin/python -m bench.history_cost
    .venv/bin/python -m bench.history_cost --nodes 300 --windows 3

Exit status: 0 when the median ratio is <= 20%, 1 when not, 2 when the benchmark could
not run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import platform
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from bench.sim.kubelets import node_address
from bench.sim.process import (
    BenchError,
    Server,
    Simulator,
    cpu_seconds,
    log_tail,
    parse_server_metrics,
    raise_fd_limit,
    start_server,
    start_simulator,
    stop,
    wait_ready,
)
from kubepulse.history.file import History

NODES = 1000
RESOLUTION_S = 15.0
WARMUP_TICKS = 3
WINDOWS = 10
TARGET_RATIO = 0.20
KUBELET_PORT = 10350
ROWS_PER_NODE = 1 + 30 * (1 + 2)  # the node, its pods and their containers


def kubelet_port(nodes: int) -> int:
    """KUBELET_PORT or the next port free on every simulated node's address."""
    for port in range(KUBELET_PORT, KUBELET_PORT + 100):
        try:
            for index in range(nodes):
                with socket.socket() as s:
                    s.bind((node_address(index), port))
        except OSError:
            continue
        return port
    raise BenchError(f"no port free on all of 127.1.x.y from {KUBELET_PORT}")


def start(sim: Simulator, workdir: Path, resolution: float, extra: list[str]) -> Server:
    workdir.mkdir()
    return start_server(sim, workdir, resolution, extra)


@dataclass
class Reading:
    at: float
    a: float
    b: float
    a_main: float
    b_main: float


def main_thread_cpu(process: psutil.Process) -> float:
    for thread in process.threads():
        if thread.id == process.pid:
            return float(thread.user_time + thread.system_time)
    raise BenchError("no main thread")


async def ticks(session: aiohttp.ClientSession, server: Server) -> float:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    headers = {"Authorization": f"Bearer {server.token}"}
    async with session.get(f"{server.url}/metrics", ssl=ctx, headers=headers) as resp:
        body = await resp.text()
        if resp.status != 200:
            raise BenchError(f"{server.url}/metrics: HTTP {resp.status}")
    return parse_server_metrics(body, len(body)).tick_count


async def wait_ticks(
    session: aiohttp.ClientSession, server: Server, count: int, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while await ticks(session, server) < count:
        if server.process.poll() is not None:
            raise BenchError(f"server exited:\n{log_tail(server.log_path)}")
        if time.monotonic() > deadline:
            raise BenchError(f"fewer than {count} ticks within {timeout:.0f}s")
        await asyncio.sleep(1.0)


async def run(
    nodes: int, windows: int, resolution: float, workdir: Path
) -> tuple[list[Reading], dict[str, int], int]:
    port = kubelet_port(nodes)
    sim = start_simulator(nodes, workdir, True, "json", port=port)
    servers: list[Server] = []
    kubelet = [f"--kubelet-port={port}"]
    try:
        a = start(sim, workdir / "a", resolution, kubelet)
        servers.append(a)
        await wait_ready(a, 120 + nodes * 0.4)
        print(f"[{nodes}] server A (no history) ready", file=sys.stderr, flush=True)
        await asyncio.sleep(resolution / 2)
        history_file = workdir / "b" / "history.db"
        b = start(sim, workdir / "b", resolution, [*kubelet, f"--history-file={history_file}"])
        servers.append(b)
        await wait_ready(b, 120 + nodes * 0.4)
        print(f"[{nodes}] server B (--history-file) ready", file=sys.stderr, flush=True)
        async with aiohttp.ClientSession() as session:
            for server in (a, b):
                await wait_ticks(session, server, WARMUP_TICKS, (WARMUP_TICKS + 4) * resolution)
            pa, pb = psutil.Process(a.process.pid), psutil.Process(b.process.pid)
            readings = []
            started = time.monotonic()
            for i in range(windows + 1):
                await asyncio.sleep(max(0.0, started + i * 2 * resolution - time.monotonic()))
                readings.append(
                    Reading(
                        time.monotonic(),
                        cpu_seconds(pa),
                        cpu_seconds(pb),
                        main_thread_cpu(pa),
                        main_thread_cpu(pb),
                    )
                )
                if i:
                    print(f"[{nodes}] window {i}/{windows}", file=sys.stderr, flush=True)
            b_ticks = await ticks(session, b)
        stop(b.process)
        history = History(history_file)
        try:
            rows = history.stats().rows
        finally:
            history.close()
        return readings, rows, int(b_ticks)
    finally:
        for server in servers:
            stop(server.process)
        stop(sim.process)


def report(
    readings: list[Reading], rows: dict[str, int], b_ticks: int, nodes: int, resolution: float
) -> bool:
    per_a, per_b, ratios, main, other = [], [], [], [], []
    for before, after in itertools.pairwise(readings):
        cycles = (after.at - before.at) / resolution
        a = (after.a - before.a) / cycles
        b = (after.b - before.b) / cycles
        per_a.append(a)
        per_b.append(b)
        ratios.append((b - a) / a)
        main.append(((after.b_main - before.b_main) - (after.a_main - before.a_main)) / cycles)
        other.append(
            (
                (after.b - after.b_main - before.b + before.b_main)
                - (after.a - after.a_main - before.a + before.a_main)
            )
            / cycles
        )
    ratio = statistics.median(ratios)
    print(
        f"kubepulse server at {nodes} nodes x 30 pods x 2 containers, resolution "
        f"{resolution:g}s; {psutil.cpu_count()} CPUs, python {platform.python_version()}"
    )
    print(
        "window  A (no history) CPU/cycle  B (--history-file) CPU/cycle"
        "  B-A main thread  B-A other threads  (B-A)/A"
    )
    windows = zip(per_a, per_b, main, other, ratios, strict=True)
    for i, (a, b, m, o, r) in enumerate(windows, 1):
        print(f"{i:>6}  {a:24.3f} s  {b:27.3f} s  {m:13.3f} s  {o:15.3f} s  {r:7.1%}")
    print(
        f"median  {statistics.median(per_a):24.3f} s  {statistics.median(per_b):27.3f} s  "
        f"{statistics.median(main):13.3f} s  {statistics.median(other):15.3f} s  {ratio:7.1%}"
    )
    scrapes = rows.get("raw", 0) / (nodes * ROWS_PER_NODE)
    print(
        f"history after {b_ticks} ticks of B: "
        + ", ".join(f"{tier} {count:,}" for tier, count in rows.items())
        + f" (raw: {scrapes:.2f} x every node, pod and container of a scrape; the first"
        " tick has no rates, and B may tick once more before it stops)"
    )
    ok = ratio <= TARGET_RATIO
    print(
        f"target: history writes <= {TARGET_RATIO:.0%} of the scrape cost at {nodes} nodes: "
        f"{'PASS' if ok else 'FAIL'} (median {ratio:.1%}, {ratio / TARGET_RATIO:.2f} x target)"
    )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--nodes", type=int, default=NODES)
    p.add_argument("--windows", type=int, default=WINDOWS, help="windows of two resolutions")
    p.add_argument("--resolution", type=float, default=RESOLUTION_S)
    p.add_argument("--dir", type=Path, help="where the files go (default: a temporary dir)")
    args = p.parse_args(argv)
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="kubepulse-history-cost-", dir=args.dir) as tmp:
        try:
            readings, rows, b_ticks = asyncio.run(
                run(args.nodes, args.windows, args.resolution, Path(tmp))
            )
        except (BenchError, OSError, aiohttp.ClientError) as err:
            print(f"benchmark error: {str(err).splitlines()[0]}")
            return 2
    return 0 if report(readings, rows, b_ticks, args.nodes, args.resolution) else 1


if __name__ == "__main__":
    sys.exit(main())
