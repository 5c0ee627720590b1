"""Benchmark: the dashboard's JSON for 5,000 nodes and 150,000 pods.

Target (issue #6): the overview page for 5,000 nodes and 150,000 pods served in < 1 s.

How:
1. A child process builds what `kubepulse server` holds at that scale: bench.sim.kubelets's
   cluster (5,000 nodes x 30 pods x 2 containers, the same names, labels, requests and
   limits as its targets file) as a StaticInventory of Node and Pod objects, and a
   MetricsStore with two stored scrapes of every node 15 s apart, so that every node,
   pod and container has a rate. Each container has its own millisecond timestamp a
   few seconds before its node's scrape, as cAdvisor's per-container readings do. It
   tunes the process as the server does (tune_for_many_nodes), mounts the dashboard at
   /dashboard as the server does, and serves it over plain HTTP on 127.0.0.1, with one
   more route, POST /bench/scrape, that stores a new scrape of every node (15 s later)
   and, with ?prepared=1, then does what the scrape manager does at the end of a cycle
   (the dashboard's PodIndex.tick_done()) and waits for the preparation it starts,
   returning its CPU time.
2. This process signs in (POST /dashboard/login with the token, as the page does), then
   for each of /dashboard/api/overview, /pods (sorted by CPU: the first 1,000 and the
   total) and /nodes, over one keep-alive connection, REPEATS timed GETs (after one
   untimed warm-up) in each of three cases, each GET timed until the whole body is read:
   - "first, unprepared": after a scrape of every node with no end-of-cycle step: every
     pod's usage is new and nothing is ready, as for the first poll of a dashboard that
     nobody watched during the last cycle;
   - "after a cycle": after a scrape of every node and the end-of-cycle preparation, as
     for the page's polls while someone watches (it polls every 5 s; the server scrapes
     every 15 s and prepares in the quiet after each cycle);
   - "unchanged": no scrape between them: the other polls of a resolution.
   The server process's CPU time (utime + stime, psutil) is read around each GET too.
3. Every answer is checked: the overview counts 5,000 nodes and 150,000 pods, has ten
   top pods by CPU and by memory and every namespace; /pods totals 150,000 sorted by
   CPU; /nodes lists 5,000.

Run from the repository root:
    .venv/bin/python -m bench.dashboard_overview
    .venv/bin/python -m bench.dashboard_overview --nodes 1000 --repeats 5

Exit status: 0 when the overview's median is under 1 s, 1 when not, 2 when the
benchmark could not run or an answer was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from aiohttp import web

from bench.sim.process import BenchError
from bench.sim.server_state import build
from kubepulse.api.authn import Authenticator, User
from kubepulse.dashboard.app import DashboardOptions, DashboardParts, mount
from kubepulse.dashboard.pod_index import pod_index
from kubepulse.history.file import History
from kubepulse.history.sources import SqliteSeries
from kubepulse.history.writer import Row
from kubepulse.kube.inventory import StaticInventory
from kubepulse.server.assemble import tune_for_many_nodes

NODES = 5000
PODS = 30
CONTAINERS = 2
REPEATS = 7
TARGET_OVERVIEW_S = 1.0
TOKEN = "dashboard-bench-token-0123456789abcdef"
PATHS = ("overview", "pods", "nodes")
CASES = ("first, unprepared", "after a cycle", "unchanged")


def fill_history(path: Path, inventory: StaticInventory, now: float) -> History:
    """What a day of `kubepulse server` leaves for the overview to read: the cluster's sum
    every 15 s for 24 h (the overview's trend), and a point of every node, pod and
    container (the list of recent pods walks all of their series)."""
    history = History(path)
    rows: list[Row] = [
        ("cluster", "", "", "", ts, 50_000_000_000, 200 << 30)
        for ts in range(int(now - 86400), int(now), 15)
    ]
    point = now - 60
    rows += [("node", "", n.name, "", point, 5 * 10**8, 1 << 30) for n in inventory.nodes()]
    for pod in inventory.pods():
        rows.append(("pod", pod.namespace, pod.name, "", point, 10**7, 50 << 20))
        rows += [
            ("container", pod.namespace, pod.name, c.name, point, 5 * 10**6, 25 << 20)
            for c in pod.containers
        ]
    for i in range(0, len(rows), 20_000):
        history.record(rows[i : i + 20_000])
        if not history.flush(timeout=600):
            raise BenchError("the history did not write its rows within 600 s")
    return history


def serve(
    conn: multiprocessing.connection.Connection, nodes: int, pods: int, history_dir: str | None
) -> None:
    """The child: build, mount, send (port, build seconds), serve until the pipe closes."""
    started = time.perf_counter()
    scraper, inventory = build(nodes, pods, CONTAINERS)
    history = (
        fill_history(Path(history_dir) / "history.db", inventory, time.time())
        if history_dir
        else None
    )
    tune_for_many_nodes()
    parts = DashboardParts(
        store=scraper.store,
        inventory=inventory,
        history=SqliteSeries(history) if history else None,
        authenticator=Authenticator({TOKEN: User("bench", "1", ("system:masters",))}),
        options=DashboardOptions(secure_cookies=False),
    )

    async def run() -> None:
        root = web.Application()
        mount(root, parts)

        index = pod_index(scraper.store, inventory)

        async def scrape(request: web.Request) -> web.Response:
            scraper.scrape()
            cpu = 0.0
            if request.query.get("prepared"):
                started = time.process_time()
                index.tick_done()  # as ScrapeManager does once a cycle is over
                await index.prepared()
                cpu = time.process_time() - started
            return web.json_response({"prepare_cpu": cpu})

        root.router.add_post("/bench/scrape", scrape)
        runner = web.AppRunner(root, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        conn.send((port, time.perf_counter() - started))
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()
        loop.add_reader(conn.fileno(), closed.set)
        await closed.wait()
        await runner.cleanup()

    asyncio.run(run())


@dataclass
class Timing:
    path: str
    when: str
    seconds: list[float]
    server_cpu: list[float]
    body_bytes: int
    prepare_cpu: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def check(path: str, data: dict[str, Any], nodes: int, pods: int) -> None:
    want_pods = nodes * pods
    if path == "overview":
        t = data["totals"]
        if (t["nodes"], t["pods"]) != (nodes, want_pods) or len(data["nodes"]) != nodes:
            raise BenchError(f"overview counts {t['nodes']} nodes and {t['pods']} pods")
        if len(data["top_cpu"]) != 10 or len(data["top_memory"]) != 10:
            raise BenchError("overview without ten top pods")
        if sum(n["pods"] for n in data["namespaces"]) != want_pods:
            raise BenchError("namespace totals do not add up to every pod")
        if data["history"] and len(data.get("series") or []) < 100:
            raise BenchError("overview without the cluster's trend over its hour")
        if any(n["cpu"]["used"] is None for n in data["nodes"]):
            raise BenchError("a node without usage: the store has no rate for it")
    elif path == "pods":
        if data["total"] != want_pods or len(data["items"]) != min(1000, want_pods):
            raise BenchError(f"/pods total {data['total']}, items {len(data['items'])}")
        cpus = [p["cpu"]["used"] for p in data["items"]]
        if cpus != sorted(cpus, reverse=True):
            raise BenchError("/pods not sorted by CPU")
    elif path == "ended" and (data["history"] is not True or data["items"]):
        raise BenchError(f"/ended lists served pods or has no history: {str(data)[:200]}")
    elif path == "nodes" and len(data["items"]) != nodes:
        raise BenchError(f"/nodes has {len(data['items'])} items")


async def measure(
    port: int, server_pid: int, nodes: int, pods: int, repeats: int, paths: Sequence[str]
) -> list[Timing]:
    base = f"http://127.0.0.1:{port}/dashboard"
    proc = psutil.Process(server_pid)

    def cpu() -> float:
        t = proc.cpu_times()
        return float(t.user + t.system)

    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        async with session.post(
            f"{base}/login", data={"token": TOKEN}, headers={"Origin": f"http://127.0.0.1:{port}"}
        ) as login:
            if login.status != 200 or not login.url.path.endswith("/dashboard/"):
                raise BenchError(f"sign-in: HTTP {login.status} at {login.url}")

        async def scrape(prepared: bool) -> float:
            url = f"http://127.0.0.1:{port}/bench/scrape{'?prepared=1' if prepared else ''}"
            async with session.post(url) as resp:
                if resp.status != 200:
                    raise BenchError(f"/bench/scrape: HTTP {resp.status}")
                return float((await resp.json())["prepare_cpu"])

        timings = []
        for path in paths:
            for when in CASES:
                timing = Timing(path, when, [], [], 0, [])
                for i in range(repeats + 1):
                    if when != "unchanged":
                        prepare_cpu = await scrape(when == "after a cycle")
                        if i and when == "after a cycle":
                            timing.prepare_cpu.append(prepare_cpu)
                    cpu0, t0 = cpu(), time.perf_counter()
                    async with session.get(f"{base}/api/{path}") as resp:
                        body = await resp.read()
                    elapsed, cpu1 = time.perf_counter() - t0, cpu()
                    if resp.status != 200:
                        raise BenchError(f"/api/{path}: HTTP {resp.status}: {body[:200]!r}")
                    if i == 0:  # the warm-up: checked, not counted
                        check(path, orjson.loads(body), nodes, pods)
                        timing.body_bytes = len(body)
                        continue
                    timing.seconds.append(elapsed)
                    timing.server_cpu.append(cpu1 - cpu0)
                timings.append(timing)
                print(
                    f"  /api/{path}, {when}: median {timing.median * 1000:.0f} ms",
                    file=sys.stderr,
                    flush=True,
                )
        return timings


def report(timings: Sequence[Timing], nodes: int, pods: int, build_s: float) -> bool:
    print(
        f"kubepulse dashboard JSON: {nodes} nodes, {nodes * pods} pods x {CONTAINERS} "
        f"containers, two scrapes stored; {psutil.cpu_count()} CPUs, python "
        f"{platform.python_version()}; built in {build_s:.0f}s"
    )
    print(
        "GET                    case                requests  median     range"
        "                server CPU median  body     end-of-cycle CPU median"
    )
    for t in timings:
        print(
            f"/dashboard/api/{t.path:<9}{t.when:<20}{len(t.seconds):>8}  "
            f"{t.median * 1000:6.0f} ms  "
            f"{min(t.seconds) * 1000:6.0f} - {max(t.seconds) * 1000:6.0f} ms  "
            f"{statistics.median(t.server_cpu) * 1000:9.0f} ms         "
            f"{t.body_bytes / 1e6:.2f} MB  "
            + (f"{statistics.median(t.prepare_cpu) * 1000:.0f} ms" if t.prepare_cpu else "-")
        )
    ok = True
    for t in timings:
        if t.path == "overview":
            passed = t.median < TARGET_OVERVIEW_S
            ok = ok and passed
            print(
                f"target: overview for {nodes} nodes and {nodes * pods} pods in < "
                f"{TARGET_OVERVIEW_S:g} s, {t.when}: {'PASS' if passed else 'FAIL'} "
                f"({t.median / TARGET_OVERVIEW_S:.2f} x target)"
            )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--nodes", type=int, default=NODES)
    p.add_argument("--pods", type=int, default=PODS, help="pods per node")
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed requests per path")
    p.add_argument(
        "--history",
        action="store_true",
        help="with a history file: the overview reads the cluster's trend, /api/ended is timed",
    )
    args = p.parse_args(argv)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    scratch = tempfile.TemporaryDirectory(prefix="kubepulse-overview-")
    history_dir = scratch.name if args.history else None
    paths = (*PATHS, "ended") if args.history else PATHS
    server = ctx.Process(
        target=serve, args=(child, args.nodes, args.pods, history_dir), daemon=True
    )
    print(f"building {args.nodes} nodes x {args.pods} pods ...", file=sys.stderr, flush=True)
    server.start()
    child.close()
    try:
        if not parent.poll(600):
            raise BenchError("the dashboard process did not start within 600 s")
        port, build_s = parent.recv()
        assert server.pid is not None
        timings = asyncio.run(measure(port, server.pid, args.nodes, args.pods, args.repeats, paths))
    except (BenchError, EOFError, OSError, aiohttp.ClientError) as err:
        print(f"benchmark error: {err}")
        return 2
    finally:
        parent.close()
        server.join(30)
        if server.is_alive():
            server.terminate()
            server.join()
        scratch.cleanup()
    return 0 if report(timings, args.nodes, args.pods, build_s) else 1


if __name__ == "__main__":
    sys.exit(main())
