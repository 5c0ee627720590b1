"""How many bytes the history keeps per value, and how fast charts read it back.

    .venv/bin/python -m bench.history_density --nodes 1000 --hours 24
    .venv/bin/python -m bench.history_density --nodes 40 --days 30 --replicate 25
    .venv/bin/python -m bench.history_density --nodes 10 --hours 2 --prometheus

A simulated cluster (bench.sim.history_data: 30 pods x 2 containers a node, with the noise
of real containers) is scraped every 15 s on a controlled clock (nothing waits for it)
and recorded through a real History (its writer thread, SQLite file, default tiers:
raw 1 h, 1-minute 24 h, 15-minute 30 days). Then, per tier: samples or buckets kept,
their compressed bytes, and bytes per stored value, counted as Prometheus counts
samples: a raw sample holds two values (CPU, memory), a bucket four (average and
maximum of each; its count of samples is kept too, and not counted). And the file's
size, and the time to read a chart's series (random series, the reading thread's own
connection, as the dashboard does).

--replicate R copies the file's series, layouts and chunks R times (the same bytes under
new names, as R times the nodes would write them), so that reads are timed in a file of
nodes x R nodes' size, each series in one layout as the writer keeps it.
--prometheus writes the same samples (CPU as the counter kubelets expose,
memory as the gauge) as OpenMetrics and has Debian's `promtool tsdb
create-blocks-from openmetrics` build a Prometheus TSDB of them: its bytes per sample,
measured side by side.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.sim.history_data import Cluster
from kubepulse.history.file import History
from kubepulse.history.tiers import DEFAULT_TIERS

T0_MS = 1_700_006_400_000  # a whole day since the epoch
INTERVAL_MS = 15_000
MIB = 1 << 20
PROMTOOL = shutil.which("promtool")


def simulate(path: Path, nodes: int, seconds: int) -> tuple[int, list[float]]:
    """Record `seconds` of scrapes of `nodes` nodes; returns the newest timestamp (ms)
    and the writer's time per scrape (queueing to flushed)."""
    cluster = Cluster(nodes)
    history = History(path, queue_batches=nodes + 2, linger=0)
    per_scrape: list[float] = []
    scrapes = seconds * 1000 // INTERVAL_MS
    at = T0_MS
    begun = time.perf_counter()
    for s in range(scrapes):
        at = T0_MS + s * INTERVAL_MS
        batches = list(cluster.scrape(at))
        start = time.perf_counter()
        for batch in batches:
            history.record_batch(batch)
        history.commit_soon()
        if not history.flush(timeout=600):
            raise SystemExit("the writer did not finish a scrape in 600 s")
        per_scrape.append(time.perf_counter() - start)
        if (s + 1) % max(1, scrapes // 20) == 0:
            hours = (s + 1) * INTERVAL_MS / 3_600_000
            print(
                f"  {hours:7.1f} simulated hours, {time.perf_counter() - begun:7.0f} s,"
                f" writer {1000 * statistics.median(per_scrape[-100:]):.1f} ms a scrape",
                flush=True,
            )
    history.close()
    return at, per_scrape


def report_tiers(path: Path) -> dict[str, float]:
    history = History(path)
    stats = history.stats()
    history.close()
    values = {"raw": 2, "1m": 4, "15m": 4}
    total_values = 0
    print("| tier | samples or buckets | compressed bytes | bytes a value |")
    print("|---|---|---|---|")
    for tier in DEFAULT_TIERS:
        rows, size = stats.rows[tier.label], stats.payload_bytes[tier.label]
        n = rows * values[tier.label]
        total_values += n
        per = size / n if n else float("nan")
        print(f"| {tier.label} | {rows:,} | {size / MIB:,.1f} MiB | {per:.2f} |")
    whole = stats.db_bytes + stats.wal_bytes
    print(
        f"file: {whole / MIB:,.1f} MiB ({whole / max(1, total_values):.2f} bytes a value,"
        f" SQLite's pages and indexes included); {stats.series:,} series"
    )
    return {
        "file": whole,
        **{f"{t.label} bytes": stats.payload_bytes[t.label] for t in DEFAULT_TIERS},
    }


def replicate(path: Path, copies: int) -> Path:
    """A copy of the file with its series, layouts and chunks `copies` times: copy c's
    series are the originals named `<name>~c`, in layouts of their own holding the same
    chunks (the same bytes, as `copies` times the nodes would write them)."""
    out = path.with_name(f"replicated-{copies}.db")
    shutil.copy(path, out)
    conn = sqlite3.connect(out, isolation_level=None)
    try:
        series = conn.execute(
            "SELECT id, kind, namespace, name, container, last_ms FROM series"
        ).fetchall()
        layouts = conn.execute("SELECT id, ids FROM layouts").fetchall()
        top_series = max(row[0] for row in series)
        top_layout = max(i for i, _ in layouts)
        for copy in range(1, copies):
            shift = copy * top_series
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO series (id, kind, namespace, name, container, last_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (sid + shift, k, ns, f"{name}~{copy}", c, ms)
                    for sid, k, ns, name, c, ms in series
                ],
            )
            for layout, ids in layouts:
                new = layout + copy * top_layout
                moved = np.frombuffer(ids, np.int64) + shift
                conn.execute("INSERT INTO layouts VALUES (?, ?)", (new, moved.tobytes()))
                conn.executemany(
                    "INSERT OR IGNORE INTO layout_series VALUES (?, ?)",
                    [(int(sid), new) for sid in moved],
                )
                conn.execute(
                    "INSERT INTO chunks (width, layout, start_ms, end_ms, through_ms, count,"
                    " rows, small, payload) SELECT width, ?, start_ms, end_ms, through_ms,"
                    " count, rows, small, payload FROM chunks WHERE layout = ?",
                    (new, layout),
                )
            conn.execute("COMMIT")
    finally:
        conn.close()
    return out


