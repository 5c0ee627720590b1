"""Benchmark: `kubepulse server` scraping and serving 100, 1,000 and 5,000 nodes.

Targets (issue): at 5,000 nodes and a 15 s resolution, every scrape cycle done in < 5 s;
server CPU <= 0.1 millicore per node (metrics-server budgets 1m); RSS <= 0.2 MiB per node
(metrics-server budgets 2 MiB); a LIST of all 150,000 pod metrics answered in < 1 s.

How, for each N:
1. bench.sim.kubelets serves N nodes of 30 pods x 2 containers over TLS on 127.1.B.C:10250
   (a separate process) and writes the targets file, its CA and the kubelets' token.
2. The real `kubepulse server` runs as another process with metrics-server's flags
   (bench.sim.process.server_command); the benchmark polls /readyz until it answers 200.
3. Warm-up: the server's own /metrics until kubepulse_manager_tick_duration_seconds_count
   reaches WARMUP_TICKS, and its storage holds every node and container.
4. Measured: CYCLES scrape cycles, bounded by the simulator's "bursts" (the first request
   of each cycle after a silence): the server's CPU time (utime + stime, all threads,
   /proc/<pid>/stat via psutil) is read when each cycle begins, so each difference is one
   whole cycle (scrape, decode, store, idle). Cycle duration from the tick histogram
   (_sum/_count and the le="5" bucket) read just before and after the window, and the
   simulator's request span per cycle. RSS is sampled every 0.5 s all along, and VmHWM
   (the kernel's peak RSS of the process) is read from /proc/<pid>/status at the end.
5. LIST: GET /apis/metrics.k8s.io/v1beta1/pods over one keep-alive HTTPS connection,
   2 x LIST_REPEATS times, each after a whole cycle of scrapes since the one before, and
   alternately made as soon as the kubelets are quiet (the server may still be decoding
   the cycle's last answers; the target is judged on these) and once the server's CPU is
   quiet too; the time includes downloading the JSON; the item count must be N x 30.

Only the server's process is measured; the simulator's CPU is reported for context (the
machine's CPUs are shared by both, and by this script).

Shapes (bench.sim.kubelets --shape): --shape picks what every kubelet answers;
--shape-matrix runs each of SHAPE_MATRIX at 1,000 nodes (--matrix-nodes), then the shape
with the most steady RSS per node at 2,000 (--worst-nodes, e.g. 2000,5000), and reports
the steady RSS (the median over the measured cycles) per node of each run and, per shape
run at several sizes, the RSS added per added node between them (the slope).

Every wait has a deadline (the server's readiness, the warm-up ticks, each cycle's
start, each request, a whole cycle before a LIST, the server going idle), and each run
a budget for all of them (--budget); when one passes, the run stops, says which
condition was not met and what it measured so far, and the exit status is 2.

Run from the repository root:
    .venv/bin/python -m bench.server_scale              # 100, 1000 and 5000 nodes
    .venv/bin/python -m bench.server_scale --nodes 1000
    .venv/bin/python -m bench.server_scale --shape-matrix --worst-nodes 2000,5000
Exit status: 0 when every target is met at 5,000 nodes (or 5,000 was not run), 1 when a
target is missed there, 2 when the benchmark itself could not run or a deadline passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

from bench.sim.process import (
    BenchError,
    Missed,
    Server,
    ServerMetrics,
    Simulator,
    add_kubelet_port_flag,
    cpu_seconds,
    family,
    family_sum,
    parse_server_metrics,
    raise_fd_limit,
    start_server,
    start_simulator,
    stop,
    wait_ready,
)
from kubepulse.scrape.decode import decode_resource_metrics

PODS_PER_NODE = 30
CONTAINERS_PER_POD = 2
RESOLUTION_S = 15.0
WARMUP_TICKS = 2
CYCLES = 4
LIST_REPEATS = 5

TARGET_NODES = 5000
TARGET_CYCLE_S = 5.0
TARGET_MILLICORES_PER_NODE = 0.1
TARGET_MIB_PER_NODE = 0.2
TARGET_LIST_S = 1.0

SAMPLE_INTERVAL_S = 0.5
SIM_POLL_S = 0.1
QUIET_BEFORE_LIST_S = 0.5
MIB = 2**20
REQUEST_TIMEOUT_S = 120.0
"""One request to the server or the simulator's control endpoint (the server's own
/metrics takes 2-7 s of CPU at 5,000 nodes)."""
IDLE_TIMEOUT_RESOLUTIONS = 2.0
"""How long, in resolutions, a LIST "once idle" waits for the server's CPU to go quiet."""


@dataclass
class Progress:
    """What a run has measured so far and what it waits for now: said when it fails."""

    nodes: int
    shape: str = "sim"
    waiting: str = "nothing yet"
    measured: dict[str, Any] = field(default_factory=dict)

    def wait(self, condition: str) -> None:
        self.waiting = condition

    def summary(self) -> str:
        return json.dumps(self.measured, default=str)


