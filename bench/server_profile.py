"""Where `kubepulse server` spends its time and memory: its hot paths in-process, profiled.

bench.server_scale measures the real server process; this runs the same code paths in
this process, under cProfile, against the same kubelet simulator, so that the cost can
be attributed to functions:

1. loading the targets file: `StaticInventory.from_file` on a small cluster's file
   (the loader is linear in the file; the full 5,000-node file takes many minutes), and,
   for comparison, libyaml alone and the same objects as JSON;
2. one scrape tick: `ScrapeManager.tick()` with the real `KubeletClient`, `MetricsStore`
   and `SelfMetrics`, over keep-alive TLS connections to every simulated node, after two
   unprofiled ticks (connections open, two points stored);
3. one LIST of every pod's metrics: `MetricsAPI.pod_list_chunks` on a mocked request, after a
   tick (rendered by the LIST) and after each node was prerendered as stored while clients list;
4. memory: live Python allocations (tracemalloc) after two ticks, by source line;
5. offline, at --offline-nodes (default 5,000): payloads rendered in this process and
   fed straight to the decoder and the store (no network), then a LIST of every pod
   and one render of the self-metrics, at full size.

cProfile slows Python-level code (roughly 1.5-2x); read the shares, not the absolute
times. The unprofiled CPU time of each step is printed next to it.

Run: .venv/bin/python -m bench.server_profile --nodes 1000 [--load-nodes 100]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import logging
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import generate_latest

from bench.sim import kubelets, server_state
from bench.sim.process import BenchError, raise_fd_limit, start_simulator, stop
from kubepulse.agent.resource_metrics import render
from kubepulse.api.metrics import MetricsAPI
from kubepulse.api.pod_list import RenderedPods
from kubepulse.kube.inventory import StaticInventory
from kubepulse.scrape import manager as manager_module
from kubepulse.scrape.client import ClientConfig, Decoded, KubeletClient
from kubepulse.scrape.decode import decode_resource_metrics
from kubepulse.scrape.manager import ScrapeManager
from kubepulse.selfmetrics import SelfMetrics
from kubepulse.store.points import MetricsStore
from kubepulse.timefmt import rfc3339

RESOLUTION = 15.0
TOP = 22
MEMORY_NODES = 300

_CATEGORIES = (
    ("kubepulse/scrape/decode", "decode (kubepulse.scrape.decode)"),
    ("kubepulse/store", "store (kubepulse.store.points)"),
    ("kubepulse/selfmetrics", "self-metrics (selfmetrics, prometheus_client)"),
    ("prometheus_client", "self-metrics (selfmetrics, prometheus_client)"),
    ("kubepulse/scrape/client", "kubelet client (kubepulse.scrape.client)"),
    ("kubepulse/scrape/manager", "manager (kubepulse.scrape.manager)"),
    ("kubepulse/api", "api (kubepulse.api)"),
    ("kubepulse/quantity", "api (kubepulse.api)"),
    ("kubepulse/timefmt", "api (kubepulse.api)"),
    ("kubepulse/kube", "inventory (kubepulse.kube)"),
    ("aiohttp", "aiohttp"),
    ("yarl", "yarl/multidict"),
    ("multidict", "yarl/multidict"),
    ("asyncio", "asyncio event loop"),
    ("selectors", "asyncio event loop"),
    ("ssl", "TLS (ssl)"),
    ("yaml", "PyYAML"),
)


def category(filename: str, function: str) -> str:
    if filename == "~":
        if "_ssl" in function or "SSL" in function:
            return "TLS (ssl)"
        if "zlib" in function or "decompress" in function:
            return "gzip (zlib)"
        if "orjson" in function or "dumps" in function:
            return "JSON (orjson)"
        if "select" in function or "epoll" in function:
            return "asyncio event loop"
        return "builtins (other)"
    for needle, name in _CATEGORIES:
        if needle in filename:
            return name
    return "other Python"


def summarise(profile: cProfile.Profile, title: str) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    by_category: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tt, _ct, _callers) in raw.items():
        by_category[category(filename, function)] += tt
    lines = [f"== {title}: {total:.3f}s profiled (own time, summed)"]
    for name, tt in sorted(by_category.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {tt:8.3f}s {tt / total:6.1%}  {name}")
    lines.append(f"  top {TOP} functions by own time:")
    stats.sort_stats("tottime").print_stats(TOP)
    body = out.getvalue()
    start = body.find("   ncalls")
    lines.append(body[start:].rstrip() if start >= 0 else body.rstrip())
    out2 = io.StringIO()
    pstats.Stats(profile, stream=out2).sort_stats("cumulative").print_stats(TOP)
    body2 = out2.getvalue()
    start2 = body2.find("   ncalls")
    lines.append(f"  top {TOP} by cumulative time:")
    lines.append(body2[start2:].rstrip() if start2 >= 0 else body2.rstrip())
    return "\n".join(lines)


def profile_loader(load_nodes: int, workdir: Path) -> None:
    """StaticInventory.from_file on a load_nodes cluster's targets file."""
    cluster = kubelets.build_cluster(load_nodes)
    path = workdir / "load-targets.yaml"
    kubelets.write_targets(cluster, path)
    size = path.stat().st_size
    pods = load_nodes * kubelets.PODS

    rss0 = psutil.Process().memory_info().rss
    cpu0 = time.process_time()
    inventory = StaticInventory.from_file(path)
    cpu = time.process_time() - cpu0
    gc.collect()
    rss1 = psutil.Process().memory_info().rss
    print(
        f"== targets file: {load_nodes} nodes, {pods} pods, {size / 2**20:.1f} MiB: "
        f"StaticInventory.from_file {cpu:.1f}s CPU ({cpu / pods * 1000:.2f} ms per pod, "
        f"{size / cpu / 2**20:.2f} MiB/s); RSS +{(rss1 - rss0) / 2**20:.0f} MiB after it"
    )
    del inventory
    gc.collect()

    tracemalloc.start()
    inventory = StaticInventory.from_file(path)
    gc.collect()
    live, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    raw_bytes = _live_under(inventory)
    print(
        f"   live Python memory of the loaded inventory {live / 2**20:.1f} MiB "
        f"({live / pods / 1024:.1f} KiB per pod; the objects' `raw` mappings reach "
        f"{raw_bytes / 2**20:.1f} MiB), tracemalloc peak during the load "
        f"{peak / 2**20:.0f} MiB ({peak / size:.0f}x the file)"
    )
    del inventory
    gc.collect()

    # For comparison: libyaml alone on the same file, and the same objects as JSON.
    cpu0 = time.process_time()
    with path.open() as f:
        docs = list(yaml.load_all(f, Loader=yaml.CSafeLoader))
    cpu_c = time.process_time() - cpu0
    del docs
    json_path = workdir / "load-targets.json"
    kubelets.write_targets_json(cluster, json_path)
    cpu0 = time.process_time()
    StaticInventory.from_file(json_path)
    cpu_json = time.process_time() - cpu0
    print(
        f"   for comparison: yaml.load_all(Loader=CSafeLoader) alone on the same file "
        f"{cpu_c:.1f}s; from_file on the same objects as JSON "
        f"({json_path.stat().st_size / 2**20:.1f} MiB) {cpu_json:.2f}s"
    )
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    StaticInventory.from_file(path)
    profile.disable()
    print(summarise(profile, "StaticInventory.from_file, YAML"))


