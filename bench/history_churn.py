"""What the history writer keeps in memory under pod churn.

N nodes of 30 pods x 2 containers are recorded through a real HistoryWriter (default
tiers, a temporary file) on a controlled clock, one scrape a minute; every 5 minutes
one pod of each node is replaced by a new one (a Job, a rollout). At the end it prints
each simulated hour the series in the file, the series the writer holds in memory
(`_ids`, `_last`) and what tracemalloc finds allocated and still held in this process
(the writer's state: the scrapes' own lists are gone by then).

    .venv/bin/python -m bench.history_churn --nodes 200 --hours 3

No waits: the run is in this process and ends when the simulated hours are written.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from kubepulse.history.tiers import DEFAULT_TIERS
from kubepulse.history.writer import Batch, HistoryWriter

T0 = 1_700_000_040.0
PODS = 30
SCRAPE_EVERY = 60
REPLACE_EVERY = 5  # scrapes


def node_keys(n: int, generation: list[int]) -> tuple[tuple[str, str, str, str], ...]:
    pods = [(f"ns-{n % 7}", f"app-{n}-{i}-{generation[i]}") for i in range(PODS)]
    containers = [("container", ns, p, c) for ns, p in pods for c in ("app", "sidecar")]
    return (("node", "", f"node-{n}", ""), *containers, *(("pod", ns, p, "") for ns, p in pods))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--hours", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    generations = [[0] * PODS for _ in range(args.nodes)]
    replaced = 0
    with tempfile.TemporaryDirectory() as tmp:
        writer = HistoryWriter(Path(tmp) / "history.db", DEFAULT_TIERS)
        tracemalloc.start()
        started = time.perf_counter()
        print(
            "| hour | pods replaced | series in the file | series ids in memory |"
            " last timestamps in memory | held (tracemalloc) |"
        )
        print("|---|---|---|---|---|---|")
        per_hour = 3600 // SCRAPE_EVERY
        for s in range(1, args.hours * per_hour + 1):
            batches = []
            for n, generation in enumerate(generations):
                if s % REPLACE_EVERY == 0:
                    generation[s // REPLACE_EVERY % PODS] += 1
                    replaced += 1
                keys = node_keys(n, generation)
                t = T0 + s * SCRAPE_EVERY
                cpu = rng.integers(1_000_000, 500_000_000, len(keys)).tolist()
                mem = rng.integers(1 << 20, 1 << 30, len(keys)).tolist()
                batches.append(Batch(f"node-{n}", keys, [t] * len(keys), cpu, mem))
            writer.write(batches)
            del batches
            if s % per_hour == 0:
                (in_file,) = writer.conn.execute("SELECT count(*) FROM series").fetchone()
                held = tracemalloc.get_traced_memory()[0] / 2**20
                print(
                    f"| {s // per_hour} | {replaced:,} | {in_file:,} | {len(writer._ids):,} |"
                    f" {len(writer._last):,} | {held:.1f} MiB |",
                    flush=True,
                )
        tracemalloc.stop()
        live = args.nodes * (1 + 3 * PODS)
        print(
            f"{args.nodes} nodes ({live:,} live series), one scrape a minute, a pod of each"
            f" node replaced every {REPLACE_EVERY} minutes;"
            f" {time.perf_counter() - started:.0f} s"
        )
        writer.close()


if __name__ == "__main__":
    main()
