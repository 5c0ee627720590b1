"""Benchmark: kubepulse server beside the Go scrapers a user would run instead.

One kubelet simulator (bench.sim.kubelets, N nodes, any --shape) is scraped in turn by:

- `kubepulse server`, with the flags bench.server_scale uses (bench.sim.process);
- Debian's `prometheus`, with a file_sd target list of the N kubelets, scheme https with
  the simulator's CA, the kubelets' bearer token, metrics_path /metrics/resource, a
  scrape_interval equal to the server's resolution, a temporary --storage.tsdb.path and
  --web.listen-address on 127.0.0.1;
- Debian's `victoria-metrics`, with the same scrape config (-promscrape.config), a
  temporary -storageDataPath and -httpListenAddr on 127.0.0.1.

Each runs alone (the one before is stopped), the same way: started, then waited for
until the kubelets have answered a request from every node (a whole interval of
scrapes), then WARMUP_INTERVALS more intervals, then MEASURED_INTERVALS measured: the
process's CPU time (utime + stime, all threads and children, psutil) over the window
divided by the scrapes the kubelets answered in it (the simulator counts every
authorised request), and the RSS sampled every 0.5 s over the window (its median: the
steady RSS), per node. kubepulse's ratios to each are printed: the goal is CPU per
node-scrape at most Prometheus's and RSS at most VictoriaMetrics's.

Every wait has a deadline; when one passes, the benchmark says which condition was not
met and what it measured so far, and exits 2.

Run from the repository root:
    .venv/bin/python -m bench.vs_scrapers --nodes 1000
    .venv/bin/python -m bench.vs_scrapers --nodes 1000 --shape kubelet+unique+big
Exit status: 0 when kubepulse is ahead of both (CPU <= Prometheus's, RSS <=
VictoriaMetrics's), 1 when not, 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.sim.kubelets import node_address
from bench.sim.process import (
    BenchError,
    Missed,
    Simulator,
    add_kubelet_port_flag,
    cpu_seconds,
    family_sum,
    free_port,
    log_tail,
    raise_fd_limit,
    run_bounded,
    start_server,
    start_shaped_simulator,
    stop,
    wait_ready,
)

RESOLUTION_S = 15.0
WARMUP_INTERVALS = 2
MEASURED_INTERVALS = 4
SAMPLE_INTERVAL_S = 0.5
MIB = 2**20
REQUEST_TIMEOUT_S = 30.0
SCRAPERS = ("kubepulse", "prometheus", "victoria-metrics")


@dataclass
class Measured:
    scraper: str
    nodes: int
    command: list[str]
    cpu_s: float = 0.0
    scrapes: int = 0
    window_s: float = 0.0
    rss: list[int] = field(default_factory=list)
    startup_s: float = 0.0

    @property
    def cpu_ms_per_scrape(self) -> float:
        return self.cpu_s * 1000 / self.scrapes if self.scrapes else float("nan")

    @property
    def rss_steady(self) -> float:
        return float(statistics.median(self.rss)) if self.rss else float("nan")

    @property
    def mib_per_node(self) -> float:
        return self.rss_steady / MIB / self.nodes

    @property
    def rss_peak(self) -> int:
        return max(self.rss, default=0)


async def sim_requests(session: aiohttp.ClientSession, sim: Simulator) -> dict[str, Any]:
    try:
        async with (
            asyncio.timeout(REQUEST_TIMEOUT_S),
            session.get(sim.control + "/stats") as resp,
        ):
            data: dict[str, Any] = await resp.json()
            return data
    except TimeoutError:
        raise Missed("the simulator answers GET /stats", REQUEST_TIMEOUT_S) from None


def scrape_config(sim: Simulator, workdir: Path, interval: float) -> Path:
    """One Prometheus scrape config, which VictoriaMetrics reads too."""
    targets = workdir / "kubelets.json"
    first = sim.info["first_address"]
    port = sim.info["port"]
    addresses = [_address(first, i) for i in range(int(sim.info["nodes"]))]
    targets.write_text(
        json.dumps([{"targets": [f"{a}:{port}" for a in addresses], "labels": {}}], indent=1)
    )
    config = workdir / "scrape.yml"
    timeout = scrape_timeout(interval)
    config.write_text(
        f"""global:
  scrape_interval: {round(interval * 1000)}ms
  scrape_timeout: {round(timeout * 1000)}ms