def _live_under(inventory: StaticInventory) -> int:
    """Approximate bytes held by the nodes' and pods' raw mappings (deep getsizeof)."""
    seen: set[int] = set()

    def size(obj: Any) -> int:
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        total = sys.getsizeof(obj)
        if isinstance(obj, dict):
            total += sum(size(k) + size(v) for k, v in obj.items())
        elif isinstance(obj, list | tuple):
            total += sum(size(v) for v in obj)
        return total

    return sum(size(n.raw) for n in inventory.nodes()) + sum(size(p.raw) for p in inventory.pods())


class GcClock:
    """Wall time spent in the cyclic garbage collector, by generation, while installed."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._started = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.runs[generation] += 1

    def __str__(self) -> str:
        total = sum(self.seconds)
        parts = ", ".join(
            f"gen{g} {self.runs[g]} x {self.seconds[g]:.2f}s" for g in range(3) if self.runs[g]
        )
        return f"GC {total:.2f}s ({parts or 'none'})"


async def timed(
    coro_fn: Callable[[], Coroutine[Any, Any, Any]], collect: bool = True
) -> tuple[float, float, GcClock]:
    """CPU and wall seconds of one await, and its GC time; collect=False disables GC."""
    if not collect:
        gc.disable()
    try:
        with GcClock() as clock:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await coro_fn()
            return time.process_time() - cpu0, time.perf_counter() - wall0, clock
    finally:
        gc.enable()


def list_once(api: MetricsAPI, request: web.Request) -> Callable[[], Coroutine[Any, Any, int]]:
    """One LIST of every pod's metrics, without the socket: the body's size."""

    async def run() -> int:
        return sum(map(len, api.pod_list_chunks(request, None, rfc3339(time.time()))))

    return run


def prerendered(
    rendered: RenderedPods, store: MetricsStore
) -> Callable[[], Coroutine[Any, Any, None]]:
    """What storing each node's scrape does while clients list: its items rendered."""

    async def run() -> None:
        for node in store.node_names():
            rendered.node_stored(node)

    return run


