"""What one LIST of every pod's metrics costs the server at 5,000 nodes, alone.

    .venv/bin/python -m bench.list_pods                 # 5,000 nodes, 150,000 pods
    .venv/bin/python -m bench.list_pods --nodes 1000

bench.server_scale measures the LIST inside a running server, where on a 2-CPU machine
that cannot finish a 5,000-node scrape cycle in 5 s the LIST shares the CPU with the end
of a cycle. This measures the LIST by itself: the server's real metrics API (MetricsAPI
with its RenderedPods) over real TLS on 127.0.0.1, in this process, with its store
filled by the real decoder from the kubelet simulator's payloads (30 pods x 2 containers
a node) and its GC tuned as `kubepulse server` tunes it. curl, a separate process, is
the client. Before each measured LIST every node is scraped again (new counters), as an
HPA lists once per resolution, so no item can be reused from the LIST before:

- rendered as stored: the server has seen LISTs, so each node's items are rendered as its
  scrape is stored (what a running server does while clients list), and the LIST joins;
- rendered by the LIST: nobody listed in the last two resolutions, so the LIST renders
  every node itself.

Reported: the server's CPU seconds (process time of this process, curl excluded) and
curl's total time, median of --repeats, and the body size.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trustme
from aiohttp import web

from bench.sim import kubelets
from bench.sim.server_state import inventory, tune_like_the_server
from kubepulse.agent.resource_metrics import render
from kubepulse.api.metrics import MetricsAPI
from kubepulse.scrape.decode import decode_resource_metrics
from kubepulse.store.points import MetricsStore

RESOLUTION = 15.0
TARGET_S = 1.0


class Cluster:
    """The simulator's nodes, scraped into a store through the real decoder."""

    def __init__(self, nodes: int) -> None:
        self.sim = kubelets.build_cluster(nodes)
        self.inventory = inventory(self.sim, keep_raw=False)
        self.store = MetricsStore(RESOLUTION)
        self.api = MetricsAPI(self.store, self.inventory)
        self.now = time.time() - 10 * RESOLUTION

    def scrape(self, tell: bool = True) -> None:
        """One resolution later: every node decoded and stored and, when `tell`, told to
        the RenderedPods as the scrape manager tells it."""
        self.now += RESOLUTION
        for node in self.sim.nodes:
            stats = kubelets.node_stats(node, self.now, self.sim.epoch)
            sample, pods = decode_resource_metrics(render(stats).encode(), node.name, self.now)
            self.store.store(node.name, sample, pods)
            if tell:
                self.api.rendered.node_stored(node.name)


async def curl(url: str, ca: Path) -> tuple[int, float]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sf", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
        "--cacert", str(ca), url,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"curl {url} failed with exit code {proc.returncode}")
    size, seconds = out.decode().split()
    return int(size), float(seconds)


async def measure(nodes: int, repeats: int) -> int:
    print(f"[{nodes}] filling the store", file=sys.stderr, flush=True)
    cluster = Cluster(nodes)
    tune_like_the_server()
    cluster.scrape()
    cluster.scrape()
    gc.collect()
    gc.freeze()  # as kubepulse server does once its targets are loaded
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    app = web.Application()
    app.add_routes(cluster.api.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=ctx).start()
    url = f"https://127.0.0.1:{port}/apis/metrics.k8s.io/v1beta1/pods"
    results: dict[str, list[tuple[float, float]]] = {
        "rendered as stored": [],
        "rendered by the LIST": [],
    }
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        await curl(url, ca_file)  # the first LIST: each pod's own part, once
        for _ in range(repeats):
            for label in results:
                cluster.scrape(tell=label == "rendered as stored")
                cpu0 = time.process_time()
                size, seconds = await curl(url, ca_file)
                results[label].append((time.process_time() - cpu0, seconds))
                await curl(url, ca_file)  # and clients list again
    await runner.cleanup()
    pods = nodes * kubelets.PODS
    print(f"LIST of {pods:,} pod metrics ({nodes:,} nodes), body {size / 2**20:.1f} MiB, "
          f"median of {repeats}; python {sys.version.split()[0]}")  # fmt: skip
    for label, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(
            f"  {label:22} server CPU {cpu:.2f}s, answered in {wall:.2f}s "
            f"(range {min(r[1] for r in runs):.2f}-{max(r[1] for r in runs):.2f}s)"
        )
    stored = statistics.median(r[1] for r in results["rendered as stored"])
    verdict = "PASS" if stored < TARGET_S else "FAIL"
    print(f"target LIST < {TARGET_S:g} s, rendered as stored: {verdict} ({stored:.2f}s)")
    return 0 if stored < TARGET_S else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    return asyncio.run(measure(args.nodes, args.repeats))


if __name__ == "__main__":
    sys.exit(main())