def time_reads(path: Path, newest_ms: int, series: int = 60) -> None:
    """Chart reads of random series: the dashboard's 24 h (step 15 m), 24 h at the 1m
    tier's full resolution, and 30 days at 4 h steps."""
    history = History(path)
    conn = sqlite3.connect(path)
    keys = conn.execute(
        "SELECT kind, namespace, name, container FROM series ORDER BY random() LIMIT ?", (series,)
    ).fetchall()
    conn.close()
    end = newest_ms / 1000
    cases = [("24 h, step 15 m", 86400, 900), ("24 h, step 1 m", 86400, 60)]
    if end - T0_MS / 1000 > 3 * 86400:
        cases.append(("30 d, step 4 h", 30 * 86400, 14400))
    print("| read | points | median | p95 | max |")
    print("|---|---|---|---|---|")
    for label, seconds, step in cases:
        times, points = [], []
        for key in keys:
            begun = time.perf_counter()
            found = history.query(*key, end - seconds, end, step)
            times.append(time.perf_counter() - begun)
            points.append(len(found))
        times.sort()
        print(
            f"| {label} | {statistics.median(points):.0f} |"
            f" {1000 * statistics.median(times):.1f} ms |"
            f" {1000 * times[int(0.95 * (len(times) - 1))]:.1f} ms | {1000 * times[-1]:.1f} ms |"
        )
    history.close()