def per_node_delays(count: int, rng: random.Random | None = None) -> list[float]:
    """Upstream's spread as it is: each request its own random delay (scraper.go)."""
    spread = min(manager_module.SPREAD_PER_NODE * count, manager_module.MAX_SPREAD)
    return [random.uniform(0, spread) for _ in range(count)]


def no_decode(body: bytes, node_name: str, default_time: float, rejected: list[str]) -> Decoded:
    """A decoder that reads nothing: a scrape's transport without decode and store."""
    return None, ()


async def compare_start_delays(
    stepped: ScrapeManager, per_node: ScrapeManager, nodes: int, rounds: int = 3
) -> None:
    """Ticks with upstream's per-node random delays (`per_node`: the same client, store
    and inventory, built with delays=per_node_delays) and with delays in steps
    (`stepped`), alternated in this one process so that the host's speed changes hit
    both alike."""
    cpu: dict[str, list[float]] = {"per-node random delays": [], "delays in 250 ms steps": []}
    for _ in range(rounds):
        for label, manager in zip(cpu, (per_node, stepped), strict=True):
            seconds, _, _ = await timed(manager.tick)
            cpu[label].append(seconds / nodes * 1000)
    for label, values in cpu.items():
        print(
            f"== steady tick, {label}: {statistics.median(values):.2f} ms CPU per node "
            f"(median of {rounds}; {', '.join(f'{v:.2f}' for v in values)})"
        )