scrape_configs:
  - job_name: kubelet-resource
    scheme: https
    metrics_path: /metrics/resource
    tls_config:
      ca_file: {sim.info["ca"]}
    bearer_token_file: {sim.info["token_file"]}
    file_sd_configs:
      - files: [{targets}]
"""
    )
    return config


def scrape_timeout(interval: float) -> float:
    """The same for all three: Prometheus's default 10 s, within 0.9 of the interval."""
    return min(10.0, interval * 0.9)


def _address(first: str, index: int) -> str:
    """bench.sim.kubelets.node_address, checked against the first node's address."""
    address = node_address(index)
    if index == 0 and address != first:
        raise BenchError(f"the simulator's first address is {first}, not {address}")
    return address


def go_scraper_command(name: str, config: Path, workdir: Path, port: int) -> list[str]:
    binary = shutil.which(name)
    if binary is None:
        raise BenchError(f"{name} not found: apt-get install -y {name}")
    data = workdir / f"{name}-data"
    data.mkdir()
    if name == "prometheus":
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
        ]
    return [
        binary,
        f"-promscrape.config={config}",
        f"-storageDataPath={data}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=1d",
    ]


async def measure_one(
    name: str,
    sim: Simulator,
    workdir: Path,
    interval: float,
    warmup: int,
    intervals: int,
    session: aiohttp.ClientSession,
    progress: dict[str, Any],
) -> Measured:
    nodes = int(sim.info["nodes"])
    own = workdir / name
    own.mkdir()
    started = time.monotonic()
    process: subprocess.Popen[bytes]
    if name == "kubepulse":
        timeout = f"--kubelet-request-timeout={round(scrape_timeout(interval) * 1000)}ms"
        server = start_server(sim, own, interval, [timeout])
        process, command = server.process, server.command
        await wait_ready(server, 120 + nodes * 0.4)
    else:
        config = scrape_config(sim, own, interval)
        command = go_scraper_command(name, config, own, free_port())
        log = (own / "log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    result = Measured(name, nodes, command)
    progress[name] = result
    proc = psutil.Process(process.pid)
    rss: list[tuple[float, int]] = []

    async def sample() -> None:
        while True:
            with contextlib.suppress(psutil.NoSuchProcess):
                rss.append((time.monotonic(), int(family_sum(proc, _rss))))
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    sampler = asyncio.create_task(sample())
    try:
        # Scraping: every node answered once since start, within a few intervals.
        base = (await sim_requests(session, sim))["requests"]
        deadline = time.monotonic() + interval * 4 + 60
        while (seen := (await sim_requests(session, sim))["requests"]) - base < nodes:
            if process.poll() is not None:
                raise BenchError(f"{name} exited: {log_tail(own / 'log')}")
            if time.monotonic() > deadline:
                raise Missed(
                    f"{name} scrapes every one of {nodes} kubelets",
                    interval * 4 + 60,
                    f"{seen - base} authorised requests; log: {log_tail(own / 'log', 5)}",
                )
            await asyncio.sleep(0.2)
        result.startup_s = time.monotonic() - started
        print(
            f"[{name}] scraping all {nodes} nodes after {result.startup_s:.1f}s; warm-up",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.sleep(interval * warmup)
        stats0 = await sim_requests(session, sim)
        cpu0, t0 = family_sum(proc, cpu_seconds), time.monotonic()
        await asyncio.sleep(interval * intervals)
        stats1 = await sim_requests(session, sim)
        cpu1, t1 = family_sum(proc, cpu_seconds), time.monotonic()
        if process.poll() is not None:
            raise BenchError(f"{name} exited during the window: {log_tail(own / 'log')}")
        result.cpu_s, result.window_s = cpu1 - cpu0, t1 - t0
        result.scrapes = int(stats1["requests"] - stats0["requests"])
        result.rss = [r for at, r in rss if t0 <= at <= t1]
        if stats1["unauthorized"] != stats0["unauthorized"]:
            raise BenchError(f"{name}: the kubelets refused requests (401) in the window")
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        stop(process)
    print(
        f"[{name}] {result.cpu_ms_per_scrape:.3f} ms CPU per node-scrape "
        f"({result.scrapes} scrapes in {result.window_s:.0f}s), steady RSS "
        f"{result.rss_steady / MIB:.0f} MiB ({result.mib_per_node:.3f} MiB/node)",
        file=sys.stderr,
        flush=True,
    )
    return result


def _rss(process: psutil.Process) -> float:
    return float(process.memory_info().rss)


async def run(args: argparse.Namespace) -> list[Measured]:
    raise_fd_limit()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kubepulse-vs-") as tmp:
        workdir = Path(tmp)
        sim = start_shaped_simulator(args, workdir)
        try:
            async with aiohttp.ClientSession() as session:
                for name in args.scrapers.split(","):
                    await measure_one(
                        name,
                        sim,
                        workdir,
                        args.resolution,
                        args.warmup,
                        args.intervals,
                        session,
                        results,
                    )
        except BaseException:
            args.partial = results
            raise
        finally:
            stop(sim.process)
    args.shape_name = sim.info.get("shape")
    args.answer_bytes = sim.info.get("answer_bytes")
    return list(results.values())


def report(results: list[Measured], args: argparse.Namespace) -> bool:
    """Print the table; True when kubepulse is ahead of both."""
    print(
        f"{args.nodes} simulated kubelets (shape {getattr(args, 'shape_name', args.shape)}, "
        f"{getattr(args, 'answer_bytes', '?')} bytes an answer), TLS, bearer token, "
        f"scraped every {args.resolution:g}s; {args.intervals} intervals measured after "
        f"{args.warmup} of warm-up; CPU of the process and its children"
    )
    header = ("scraper", "CPU/node-scrape", "scrapes", "RSS steady", "RSS peak", "MiB/node")
    rows = [
        (
            r.scraper,
            f"{r.cpu_ms_per_scrape:.3f} ms",
            str(r.scrapes),
            f"{r.rss_steady / MIB:.0f} MiB",
            f"{r.rss_peak / MIB:.0f} MiB",
            f"{r.mib_per_node:.3f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    by_name = {r.scraper: r for r in results}
    ours = by_name.get("kubepulse")
    ahead = True
    if ours is None:
        return False
    for other, what in (("prometheus", "cpu"), ("victoria-metrics", "rss")):
        theirs = by_name.get(other)
        if theirs is None:
            continue
        cpu = ours.cpu_ms_per_scrape / theirs.cpu_ms_per_scrape
        rss = ours.rss_steady / theirs.rss_steady
        print(f"kubepulse / {other}: CPU per node-scrape {cpu:.2f} x, steady RSS {rss:.2f} x")
        ahead = ahead and (cpu <= 1.0 if what == "cpu" else rss <= 1.0)
    judged = "prometheus" in by_name and "victoria-metrics" in by_name
    verdict = ("met" if ahead else "NOT met") if judged else "not judged (a scraper left out)"
    print(f"goal (CPU per node-scrape <= Prometheus's, RSS <= VictoriaMetrics's): {verdict}")
    return ahead and judged


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="kubepulse server, prometheus, victoria-metrics")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--shape", default="kubelet", help="bench.sim.kubelets --shape")
    p.add_argument("--resolution", type=float, default=RESOLUTION_S, help="seconds")
    p.add_argument("--warmup", type=int, default=WARMUP_INTERVALS, help="intervals")
    p.add_argument("--intervals", type=int, default=MEASURED_INTERVALS, help="measured")
    p.add_argument("--scrapers", default=",".join(SCRAPERS))
    add_kubelet_port_flag(p)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    per_scraper = 120 + args.nodes * 0.4 + args.resolution * (args.warmup + args.intervals + 5)
    budget = 60 + 0.05 * args.nodes + per_scraper * len(args.scrapers.split(","))

    try:
        results = run_bounded(lambda: run(args), budget, "the whole benchmark within its budget")
    except BenchError as err:
        print(f"benchmark error: {err}", file=sys.stderr)
        partial = getattr(args, "partial", {})
        so_far = {
            name: {
                "cpu_ms_per_scrape": r.cpu_ms_per_scrape,
                "rss_steady_mib": r.rss_steady / MIB,
                "startup_s": r.startup_s,
            }
            for name, r in partial.items()
        }
        print(f"measured so far: {json.dumps(so_far)}", file=sys.stderr)
        return 2
    ahead = report(results, args)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                [
                    {
                        **asdict(r),
                        "cpu_ms_per_scrape": r.cpu_ms_per_scrape,
                        "rss_steady": r.rss_steady,
                        "mib_per_node": r.mib_per_node,
                    }
                    for r in results
                ],
                indent=1,
            )
        )
    return 0 if ahead else 1


if __name__ == "__main__":
    sys.exit(main())
