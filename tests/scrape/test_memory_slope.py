"""The server's memory grows with the fleet no faster than linearly, for the worst shape.

Two real `kubepulse server` processes scrape one kubelet simulator (bench.sim.kubelets,
shape kubelet+unique+big: a kubelet's whole answer, chunked, no shared pod name prefix,
30 pods of 6 containers with long names, ~240 KB an answer) at once: one SMALL of its
nodes, the other all LARGE. After a few cycles, the steady RSS of each (the median of
samples over the last cycles) gives the memory added per added node. An independent
fleet once measured 0.77 MiB per node at 2,000 nodes, and 1.05 MiB per added node
between 1,000 and 2,000; the bound here is a fraction of that. (Measured on a 2-CPU VM:
0.167 MiB per added node; 0.213 before the server tuned malloc and shared its points'
floats.)
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.support import KUBEPULSE, free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
SHAPE = "kubelet+unique+big"
SMALL, LARGE = 50, 250
RESOLUTION_S = 3.0
CYCLES = 4
SLOPE_BOUND_MIB = 0.35
"""MiB of steady RSS per added node. 30 pods of 2 containers take ~0.13-0.18 MiB a node;
this shape has 180 containers a node, whose points and names take more, but memory that
grew faster than the fleet (0.77 MiB/node at 2,000 nodes, 1.05 MiB per added node above
1,000) is well above this."""

pytestmark = pytest.mark.timeout(120)


@contextmanager
def simulator(nodes: int, workdir: Path) -> Iterator[dict[str, object]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.sim.kubelets",
            f"--nodes={nodes}",
            f"--workdir={workdir}",
            f"--shape={SHAPE}",
            f"--port={port}",
            "--targets-format=json",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the simulator did not start within 60 s"
        line = proc.stdout.readline().decode()
        assert line.startswith("READY "), line
        yield json.loads(line[len("READY ") :])
    finally:
        stop_process(proc)


def subset(targets: Path, nodes: int, out: Path) -> Path:
    """The targets file with only the first `nodes` nodes and their pods."""
    items = json.loads(targets.read_text())["items"]
    names = {i["metadata"]["name"] for i in items if i["kind"] == "Node"}
    keep = sorted(names)[:nodes]
    kept = [
        i
        for i in items
        if (i["kind"] == "Node" and i["metadata"]["name"] in keep)
        or (i["kind"] == "Pod" and i["spec"]["nodeName"] in keep)
    ]
    out.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": kept}))
    return out


def server(info: dict[str, object], targets: Path, workdir: Path) -> subprocess.Popen[bytes]:
    workdir.mkdir()
    (workdir / "tokens.csv").write_text('t,bench,bench,"system:masters"\n')
    return subprocess.Popen(
        [
            *KUBEPULSE,
            "server",
            f"--targets={targets}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={workdir / 'pki'}",
            f"--metric-resolution={RESOLUTION_S:g}s",
            f"--kubelet-request-timeout={RESOLUTION_S * 0.8:g}s",
            f"--kubelet-certificate-authority={info['ca']}",
            f"--kubelet-token-file={info['token_file']}",
            f"--kubelet-port={info['port']}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "log").open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def answered(info: dict[str, object]) -> int:
    """Requests the simulated kubelets answered (with the right token) so far."""
    with urllib.request.urlopen(f"{info['control']}/stats", timeout=10) as resp:
        return int(json.loads(resp.read())["requests"])


@pytest.mark.e2e
def test_rss_grows_linearly_with_nodes(tmp_path: Path) -> None:
    with simulator(LARGE, tmp_path / "sim") as info:
        targets = Path(str(info["targets"]))
        small = subset(targets, SMALL, tmp_path / "small.json")
        servers = {
            SMALL: server(info, small, tmp_path / "server-small"),
            LARGE: server(info, targets, tmp_path / "server-large"),
        }
        try:
            # Start-up and warm-up (the first tick, the early second sample), then the
            # RSS of each every 0.5 s over CYCLES cycles.
            time.sleep(RESOLUTION_S * 2)
            samples: dict[int, list[int]] = {n: [] for n in servers}
            before = answered(info)
            end = time.monotonic() + RESOLUTION_S * CYCLES
            while time.monotonic() < end:
                for nodes, proc in servers.items():
                    assert proc.poll() is None, tmp_path / f"server-{nodes}" / "log"
                    samples[nodes].append(psutil.Process(proc.pid).memory_info().rss)
                time.sleep(0.5)
            # Both scraped every node every cycle (else the slope would mean nothing).
            scrapes = answered(info) - before
            assert scrapes >= (SMALL + LARGE) * (CYCLES - 1), f"{scrapes} scrapes answered"
        finally:
            for proc in servers.values():
                stop_process(proc)
    steady = {n: statistics.median(s) / 2**20 for n, s in samples.items()}
    slope = (steady[LARGE] - steady[SMALL]) / (LARGE - SMALL)
    assert slope < SLOPE_BOUND_MIB, (
        f"steady RSS {steady[SMALL]:.0f} MiB at {SMALL} nodes, {steady[LARGE]:.0f} MiB at "
        f"{LARGE}: {slope:.3f} MiB per added node (bound {SLOPE_BOUND_MIB})"
    )