def prometheus(tmp: Path, nodes: int, seconds: int) -> None:
    """The same samples in a Prometheus TSDB (promtool): bytes per sample."""
    if PROMTOOL is None:
        print("promtool not found (Debian's prometheus package): no comparison")
        return
    cluster = Cluster(nodes)
    text = tmp / "samples.om"
    counters = None
    samples = 0
    with text.open("w") as out:
        for s in range(seconds * 1000 // INTERVAL_MS):
            at = T0_MS + s * INTERVAL_MS
            batches = list(cluster.scrape(at))
            if counters is None:
                counters = [np.zeros(len(b.keys)) for b in batches]
                last = [np.zeros(len(b.keys)) for b in batches]
            for batch, counter, seen in zip(batches, counters, last, strict=True):
                counter += np.asarray(batch.cpu) / 1e9 * INTERVAL_MS / 1000
                rows = zip(batch.keys, batch.ts, counter, batch.mem, seen, strict=True)
                for (kind, ns, name, container), ts, cpu, mem, before in rows:
                    if ts <= before:  # not refreshed since the last scrape: not new
                        continue
                    labels = f'kind="{kind}",namespace="{ns}",name="{name}",container="{container}"'
                    out.write(f"cpu_usage_seconds_total{{{labels}}} {cpu:.9g} {ts:.3f}\n")
                    out.write(f"memory_working_set_bytes{{{labels}}} {int(mem)} {ts:.3f}\n")
                    samples += 2
                seen[:] = np.maximum(seen, batch.ts)
        out.write("# EOF\n")
    # OpenMetrics wants each metric family's samples together: sort by name, then time.
    lines = text.read_text().splitlines()
    body = sorted(lines[:-1], key=lambda line: (line.split("{", 1)[0], line.split("}", 1)[0]))
    cpu = [line for line in body if line.startswith("cpu")]
    memory = [line for line in body if line.startswith("memory")]
    text.write_text(
        "\n".join(
            [
                "# TYPE cpu_usage_seconds counter",
                *cpu,
                "# TYPE memory_working_set_bytes gauge",
                *memory,
                "# EOF",
            ]
        )
        + "\n"
    )
    blocks = tmp / "tsdb"
    made = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(text), str(blocks)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if made.returncode != 0:
        raise SystemExit(f"promtool failed: {made.stderr.strip()[-500:]}")
    chunk_bytes = sum(f.stat().st_size for f in blocks.rglob("chunks/*"))
    index_bytes = sum(f.stat().st_size for f in blocks.rglob("index"))
    print(
        f"Prometheus TSDB (promtool, {samples:,} samples of {nodes} nodes):"
        f" chunks {chunk_bytes / samples:.2f} bytes a sample,"
        f" with the index {(chunk_bytes + index_bytes) / samples:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    span = parser.add_mutually_exclusive_group()
    span.add_argument("--hours", type=float)
    span.add_argument("--days", type=float)
    parser.add_argument("--replicate", type=int, default=1, help="copies, for read timing")
    parser.add_argument("--prometheus", action="store_true", help="and promtool's TSDB")
    parser.add_argument("--keep", type=Path, help="write the file here and keep it")
    args = parser.parse_args()
    seconds = int((args.days or 0) * 86400 + (args.hours or (0 if args.days else 24)) * 3600)
    tmp = Path(tempfile.mkdtemp(prefix="kubepulse-density-"))
    path = args.keep or tmp / "history.db"
    print(
        f"{args.nodes} nodes x 30 pods x 2 containers, {seconds / 3600:g} simulated hours;"
        f" {platform.python_version()}, {os.cpu_count()} CPUs; {path}"
    )
    try:
        begun = time.perf_counter()
        newest, per_scrape = simulate(path, args.nodes, seconds)
        print(
            f"simulated in {time.perf_counter() - begun:.0f} s; writer per scrape: median"
            f" {1000 * statistics.median(per_scrape):.1f} ms,"
            f" p95 {1000 * sorted(per_scrape)[int(0.95 * (len(per_scrape) - 1))]:.1f} ms"
        )
        report_tiers(path)
        read_path = replicate(path, args.replicate) if args.replicate > 1 else path
        if args.replicate > 1:
            size = read_path.stat().st_size
            print(f"replicated x{args.replicate}: {size / MIB:,.0f} MiB, reads timed in it")
        random.seed(1)
        time_reads(read_path, newest)
        if args.prometheus:
            prometheus(tmp, args.nodes, min(seconds, 7200))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
