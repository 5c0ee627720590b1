"""The server's memory against a kubelet fleet written apart from bench/sim/kubelets.

bench.sim.independent_fleet was written without reading this project's simulator (a
cross-check of the shapes that simulator sends): asyncio TLS kubelets, each on its own
127.1.x.y address with its own serving certificate, answering as a kubelet 1.30 (real
HELP texts, millisecond timestamps, Go float formatting, chunked, 30 pods x 2
containers with names unique across the cluster). This runs it, starts `kubepulse
server` against it as a user would (extra flags after --), waits until every node is
served, warms up 2 cycles, then reads VmRSS every 0.25 s and CPU time over --cycles
cycles.

    .venv/bin/python -m bench.fleet_memory --nodes 1000
    .venv/bin/python -m bench.fleet_memory --nodes 1000 -- --history-file /tmp/h.db

Exit status 0, or 2 when a deadline passed (it says which, with what was measured).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.sim.process import BenchError, free_port, log_tail, raise_fd_limit, stop

RESOLUTION = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError("the server has no VmRSS: it exited")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def get(port: int, token: str, ca: Path, path: str) -> Any:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False  # the server's own certificate names its host, not 127.0.0.1
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, context=ctx, timeout=60) as answer:
        return json.loads(answer.read())


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    fleet_py = [sys.executable, "-m", "bench.sim.independent_fleet"]
    subprocess.run([*fleet_py, "gen", "--nodes", str(args.nodes), "--dir", str(work)], check=True)
    fleet_log = (work / "fleet.log").open("wb")
    fleet = subprocess.Popen(
        [*fleet_py, "serve", "--nodes", str(args.nodes), "--dir", str(work)],
        stdout=fleet_log,
        stderr=subprocess.STDOUT,
    )
    port = free_port()
    token = (work / "tokens.csv").read_text().split(",")[0]
    command = [
        sys.executable, "-m", "kubepulse", "server",
        "--targets", str(work / f"nodes-{args.nodes}.json"),
        "--secure-port", str(port), "--bind-address", "127.0.0.1",
        "--kubelet-certificate-authority", str(work / "pki" / "ca.crt"),
        "--kubelet-token-file", str(work / "kubelet-token"),
        "--cert-dir", str(work / "server-pki"),
        "--token-auth-file", str(work / "tokens.csv"),
        "--metric-resolution", f"{RESOLUTION:g}s",
        *args.server_flags,
    ]  # fmt: skip
    server_log = work / "server.log"
    with server_log.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    found: dict[str, Any] = {"nodes": args.nodes, "server_flags": args.server_flags}
    try:
        ca = work / "server-pki" / "ca.crt"
        deadline = time.monotonic() + args.ready_deadline
        served = 0
        while served < args.nodes:
            if server.poll() is not None:
                raise BenchError(f"server exited {server.returncode}:\n{log_tail(server_log)}")
            if fleet.poll() is not None:
                raise BenchError(
                    f"fleet exited {fleet.returncode}:\n{log_tail(work / 'fleet.log')}"
                )
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{served} of {args.nodes} nodes served after {args.ready_deadline:g} s"
                )
            time.sleep(2)
            try:
                served = len(get(port, token, ca, "/apis/metrics.k8s.io/v1beta1/nodes")["items"])
            except OSError:
                served = 0  # not serving yet
        time.sleep(2 * RESOLUTION)  # warm-up
        rss: list[float] = []
        cpu0, start = cpu_seconds(server.pid), time.monotonic()
        end = start + args.cycles * RESOLUTION
        while (now := time.monotonic()) < end:
            rss.append(rss_mib(server.pid))
            time.sleep(min(0.25, end - now))
        cpu = cpu_seconds(server.pid) - cpu0
        pods = get(port, token, ca, "/apis/metrics.k8s.io/v1beta1/pods")["items"]
        found |= {
            "pods_served": len(pods),
            "steady_rss_mib": round(statistics.median(rss), 1),
            "peak_rss_mib": round(max(rss), 1),
            "mib_per_node": round(statistics.median(rss) / args.nodes, 3),
            "cpu_s_per_cycle": round(cpu / args.cycles, 2),
            "load_average": os.getloadavg(),
        }
        return found
    finally:
        stop(server)
        stop(fleet)
        fleet_log.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--cycles", type=int, default=12, help="measured scrape cycles")
    p.add_argument("--ready-deadline", type=float, default=300.0, help="seconds")
    p.add_argument("server_flags", nargs="*", help="after --: more flags for the server")
    args = p.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="kubepulse-fleet-") as tmp:
        try:
            found = measure(args, Path(tmp))
        except (BenchError, subprocess.CalledProcessError) as err:
            print(f"benchmark error: {err}", file=sys.stderr)
            return 2
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
