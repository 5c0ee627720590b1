"""How fast the history writes a cluster's scrapes, and how big the file gets.

    .venv/bin/python -m bench.history_write                       # 1,000 nodes, 1 h
    .venv/bin/python -m bench.history_write --nodes 100 --minutes 10

Each simulated scrape is what HistoryRecorder queues for every node (the node, its 30
pods and their 60 containers: 91 rows a node, 91,000 at 1,000 nodes), recorded node by
node as the scrape manager stores them, then flushed. Reported per scrape: the time the
event loop spends queueing (record() calls), and the time until the writer has committed
it; overall rows/s, and the file's size and rows per tier after the simulated time
(timestamps advance 15 s a scrape; nothing waits for the clock).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kubepulse.history.file import History
from kubepulse.history.writer import Row

T0 = 1_700_000_100.0
MIB = 1 << 20


def node_rows(node: int, pods: int, containers: int, ts: float, tick: int) -> list[Row]:
    name = f"node-{node:05d}"
    rows: list[Row] = [("node", "", name, "", ts, 2_000_000_000 + tick, 8192 * MIB)]
    for p in range(pods):
        ns, pod = f"ns-{p % 10}", f"{name}-pod-{p:02d}"
        for c in range(containers):
            cpu = 1_000_000 * (1 + (node + p + c + tick) % 500)
            rows.append(("container", ns, pod, f"c{c}", ts, cpu, (64 + c) * MIB))
        rows.append(("pod", ns, pod, "", ts, 1_000_000 * containers, 130 * MIB))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30, help="per node")
    parser.add_argument("--containers", type=int, default=2, help="per pod")
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated time")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between scrapes")
    parser.add_argument("--path", type=Path, help="the SQLite file (default: a temp dir)")
    args = parser.parse_args()
    path = args.path or Path(tempfile.mkdtemp(prefix="kubepulse-bench-")) / "history.db"
    scrapes = int(args.minutes * 60 / args.interval)
    # One scrape fits in the queue: this measures the disk, not drops.
    history = History(path, queue_batches=args.nodes + 1)
    per_scrape = args.nodes * (1 + args.pods * (1 + args.containers))
    print(f"{path}: {args.nodes} nodes x {args.pods} pods x {args.containers} containers,")
    print(f"{per_scrape:,} rows a scrape, {scrapes} scrapes ({args.minutes:g} simulated minutes)")
    queueing, committed = [], []
    begun = time.perf_counter()
    for tick in range(scrapes):
        ts = T0 + tick * args.interval
        batches = [node_rows(n, args.pods, args.containers, ts, tick) for n in range(args.nodes)]
        start = time.perf_counter()
        for rows in batches:
            history.record(rows)
        queued = time.perf_counter()
        history.flush()
        done = time.perf_counter()
        queueing.append(queued - start)
        committed.append(done - start)
        if tick in (0, scrapes - 1) or (tick + 1) % 40 == 0:
            print(f"  scrape {tick + 1:4d}: {1000 * (done - start):7.1f} ms to commit")
    elapsed = time.perf_counter() - begun
    history.close()
    history = History(path)  # reopened: what a restart finds
    stats = history.stats()
    history.close()
    rows_written = per_scrape * scrapes
    print(f"rows/s (writer, commit included): {rows_written / sum(committed):,.0f}")
    print(
        f"ms per scrape batch: median {1000 * statistics.median(committed):.1f},"
        f" p95 {1000 * sorted(committed)[int(0.95 * (len(committed) - 1))]:.1f},"
        f" max {1000 * max(committed):.1f}"
    )
    print(f"event loop ms per scrape (record calls): {1000 * statistics.median(queueing):.2f}")
    print(f"wall time {elapsed:.1f} s (building the rows included)")
    print(
        f"db size after {args.minutes:g} simulated minutes: {stats.db_bytes / MIB:,.1f} MiB"
        f" ({stats.db_bytes / max(1, sum(stats.rows.values())):.1f} bytes a row);"
        f" series {stats.series:,}; rows {stats.rows}; dropped {stats.dropped_rows}"
    )


if __name__ == "__main__":
    main()