async def profile_scrape_and_list(nodes: int, sim_info: dict[str, Any]) -> None:
    inventory = server_state.inventory(kubelets.build_cluster(nodes), keep_raw=False)
    print(f"== {server_state.tune_like_the_server()}")
    token = Path(sim_info["token_file"]).read_text().strip()
    config = ClientConfig(ca_file=Path(sim_info["ca"]), token=token)
    client = KubeletClient(config)
    await client.start()
    store = MetricsStore(RESOLUTION)
    metrics = SelfMetrics(store, RESOLUTION)
    manager = ScrapeManager(client, store, inventory, RESOLUTION, observer=metrics)
    try:
        rss0 = psutil.Process().memory_info().rss
        for label in ("first tick (TLS handshakes)", "second tick"):
            cpu, wall, clock = await timed(manager.tick)
            rss = psutil.Process().memory_info().rss
            print(
                f"== {label}: {cpu:.2f}s CPU, {wall:.2f}s wall, {clock}, unprofiled; "
                f"RSS +{(rss - rss0) / 2**20:.0f} MiB since before the first "
                f"({(rss - rss0) / nodes / 1024:.0f} KiB per node: connections, TLS, store)"
            )
        stored = store.points()
        print(f"   stored points: {stored} (want node={nodes}, container={nodes * 60})")
        print(f"   objects tracked by the GC now: {len(gc.get_objects())}")
        for collect in (True, False):
            cpu, wall, clock = await timed(manager.tick, collect)
            print(
                f"== steady tick, unprofiled, GC {'on' if collect else 'OFF'}: {cpu:.2f}s CPU "
                f"({cpu / nodes * 1000:.2f} ms per node), {wall:.2f}s wall (includes the "
                f"random spread of up to 4 s), {clock}"
            )
        per_node = ScrapeManager(
            client, store, inventory, RESOLUTION, observer=metrics, delays=per_node_delays
        )
        await compare_start_delays(manager, per_node, nodes)
        # The same tick with decoding (and so storing) left out: what the transport
        # costs (event loop, TLS, HTTP, gunzip, manager), the rest is decode and store.
        # A client built with a decoder that reads nothing, into the same store; its own
        # connections are opened by a first, unmeasured tick.
        transport = KubeletClient(config, decode=no_decode)
        await transport.start()
        undecoded = ScrapeManager(transport, store, inventory, RESOLUTION, observer=metrics)
        try:
            await undecoded.tick()
            times0 = os.times()
            cpu, wall, clock = await timed(undecoded.tick)
            times1 = os.times()
        finally:
            await transport.close()
        print(
            f"== steady tick without decoding or storing: {cpu:.2f}s CPU "
            f"({cpu / nodes * 1000:.2f} ms per node, of which kernel "
            f"{(times1.system - times0.system) / nodes * 1000:.2f} ms): the transport's share"
        )
        for _ in range(2):  # two points again after the undecoded tick
            await manager.tick()
        # CPU time, not wall time: on a shared 2-CPU machine the simulator's work would
        # otherwise be billed to whichever of our functions was running.
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        await manager.tick()
        profile.disable()
        print(summarise(profile, f"one steady scrape tick, {nodes} nodes"))

        api = MetricsAPI(store, inventory)
        request = make_mocked_request("GET", "/apis/metrics.k8s.io/v1beta1/pods")
        pods = nodes * kubelets.PODS
        list_all = list_once(api, request)
        size = await list_all()
        for collect in (True, False):
            # Cold: the first LIST after a tick renders every item; warm: the next one;
            # prerendered: after the tick, each node rendered as it was stored.
            await manager.tick()
            cold = await timed(list_all, collect)
            warm = await timed(list_all, collect)
            await manager.tick()
            prerender = await timed(prerendered(api.rendered, store), collect)
            ready = await timed(list_all, collect)
            for label, (cpu, _wall, clock) in (
                ("after a tick", cold),
                ("again", warm),
                ("prerendered as stored (no LIST)", prerender),
                ("after a tick, prerendered", ready),
            ):
                print(
                    f"== LIST pods {label}, unprofiled, GC {'on' if collect else 'OFF'}: "
                    f"{cpu:.2f}s CPU for {pods} pods ({cpu / pods * 1e6:.1f} us per pod; at "
                    f"150,000 pods ~{cpu / pods * 150000:.1f}s), {clock}, "
                    f"body {size / 2**20:.1f} MiB"
                )
        await manager.tick()
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        await list_all()
        profile.disable()
        print(summarise(profile, f"one LIST of {pods} pod metrics"))

        # Memory after two ticks by a fresh client into a fresh store, by source file of
        # the allocation: new connections too, so that their TLS buffers are counted.
        gc.collect()
        # A few hundred nodes only: tracemalloc slows Python down several times, and at
        # full size the ticks would run past the resolution and time out.
        few = min(nodes, MEMORY_NODES)
        few_names = {n.name for n in inventory.nodes()[:few]}
        subset = StaticInventory(
            inventory.nodes()[:few], [p for p in inventory.pods() if p.node_name in few_names]
        )
        rss0 = psutil.Process().memory_info().rss
        tracemalloc.start(1)
        client2 = KubeletClient(config)
        await client2.start()
        store2 = MetricsStore(RESOLUTION)
        metrics2 = SelfMetrics(store2, RESOLUTION)
        manager2 = ScrapeManager(client2, store2, subset, RESOLUTION, observer=metrics2)
        await manager2.tick()
        await manager2.tick()
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        rss1 = psutil.Process().memory_info().rss
        print(
            f"== live allocations after two ticks of a fresh client into a fresh store "
            f"({few} nodes, {store2.points()}; RSS +{(rss1 - rss0) / 2**20:.0f} MiB, "
            "tracemalloc on):"
        )
        for stat in snapshot.statistics("lineno")[:12]:
            frame = stat.traceback[0]
            print(
                f"  {stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  "
                f"{frame.filename}:{frame.lineno}"
            )
        total = sum(s.size for s in snapshot.statistics("filename"))
        print(f"  {total / 2**20:8.2f} MiB in all ({total / few / 1024:.1f} KiB per node)")
        await client2.close()
        del client2, store2, metrics2, manager2, snapshot
        tracemalloc.start(1)
        again = server_state.inventory(kubelets.build_cluster(nodes), keep_raw=False)
        gc.collect()
        inv_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del again
        print(
            f"   and the inventory of {nodes} nodes and {pods} pods as the server keeps it "
            f"(built without YAML here): {inv_bytes / 2**20:.1f} MiB "
            f"({inv_bytes / nodes / 1024:.1f} KiB per node)"
        )
    finally:
        await client.close()