class NoBurst(Exception):
    """No new scrape cycle began within the time allowed."""


# -- sampling ---------------------------------------------------------------------------


def family_cpu(process: psutil.Process) -> float:
    """CPU seconds of the server and its children, all threads."""
    return family_sum(process, cpu_seconds)


def family_rss(process: psutil.Process) -> int:
    return int(family_sum(process, lambda member: member.memory_info().rss))


def family_vm_hwm(process: psutil.Process) -> int:
    """The sum of each process's own peak RSS: an upper bound of the family's peak."""
    return sum(vm_hwm_bytes(member.pid) for member in family(process))


def vm_hwm_bytes(pid: int) -> int:
    """The kernel's high-water mark of the process's RSS (VmHWM, /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmHWM in /proc/{pid}/status")


@dataclass
class Sample:
    at: float
    phase: str
    server_rss: int
    server_cpu: float
    sim_cpu: float


@dataclass
class Sampler:
    """RSS and CPU of the server (and the simulator's CPU) every SAMPLE_INTERVAL_S."""

    server: psutil.Process
    sim: psutil.Process
    phase: str = "startup"
    samples: list[Sample] = field(default_factory=list)

    def take(self) -> Sample:
        sample = Sample(
            time.time(),
            self.phase,
            family_rss(self.server),
            family_cpu(self.server),
            cpu_seconds(self.sim),
        )
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        while True:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.take()
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    def history(self) -> str:
        """The server's RSS over time, for an error message."""
        if not self.samples:
            return ""
        t0 = self.samples[0].at
        step = max(1, len(self.samples) // 12)
        points = [*self.samples[::step], self.samples[-1]]
        shown = ", ".join(f"{s.at - t0:.0f}s {s.server_rss / MIB:.0f}M" for s in points)
        return f"\nserver RSS over time (since start): {shown}"

    def peak_rss(self, *phases: str) -> int:
        return max((s.server_rss for s in self.samples if s.phase in phases), default=0)


# -- talking to the server and the simulator --------------------------------------------


@dataclass
class Clients:
    server: Server
    sim: Simulator
    session: aiohttp.ClientSession

    async def get(self, path: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.server.token}"}
        try:
            async with (
                asyncio.timeout(REQUEST_TIMEOUT_S),
                self.session.get(self.server.url + path, headers=headers) as resp,
            ):
                body = await resp.read()
        except TimeoutError:
            raise Missed(f"the server answers GET {path}", REQUEST_TIMEOUT_S) from None
        except (OSError, aiohttp.ClientError) as err:
            raise BenchError(f"GET {path}: {type(err).__name__}: {err}") from None
        if resp.status != 200:
            raise BenchError(f"GET {path}: HTTP {resp.status}: {body[:300]!r}")
        return body

    async def metrics(self) -> ServerMetrics:
        body = await self.get("/metrics")
        return parse_server_metrics(body.decode(), len(body))

    async def sim_stats(self) -> dict[str, Any]:
        try:
            async with (
                asyncio.timeout(REQUEST_TIMEOUT_S),
                self.session.get(self.sim.control + "/stats") as resp,
            ):
                data: dict[str, Any] = await resp.json()
                return data
        except TimeoutError:
            raise Missed("the simulator answers GET /stats", REQUEST_TIMEOUT_S) from None
        except (OSError, aiohttp.ClientError) as err:
            raise BenchError(f"simulator /stats: {type(err).__name__}: {err}") from None

    async def next_burst_start(self, timeout: float, not_before: float = 0.0) -> float:
        """Wait for the simulator to see the first request of a new scrape cycle.

        Bursts that begin before not_before (epoch seconds) do not count: an overloaded
        server's event loop stalls, and the gaps it leaves split one cycle into several.
        """
        seen = len((await self.sim_stats())["bursts"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = await self.sim_stats()
            bursts = stats["bursts"]
            if len(bursts) > seen:
                if bursts[-1][0] >= not_before:
                    return float(bursts[-1][0])
                seen = len(bursts)
            await asyncio.sleep(SIM_POLL_S)
        raise NoBurst(f"no new scrape cycle within {timeout:.0f}s (are cycles overlapping?)")

    async def wait_for_requests(self, count: int, timeout: float) -> None:
        """Wait until the kubelets have answered `count` requests in all."""
        deadline = time.monotonic() + timeout
        while (seen := (await self.sim_stats())["requests"]) < count:
            if time.monotonic() > deadline:
                raise Missed(
                    f"the kubelets answer {count} requests in all (a whole cycle more)",
                    timeout,
                    f"they answered {seen}",
                )
            await asyncio.sleep(SIM_POLL_S)

    async def wait_quiet(self, quiet: float, timeout: float) -> bool:
        """Wait until the kubelets have had no request for `quiet` seconds; False if
        they had none within `timeout` (cycles that run into each other leave no quiet
        time: the caller goes on, and marks what it measures as overlapped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = await self.sim_stats()
            bursts = stats["bursts"]
            if not bursts or stats["time"] - bursts[-1][1] >= quiet:
                return True
            await asyncio.sleep(SIM_POLL_S)
        return False


async def check_kubelet_payload(sim: Simulator, session: aiohttp.ClientSession) -> int:
    """One node's answer decodes, with kubepulse's decoder, into its complete pods."""
    ctx = ssl.create_default_context(cafile=sim.info["ca"])
    token = Path(sim.info["token_file"]).read_text().strip()
    url = f"https://{sim.info['last_address']}:{sim.info['port']}/metrics/resource"
    try:
        async with (
            asyncio.timeout(REQUEST_TIMEOUT_S),
            session.get(url, ssl=ctx, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            body = await resp.read()
    except TimeoutError:
        raise Missed(f"a simulated kubelet answers {url}", REQUEST_TIMEOUT_S) from None
    if resp.status != 200:
        raise BenchError(f"simulator answered HTTP {resp.status}")
    node, pods = decode_resource_metrics(body, "check", time.time())
    containers = sum(len(p.containers) for p in pods)
    want_pods, per_pod = pods_per_node(sim), containers_per_pod(sim)
    if node is None or len(pods) != want_pods or containers != want_pods * per_pod:
        raise BenchError(f"simulator payload decodes to {len(pods)} pods, {containers} containers")
    return len(body)


def pods_per_node(sim: Simulator) -> int:
    return int(sim.info.get("pods_per_node", PODS_PER_NODE))


def containers_per_pod(sim: Simulator) -> int:
    return int(sim.info.get("containers_per_pod", CONTAINERS_PER_POD))


# -- one run ----------------------------------------------------------------------------


@dataclass
class ListResult:
    seconds: float
    server_cpu: float
    body_bytes: int
    items: int
    partial_items: int
    overlapped_scrape: bool
    after_idle: bool
    """Made once the server's CPU went quiet after the cycle, not as the cycle's last
    kubelet answered (when the server may still be decoding and storing them)."""


@dataclass
class RunResult:
    nodes: int
    pod_objects: bool
    targets_format: str
    command: list[str]
    targets_bytes: int
    sim_setup_s: float
    payload_bytes: int
    listening_s: float
    ready_s: float
    rss_at_ready: int
    cycle_cpu: list[float]
    cycle_wall: list[float]
    sim_cycle_cpu: list[float]
    burst_spans: list[float]
    tick_mean_s: float
    ticks_measured: int
    ticks_over_target: int
    requests_failed: float
    requests_ok: float
    stored_nodes: float
    stored_containers: float
    fixed_boundaries: int
    rss_startup_peak: int
    rss_steady_peak: int
    rss_list_peak: int
    vm_hwm: int
    lists: list[ListResult]
    self_metrics_bytes: int
    self_metrics_cpu: float
    resolution: float
    shape: str = "sim"
    pods_per_node: int = PODS_PER_NODE
    containers_per_pod: int = CONTAINERS_PER_POD
    rss_steady_median: int = 0
    """The median of the RSS samples over the measured cycles: the steady RSS."""

    @property
    def steady_rss_mib_per_node(self) -> float:
        return self.rss_steady_median / MIB / self.nodes

    @property
    def cpu_per_cycle(self) -> float:
        return statistics.median(self.cycle_cpu)

    @property
    def millicores_per_node(self) -> float:
        return self.cpu_per_cycle / self.resolution * 1000 / self.nodes

    @property
    def saturated(self) -> bool:
        """The server used (nearly) one whole CPU: its event loop is one thread, so the
        CPU it was given is a floor of what it needs, not the need itself."""
        return self.cpu_per_cycle >= 0.9 * self.resolution

    @property
    def sim_cores(self) -> float:
        return statistics.median(self.sim_cycle_cpu) / self.resolution

    @property
    def mib_per_node(self) -> float:
        return self.vm_hwm / MIB / self.nodes

    @property
    def steady_mib_per_node(self) -> float:
        return max(self.rss_steady_peak, self.rss_list_peak) / MIB / self.nodes

    @property
    def list_median(self) -> float:
        """LISTs made as the cycle's last kubelet answered: the target is judged on them."""
        return _median([r.seconds for r in self.lists if not r.after_idle])

    @property
    def idle_list_median(self) -> float:
        return _median([r.seconds for r in self.lists if r.after_idle])


async def run_one(
    nodes: int,
    resolution: float,
    cycles: int,
    list_repeats: int,
    pod_objects: bool,
    targets_format: str,
    extra: Sequence[str] = (),
    shape: str = "sim",
    progress: Progress | None = None,
    kubelet_port: int | None = None,
) -> RunResult:
    """One run; every wait in it has a deadline (Missed), and `progress` holds what was
    measured so far when it fails."""
    progress = progress or Progress(nodes, shape)
    with tempfile.TemporaryDirectory(prefix=f"kubepulse-scale-{nodes}-") as tmp:
        workdir = Path(tmp)
        print(f"[{nodes}] starting the kubelet simulator ({shape})", file=sys.stderr, flush=True)
        progress.wait(f"the simulator of {nodes} nodes says READY")
        sim = start_simulator(
            nodes, workdir, pod_objects, targets_format, port=kubelet_port, shape=shape
        )
        progress.measured.update(
            sim_setup_s=sim.info["setup_seconds"], answer_bytes=sim.info.get("answer_bytes")
        )
        server: Server | None = None
        sampler_task: asyncio.Task[None] | None = None
        sampler: Sampler | None = None
        try:
            print(
                f"[{nodes}] simulator ready in {sim.info['setup_seconds']}s "
                f"(targets {sim.info['targets_bytes'] / MIB:.1f} MiB); starting the server",
                file=sys.stderr,
                flush=True,
            )
            server = start_server(sim, workdir, resolution, extra)
            sampler = Sampler(psutil.Process(server.process.pid), psutil.Process(sim.process.pid))
            sampler_task = asyncio.create_task(sampler.run())
            # The server loads the targets before it listens: allow for a slow loader.
            progress.wait("the server answers /readyz with 200")
            try:
                listening_s, ready_s = await wait_ready(server, 120 + nodes * 0.4)
            except BenchError as err:
                raise BenchError(f"[{nodes}] {err}{sampler.history()}") from None
            print(f"[{nodes}] server ready after {ready_s:.1f}s", file=sys.stderr, flush=True)
            rss_at_ready = sampler.take().server_rss
            progress.measured.update(
                ready_s=round(ready_s, 1), rss_at_ready_mib=round(rss_at_ready / MIB)
            )
            ctx = ssl.create_default_context(cafile=str(server.ca_file))
            connector = aiohttp.TCPConnector(ssl=ctx, limit=4)
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                clients = Clients(server, sim, session)
                return await measure(
                    clients,
                    sampler,
                    nodes,
                    resolution,
                    cycles,
                    list_repeats,
                    listening_s,
                    ready_s,
                    rss_at_ready,
                    progress,
                )
        finally:
            if sampler is not None and sampler.samples:
                progress.measured["rss_last_mib"] = round(sampler.samples[-1].server_rss / MIB)
            if sampler_task is not None:
                sampler_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler_task
            if server is not None:
                stop(server.process)
            stop(sim.process)


async def wait_idle(process: psutil.Process, timeout: float, window: float = 0.5) -> None:
    """Wait until the process used under a tenth of a CPU over `window` seconds."""
    deadline = time.monotonic() + timeout
    used = float("nan")
    while time.monotonic() < deadline:
        cpu0 = family_cpu(process)
        await asyncio.sleep(window)
        used = family_cpu(process) - cpu0
        if used < 0.1 * window:
            return
    raise Missed(
        f"the server idle (under 0.1 CPU over {window:g}s)",
        timeout,
        f"it used {used / window:.2f} CPU in the last window",
    )


async def measure(
    clients: Clients,
    sampler: Sampler,
    nodes: int,
    resolution: float,
    cycles: int,
    list_repeats: int,
    listening_s: float,
    ready_s: float,
    rss_at_ready: int,
    progress: Progress,
) -> RunResult:
    server, sim = clients.server, clients.sim
    measured = progress.measured
    progress.wait("one simulated kubelet's answer")
    payload_bytes = await check_kubelet_payload(sim, clients.session)
    per_node, per_pod = pods_per_node(sim), containers_per_pod(sim)

    # -- warm-up: WARMUP_TICKS whole ticks, every node and container stored ---------------
    sampler.phase = "warm-up"
    # Polled every half resolution: at 5,000 nodes one /metrics answer costs the server
    # about 2 s of CPU (per-node histograms), which would slow the warm-up down.
    progress.wait(f"{WARMUP_TICKS} scrape ticks of the server (warm-up)")
    deadline = time.monotonic() + (WARMUP_TICKS + 4) * resolution
    while True:
        m = await clients.metrics()
        if m.tick_count >= WARMUP_TICKS:
            break
        if time.monotonic() > deadline:
            raise Missed(
                f"{WARMUP_TICKS} scrape ticks of the server (warm-up)",
                (WARMUP_TICKS + 4) * resolution,
                f"only {m.tick_count:g} ticks",
            )
        await asyncio.sleep(resolution / 2)
    want_containers = nodes * per_node * per_pod
    if m.node_points != nodes or m.container_points != want_containers:
        print(
            f"[{nodes}] WARNING: after warm-up the server stores {m.node_points:g}/{nodes} "
            f"nodes and {m.container_points:g}/{want_containers} containers",
            file=sys.stderr,
            flush=True,
        )
    print(f"[{nodes}] warm; measuring {cycles} cycles", file=sys.stderr, flush=True)

    # -- measured cycles, bounded by the first request of each ---------------------------
    # When cycles run into each other there is no silence to mark them; then the
    # boundaries fall back to fixed steps of one resolution (the server is periodic, so
    # any whole resolution holds one cycle's work).
    measured.update(stored_nodes=m.node_points, stored_containers=m.container_points)
    before = await clients.metrics()
    sampler.phase = "measured"
    boundaries: list[Sample] = []
    fixed_boundaries = 0
    for cycle in range(cycles + 1):
        progress.wait(f"the start of measured cycle {cycle + 1} of {cycles}")
        if fixed_boundaries == 0:
            try:
                not_before = boundaries[-1].at + resolution / 2 if boundaries else 0.0
                await clients.next_burst_start(resolution * 1.5, not_before)
            except NoBurst:
                fixed_boundaries += 1
        else:
            fixed_boundaries += 1
        if fixed_boundaries and boundaries:
            await asyncio.sleep(max(0.0, boundaries[-1].at + resolution - time.time()))
        boundaries.append(sampler.take())
        if len(boundaries) > 1:
            a, b = boundaries[-2], boundaries[-1]
            measured.setdefault("cycle_cpu_s", []).append(round(b.server_cpu - a.server_cpu, 3))
            measured["rss_steady_mib"] = round(
                statistics.median(s.server_rss for s in sampler.samples if s.phase == "measured")
                / MIB
            )
    after = await clients.metrics()
    steady = [s.server_rss for s in sampler.samples if s.phase == "measured"]
    sampler.phase = "after"
    stats = await clients.sim_stats()
    first_at = boundaries[0].at - 1.0
    bursts = [b for b in stats["bursts"] if b[0] >= first_at][:cycles]
    # Per resolution: a boundary found late (fixed fallback) stretches its cycle.
    pairs = list(itertools.pairwise(boundaries))
    cycle_cpu = [(b.server_cpu - a.server_cpu) * resolution / (b.at - a.at) for a, b in pairs]
    sim_cpu = [(b.sim_cpu - a.sim_cpu) * resolution / (b.at - a.at) for a, b in pairs]
    cycle_wall = [b.at - a.at for a, b in pairs]
    ticks = int(after.tick_count - before.tick_count)
    tick_mean = (after.tick_sum - before.tick_sum) / ticks if ticks else float("nan")
    within = after.tick_buckets.get(TARGET_CYCLE_S, 0) - before.tick_buckets.get(TARGET_CYCLE_S, 0)

    # -- LIST of every pod's metrics, between cycles -------------------------------------
    sampler.phase = "list"
    lists: list[ListResult] = []
    proc = psutil.Process(server.process.pid)
    last_requests = -nodes
    for i in range(2 * list_repeats):
        # Each LIST follows a whole cycle of scrapes since the one before, as an HPA's
        # LIST once per resolution does: no item can be answered from the previous one.
        # They alternate between a LIST made as the cycle's last kubelet answered, when
        # the server may still be decoding the answers, and one made once it is idle.
        after_idle = i % 2 == 1
        progress.wait(f"a whole cycle of scrapes before LIST {i + 1}")
        await clients.wait_for_requests(last_requests + nodes, resolution * 3)
        progress.wait(f"the kubelets quiet before LIST {i + 1}")
        await clients.wait_quiet(QUIET_BEFORE_LIST_S, resolution * 2)
        if after_idle:
            progress.wait(f"the server idle before LIST {i + 1}")
            await wait_idle(proc, resolution * IDLE_TIMEOUT_RESOLUTIONS)
        progress.wait(f"LIST {i + 1}")
        requests_before = last_requests = (await clients.sim_stats())["requests"]
        cpu0, t0 = family_cpu(proc), time.perf_counter()
        body = await clients.get("/apis/metrics.k8s.io/v1beta1/pods")
        elapsed, cpu1 = time.perf_counter() - t0, family_cpu(proc)
        overlapped = (await clients.sim_stats())["requests"] != requests_before
        items = orjson.loads(body)["items"]
        partial = sum(1 for item in items if len(item["containers"]) != per_pod)
        lists.append(
            ListResult(elapsed, cpu1 - cpu0, len(body), len(items), partial, overlapped, after_idle)
        )
        measured.setdefault("list_s", []).append(round(elapsed, 3))
    sampler.phase = "after"

    # -- context: one scrape of the server's own /metrics ---------------------------------
    progress.wait("the kubelets quiet before the server's own /metrics")
    await clients.wait_quiet(QUIET_BEFORE_LIST_S, resolution * 2)
    progress.wait("the server's own /metrics")
    cpu0 = family_cpu(proc)
    own = await clients.metrics()
    own_cpu = family_cpu(proc) - cpu0

    hwm = family_vm_hwm(proc)
    return RunResult(
        nodes=nodes,
        pod_objects=bool(sim.info["pod_objects"]),
        targets_format=str(sim.info["targets_format"]),
        command=server.command,
        targets_bytes=int(sim.info["targets_bytes"]),
        sim_setup_s=float(sim.info["setup_seconds"]),
        payload_bytes=payload_bytes,
        listening_s=listening_s,
        ready_s=ready_s,
        rss_at_ready=rss_at_ready,
        cycle_cpu=cycle_cpu,
        cycle_wall=cycle_wall,
        sim_cycle_cpu=sim_cpu,
        burst_spans=[b[1] - b[0] for b in bursts],
        tick_mean_s=tick_mean,
        ticks_measured=ticks,
        ticks_over_target=int(ticks - within),
        requests_failed=after.requests_failed - before.requests_failed,
        requests_ok=after.requests_ok - before.requests_ok,
        stored_nodes=m.node_points,
        stored_containers=m.container_points,
        fixed_boundaries=fixed_boundaries,
        rss_startup_peak=sampler.peak_rss("startup"),
        rss_steady_peak=sampler.peak_rss("measured"),
        rss_list_peak=sampler.peak_rss("list"),
        vm_hwm=hwm,
        lists=lists,
        self_metrics_bytes=own.body_bytes,
        self_metrics_cpu=own_cpu,
        resolution=resolution,
        shape=str(sim.info.get("shape", "sim")),
        pods_per_node=per_node,
        containers_per_pod=per_pod,
        rss_steady_median=int(statistics.median(steady)) if steady else 0,
    )


# -- report -----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "aiohttp": aiohttp.__version__,
    }


def _range(values: Sequence[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{format(min(values), fmt)}-{format(max(values), fmt)}"


def _list_cell(r: RunResult, after_idle: bool) -> str:
    """The median and range of one kind of LIST; "-" when none was made."""
    seconds = [x.seconds for x in r.lists if x.after_idle == after_idle]
    if not seconds:
        return "-"
    return f"{_median(seconds):.2f}s ({_range(seconds, '.2f')})"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(results: list[RunResult]) -> list[str]:
    """Print the tables; returns the targets missed at TARGET_NODES."""
    m = machine()
    print(
        f"kubepulse server, resolution {results[0].resolution:g}s; {m['cpus']} CPUs "
        f"({m['cpu']}), python {m['python']}, kernel {m['kernel']}"
    )
    print("server command:", " ".join(results[0].command))
    header = (
        "nodes",
        "shape",
        "answer",
        "ready",
        "cycle CPU (median, range)",
        "m/node",
        "tick mean",
        "ticks>5s",
        "req span",
        "RSS ready",
        "RSS steady",
        "VmHWM",
        "MiB/node",
        "steady MiB/node",
        "LIST median (range)",
        "LIST when idle",
        "sim cores",
    )
    rows = []
    for r in results:
        rows.append(
            (
                f"{r.nodes}",
                f"{r.shape} ({r.pods_per_node}x{r.containers_per_pod})",
                f"{r.payload_bytes / 1000:.0f} KB",
                f"{r.ready_s:.0f}s",
                f"{r.cpu_per_cycle:.2f}s ({_range(r.cycle_cpu, '.2f')})",
                f"{'>=' if r.saturated else ''}{r.millicores_per_node:.3f}",
                f"{r.tick_mean_s:.2f}s",
                f"{r.ticks_over_target}/{r.ticks_measured}",
                f"{statistics.median(r.burst_spans):.2f}s" if r.burst_spans else "-",
                f"{r.rss_at_ready / MIB:.0f}M",
                f"{max(r.rss_steady_peak, r.rss_list_peak) / MIB:.0f}M",
                f"{r.vm_hwm / MIB:.0f}M",
                f"{r.mib_per_node:.3f}",
                f"{r.steady_rss_mib_per_node:.3f}",
                _list_cell(r, after_idle=False),
                _list_cell(r, after_idle=True),
                f"{r.sim_cores:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for line in slopes(results):
        print(line)
    for r in results:
        lists = r.lists
        if not lists:
            continue
        print(
            f"[{r.nodes}] targets file {r.targets_format.upper()} {r.targets_bytes / MIB:.1f} "
            f"MiB ({'nodes and pods' if r.pod_objects else 'nodes only'}), server listening "
            f"after {r.listening_s:.1f}s, ready after {r.ready_s:.1f}s; kubelet answer "
            f"{r.payload_bytes} bytes; stored after warm-up {r.stored_nodes:g} nodes, "
            f"{r.stored_containers:g} containers; kubelet requests between the window's "
            f"/metrics reads ok {r.requests_ok:g} failed {r.requests_failed:g}; cycle "
            f"boundaries {'fixed' if r.fixed_boundaries else 'from request bursts'}, "
            f"wall {_range(r.cycle_wall, '.2f')}s; LIST items "
            f"{'/'.join(str(x.items) for x in lists)}; "
            f"LIST body {lists[0].body_bytes / MIB:.1f} MiB, server CPU during a LIST "
            f"{_median([x.server_cpu for x in lists if not x.after_idle]):.2f}s (made as the "
            f"cycle's last kubelet answered), "
            f"{_median([x.server_cpu for x in lists if x.after_idle]):.2f}s (once idle), "
            f"{sum(x.overlapped_scrape for x in lists)} of {len(lists)} overlapped a scrape; "
            f"own /metrics {r.self_metrics_bytes / MIB:.1f} MiB for "
            f"{r.self_metrics_cpu:.2f}s CPU; RSS peak at startup "
            f"{r.rss_startup_peak / MIB:.0f} MiB"
        )
        if r.saturated:
            print(
                f"[{r.nodes}] SATURATED: the server used {r.cpu_per_cycle / r.resolution:.2f} "
                "CPU (one event-loop thread): it cannot keep up, scrapes time out and the "
                "CPU per node above is a floor, not its need"
            )
    missed: list[str] = []
    for r in results:
        if r.nodes != TARGET_NODES:
            continue
        want_items = r.nodes * r.pods_per_node
        complete = all(x.items == want_items and x.partial_items == 0 for x in r.lists)
        checks = [
            (
                "every cycle < 5 s",
                r.ticks_over_target == 0 and r.ticks_measured >= 1,
                f"{r.ticks_over_target} of {r.ticks_measured} ticks over {TARGET_CYCLE_S:g}s, "
                f"mean {r.tick_mean_s:.2f}s ({r.tick_mean_s / TARGET_CYCLE_S:.2f} x)",
            ),
            (
                "CPU <= 0.1 millicore/node",
                r.millicores_per_node <= TARGET_MILLICORES_PER_NODE,
                f"{'>= ' if r.saturated else ''}{r.millicores_per_node:.3f} m/node "
                f"({r.millicores_per_node / TARGET_MILLICORES_PER_NODE:.2f} x"
                f"{', saturated' if r.saturated else ''})",
            ),
            (
                "RSS <= 0.2 MiB/node (VmHWM)",
                r.mib_per_node <= TARGET_MIB_PER_NODE,
                f"{r.mib_per_node:.3f} MiB/node ({r.mib_per_node / TARGET_MIB_PER_NODE:.2f} x); "
                f"steady-state peak {r.steady_mib_per_node:.3f} MiB/node "
                f"({r.steady_mib_per_node / TARGET_MIB_PER_NODE:.2f} x)",
            ),
            (
                "LIST 150,000 pods < 1 s",
                r.list_median < TARGET_LIST_S and complete,
                f"median {r.list_median:.2f}s ({r.list_median / TARGET_LIST_S:.2f} x) made as "
                f"a cycle's last kubelet answered, {r.idle_list_median:.2f}s once the server "
                "was idle after it, "
                f"items {'/'.join(str(x.items) for x in r.lists)} "
                f"(want {want_items}, all with {r.containers_per_pod} containers)",
            ),
        ]
        for name, ok, detail in checks:
            print(f"target at {r.nodes}: {name}: {'PASS' if ok else 'FAIL'} - {detail}")
            if not ok:
                missed.append(name)
    return missed


def slopes(results: list[RunResult]) -> list[str]:
    """Per shape run at several sizes: the steady RSS added per added node between
    consecutive sizes (MiB/node). Linear growth keeps it at or below the per-node figure
    of the smaller size; memory that grows faster than the fleet shows as a larger one."""
    lines = []
    by_shape: dict[str, list[RunResult]] = {}
    for r in results:
        by_shape.setdefault(r.shape, []).append(r)
    for shape, runs in by_shape.items():
        runs = sorted(runs, key=lambda r: r.nodes)
        for a, b in itertools.pairwise(runs):
            if b.nodes == a.nodes:
                continue
            slope = (b.rss_steady_median - a.rss_steady_median) / MIB / (b.nodes - a.nodes)
            lines.append(
                f"slope {shape} {a.nodes}->{b.nodes} nodes: steady RSS "
                f"{a.rss_steady_median / MIB:.0f} -> {b.rss_steady_median / MIB:.0f} MiB, "
                f"{slope:.3f} MiB per added node (per node at {a.nodes}: "
                f"{a.steady_rss_mib_per_node:.3f}, at {b.nodes}: {b.steady_rss_mib_per_node:.3f})"
            )
    return lines


def result_json(r: RunResult) -> dict[str, Any]:
    data = asdict(r)
    data.update(
        cpu_per_cycle=r.cpu_per_cycle,
        millicores_per_node=r.millicores_per_node,
        mib_per_node=r.mib_per_node,
        steady_mib_per_node=r.steady_mib_per_node,
        list_median=r.list_median,
        idle_list_median=r.idle_list_median,
        sim_cores=r.sim_cores,
        saturated=r.saturated,
        steady_rss_mib_per_node=r.steady_rss_mib_per_node,
    )
    return data


SHAPE_MATRIX = ("sim", "kubelet", "unique", "small", "big", "kubelet+unique+big")
"""The shapes --shape-matrix runs at MATRIX_NODES, the worst of them then at --worst-nodes."""
MATRIX_NODES = 1000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="kubepulse server at 100 / 1,000 / 5,000 nodes")
    p.add_argument(
        "--nodes",
        default="100,1000,5000",
        help="comma-separated node counts (default 100,1000,5000)",
    )
    p.add_argument(
        "--shape",
        default="sim",
        help="the simulator's answer shape (bench.sim.kubelets --shape): sim, kubelet, "
        "unique, big, small, or joined with +",
    )
    p.add_argument(
        "--shape-matrix",
        action="store_true",
        help=f"run every shape of {', '.join(SHAPE_MATRIX)} at --matrix-nodes, then the one "
        "with the most steady RSS per node at --worst-nodes (instead of --nodes)",
    )
    p.add_argument("--matrix-nodes", type=int, default=MATRIX_NODES)
    p.add_argument(
        "--worst-nodes", default="2000", help="comma-separated sizes for the worst shape"
    )
    p.add_argument("--cycles", type=int, default=CYCLES, help="measured scrape cycles")
    p.add_argument(
        "--list-repeats", type=int, default=None, help="LIST pairs (default 5; 0 in a matrix)"
    )
    p.add_argument("--resolution", type=float, default=RESOLUTION_S, help="seconds")
    p.add_argument(
        "--nodes-only-targets",
        action="store_true",
        help="give the server Node objects only (it then lists the pods it scraped)",
    )
    p.add_argument(
        "--targets-format",
        choices=("yaml", "json"),
        default="yaml",
        help="write the targets file as YAML (default) or JSON (kubectl -o yaml / -o json)",
    )
    p.add_argument(
        "--server-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="one more flag for the server, e.g. --server-flag=--kubelet-use-summary-api",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds one run may take in all (default: from its size and resolution)",
    )
    add_kubelet_port_flag(p)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.list_repeats is None:
        args.list_repeats = 0 if args.shape_matrix else LIST_REPEATS
    return args


def run_budget(args: argparse.Namespace, nodes: int) -> float:
    """Seconds one run may take in all: start-up, warm-up, cycles and LISTs with room.

    Each wait has its own deadline; this bounds their sum, which a slow machine could
    otherwise stretch to many times a run's usual length.
    """
    if args.budget is not None:
        return float(args.budget)
    res = args.resolution
    startup = 60 + 0.05 * nodes + 120 + 0.4 * nodes
    return startup + res * (WARMUP_TICKS + 4 + 2 * args.cycles + 4 * 2 * args.list_repeats) + 120


async def run_sized(
    args: argparse.Namespace, nodes: int, shape: str, results: list[RunResult], errors: list[str]
) -> RunResult | None:
    """One run within its budget; a failure is said with what it measured so far."""
    progress = Progress(nodes, shape)
    budget = run_budget(args, nodes)
    try:
        async with asyncio.timeout(budget):
            result = await run_one(
                nodes,
                args.resolution,
                args.cycles,
                args.list_repeats,
                not args.nodes_only_targets,
                args.targets_format,
                args.server_flag,
                shape,
                progress,
                args.kubelet_port,
            )
    except TimeoutError:
        err: BenchError = Missed(f"the whole run within its budget, at: {progress.waiting}", budget)
    except BenchError as caught:
        err = caught
    else:
        results.append(result)
        if args.json is not None:
            args.json.write_text(json.dumps([result_json(r) for r in results], indent=1))
        return result
    where = f"{nodes} nodes ({shape})"
    print(f"benchmark error at {where}: {err}", file=sys.stderr, flush=True)
    print(f"measured so far at {where}: {progress.summary()}", file=sys.stderr, flush=True)
    errors.append(f"{where}: {str(err).splitlines()[0]}; measured so far: {progress.summary()}")
    return None


async def run_all(args: argparse.Namespace) -> tuple[list[RunResult], list[str]]:
    """Every requested N (or the shape matrix); a run that fails is reported with what it
    measured, and the next one still runs."""
    results: list[RunResult] = []
    errors: list[str] = []
    if not args.shape_matrix:
        for n in [int(x) for x in args.nodes.split(",") if x.strip()]:
            await run_sized(args, n, args.shape, results, errors)
        return results, errors
    for shape in SHAPE_MATRIX:
        await run_sized(args, args.matrix_nodes, shape, results, errors)
    if not results:
        return results, errors
    worst = max(results, key=lambda r: r.steady_rss_mib_per_node)
    print(
        f"worst shape at {args.matrix_nodes} nodes: {worst.shape} "
        f"({worst.steady_rss_mib_per_node:.3f} MiB/node steady)",
        file=sys.stderr,
        flush=True,
    )
    for n in [int(x) for x in args.worst_nodes.split(",") if x.strip()]:
        await run_sized(args, n, worst.shape, results, errors)
    return results, errors


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    results, errors = asyncio.run(run_all(args))
    missed = report(results) if results else []
    for error in errors:
        print(f"benchmark error: {error}")
    if errors:
        return 2
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
