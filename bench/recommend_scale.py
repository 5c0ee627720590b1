"""Benchmark: `kubepulse recommend` over 150,000 containers' 14 days of the 15-minute tier.

Target (the right-sizing issue): under 10 s and under 500 MiB.

How:
1. bench.history_density.simulate records --days of 15 s scrapes of --nodes simulated
   nodes (30 pods x 2 containers each, with the noise of real containers) through a real
   History on a controlled clock; the 15-minute tier gets 96 buckets a day and series.
2. bench.history_density.replicate copies its series, layouts and chunks --replicate
   times (the same bytes under new pod names, as that many times the nodes would write
   them): 1 node x 60 containers x 2,500 copies = 150,000 containers.
3. The real command, `python -m kubepulse recommend --history FILE -A -o json` (host mode:
   no cluster), is run as a user runs it; its wall time and its peak resident memory
   (getrusage of the child) are measured, and its answer checked: one item a container,
   each with a recommendation from 14 days of points.

Run from the repository root:
    .venv/bin/python -m bench.recommend_scale
    .venv/bin/python -m bench.recommend_scale --days 2 --replicate 100

Exit status: 0 when both targets are met, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.history_density import replicate, simulate

TARGET_SECONDS = 10.0
TARGET_MIB = 500.0
CONTAINERS_A_NODE = 60


def run_recommend(path: Path, days: float, strategy: str) -> tuple[float, float, dict[str, object]]:
    """Wall seconds, peak RSS in MiB, and the JSON answer of one run."""
    env = {**os.environ, "KUBECONFIG": str(path.with_name("no-kubeconfig"))}
    args = [sys.executable, "-m", "kubepulse", "recommend", "--history", str(path), "-A"]
    args += ["-o", "json", "--history-duration", f"{days:g}d", "--strategy", strategy]
    begun = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    seconds = time.perf_counter() - begun
    if done.returncode != 0:
        raise SystemExit(f"recommend failed: {done.stderr.strip()}")
    # Linux reports ru_maxrss in KiB; RUSAGE_CHILDREN: the largest child waited for.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--replicate", type=int, default=2500)
    parser.add_argument("--strategy", choices=("simple", "vpa"), default="simple")
    parser.add_argument("--keep", type=Path, help="write the file here and keep it")
    args = parser.parse_args()
    containers = args.nodes * CONTAINERS_A_NODE * args.replicate
    tmp = Path(tempfile.mkdtemp(prefix="kubepulse-recommend-"))
    path = args.keep or tmp / "history.db"
    print(
        f"{containers:,} containers, {args.days:g} days; {platform.python_version()},"
        f" {os.cpu_count()} CPUs; {path}",
        flush=True,
    )
    try:
        begun = time.perf_counter()
        if not path.exists():
            simulate(path, args.nodes, int(args.days * 86400))
        read_path = replicate(path, args.replicate) if args.replicate > 1 else path
        print(
            f"history of {read_path.stat().st_size / (1 << 20):,.0f} MiB made in"
            f" {time.perf_counter() - begun:.0f} s",
            flush=True,
        )
        seconds, peak, answer = run_recommend(read_path, args.days, args.strategy)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    items = answer["items"]
    assert isinstance(items, list)
    answered = [i for i in items if i["recommended"] is not None]
    points = sorted(i["usage"]["points"] for i in answered)
    print("| containers | answered | points a container (median) | time | peak RSS |")
    print("|---|---|---|---|---|")
    median = points[len(points) // 2] if points else 0
    print(f"| {len(items):,} | {len(answered):,} | {median:,} | {seconds:.1f} s | {peak:.0f} MiB |")
    met = len(items) == containers and seconds < TARGET_SECONDS and peak < TARGET_MIB
    print(f"targets (< {TARGET_SECONDS:g} s, < {TARGET_MIB:g} MiB): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