async def profile_offline(nodes: int) -> None:
    """Decode, store, LIST and /metrics at `nodes` nodes without the network.

    The payloads are rendered in this process (as the simulator renders them) and fed
    to the decoder and the store directly, twice 15 s apart, so that every pod has two
    points; this shows what LIST and the self-metrics cost at full size even on a
    machine where the server cannot scrape that many nodes in time.
    """
    cluster = kubelets.build_cluster(nodes)
    inventory = server_state.inventory(cluster, keep_raw=False)
    print(f"== {server_state.tune_like_the_server()}")
    store = MetricsStore(RESOLUTION)
    metrics = SelfMetrics(store, RESOLUTION)
    now = time.time()
    bodies = {}
    for when in (now - RESOLUTION, now):
        for node in cluster.nodes:
            stats = kubelets.node_stats(node, when, cluster.epoch)
            bodies[node.name] = render(stats).encode()
        decode_cpu = store_cpu = 0.0
        with GcClock() as clock:
            for node in cluster.nodes:
                t0 = time.process_time()
                body = bodies[node.name]
                node_sample, pod_samples = decode_resource_metrics(body, node.name, when)
                t1 = time.process_time()
                store.store(node.name, node_sample, pod_samples)
                metrics.request_done(node.name, 0.05, True)
                store_cpu += time.process_time() - t1
                decode_cpu += t1 - t0
    print(
        f"== offline, {nodes} nodes: decode {decode_cpu / nodes * 1000:.2f} ms and store "
        f"{store_cpu / nodes * 1000:.2f} ms (with self-metrics) per node, {clock} "
        f"(last of two rounds); objects tracked by the GC: {len(gc.get_objects())}"
    )
    del bodies
    api = MetricsAPI(store, inventory)
    request = make_mocked_request("GET", "/apis/metrics.k8s.io/v1beta1/pods")
    list_all = list_once(api, request)
    pods = nodes * kubelets.PODS
    for collect in (True, False):
        runs = [await timed(list_all, collect) for _ in range(3)]
        best = min(runs, key=lambda r: r[0])
        print(
            f"== offline LIST of {pods} pods, GC {'on' if collect else 'OFF'}: {best[0]:.2f}s CPU "
            f"best of 3 ({best[0] / pods * 1e6:.1f} us per pod), {best[2]}"
        )
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    await list_all()
    profile.disable()
    print(summarise(profile, f"offline LIST of {pods} pod metrics"))
    cpu0 = time.process_time()
    with GcClock() as clock:
        text = generate_latest(metrics.registry)
    cpu = time.process_time() - cpu0
    print(
        f"== self-metrics /metrics at {nodes} nodes: {len(text) / 2**20:.1f} MiB, "
        f"{cpu:.2f}s CPU, {clock}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="profile kubepulse server hot paths in-process")
    p.add_argument("--nodes", type=int, default=1000, help="nodes for the tick and LIST")
    p.add_argument("--load-nodes", type=int, default=100, help="nodes for the loader profile")
    p.add_argument("--skip-load", action="store_true")
    p.add_argument(
        "--offline-nodes", type=int, default=5000, help="nodes for the offline LIST (0: skip)"
    )
    args = p.parse_args(argv)
    raise_fd_limit()
    # Scrape failures (none expected) would be logged per node; errors only.
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="kubepulse-profile-") as tmp:
        workdir = Path(tmp)
        if not args.skip_load:
            profile_loader(args.load_nodes, workdir)
        if args.nodes:
            try:
                sim = start_simulator(args.nodes, workdir, pod_objects=False, targets_format="yaml")
            except BenchError as err:
                raise SystemExit(str(err)) from None
            try:
                asyncio.run(profile_scrape_and_list(args.nodes, sim.info))
            finally:
                stop(sim.process)
        if args.offline_nodes:
            asyncio.run(profile_offline(args.offline_nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
