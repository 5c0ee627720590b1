"""Where the server's memory goes: `kubepulse server` in this process, censused.

The kubelet simulator (bench.sim.kubelets, any --shape) runs as a child process; the
server runs here, in-process, from the same flags as `kubepulse server` (as
bench.sim.process.server_command gives them), so that its heap can be looked at. After
a warm-up, once per resolution, it records:

- RSS (VmRSS, /proc/self/status) and the kernel's peak (VmHWM);
- glibc malloc's own view (mallinfo2): heap bytes from brk (arena), in use (uordblks)
  and free but kept (fordblks), and blocks mapped with mmap (hblkhd);
- pymalloc's arenas (sys._debugmallocstats): how much of the heap Python's small-object
  allocator holds;
- the live Python objects by type (gc.get_objects(), containers only) and, with
  --tracemalloc, the bytes Python allocated by the line that allocated them.

The difference between RSS and what Python holds live is what the allocators keep: the
question the census answers.

Run from the repository root:
    .venv/bin/python -m bench.memory_census --nodes 100 --shape kubelet+unique+big
    MALLOC_ARENA_MAX=2 .venv/bin/python -m bench.memory_census --nodes 1000
Exit status 0, or 2 when a deadline passed or the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import gc
import json
import os
import re
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.sim.process import (
    BenchError,
    add_kubelet_port_flag,
    free_port,
    raise_fd_limit,
    run_bounded,
    server_command,
    start_shaped_simulator,
    stop,
)

MIB = 2**20


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mallinfo() -> dict[str, int]:
    """glibc's malloc statistics of the main arena and every other (mallinfo2)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return {}
    info = libc.mallinfo2()
    return {name: int(getattr(info, name)) for name, _ in MallInfo2._fields_}


def proc_status() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            number = int(value.split()[0])
            found[key] = number * 1024 if "kB" in value else number
    return found


def pymalloc_arenas() -> dict[str, int]:
    """pymalloc's arenas now and at most, from sys._debugmallocstats (written to fd 2)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    found: dict[str, int] = {}
    for key, pattern in (
        ("arenas_current", r"# arenas allocated current\s*=\s*([\d,]+)"),
        ("arenas_highwater", r"# arenas highwater mark\s*=\s*([\d,]+)"),
        ("arena_bytes", r"bytes/arena\s*=\s*([\d,]+)"),
        ("bytes_in_blocks", r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
        ("bytes_in_free_blocks", r"# bytes in available blocks\s*=\s*([\d,]+)"),
    ):
        match = re.search(pattern, text)
        if match:
            found[key] = int(match.group(1).replace(",", ""))
    arena_size = re.search(r"(\d[\d,]*) arenas \* (\d[\d,]*) bytes/arena", text)
    if arena_size:
        found["arena_size"] = int(arena_size.group(2).replace(",", ""))
    return found


def cyclic_garbage(top: int = 12) -> dict[str, Any]:
    """What a full collection finds unreachable now: garbage that only the cycle
    collector frees (kept meanwhile, with everything it refers to)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
        held = sum(len(o) for o in gc.garbage if isinstance(o, bytes | bytearray | str))
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    return {"objects": found, "kinds": dict(kinds.most_common(top)), "text_bytes": held}


def census(top: int = 12, traced: bool = False) -> dict[str, Any]:
    garbage = cyclic_garbage(top)
    kinds = collections.Counter(type(o).__name__ for o in gc.get_objects())
    status = proc_status()
    data: dict[str, Any] = {
        "rss_mib": round(status.get("VmRSS", 0) / MIB, 1),
        "hwm_mib": round(status.get("VmHWM", 0) / MIB, 1),
        "threads": status.get("Threads"),
        "objects": dict(kinds.most_common(top)),
        "gc_objects": sum(kinds.values()),
        "cyclic_garbage": garbage,
        "gc_counts": gc.get_count(),
    }
    info = mallinfo()
    if info:
        data["malloc_mib"] = {
            "heap (brk)": round(info["arena"] / MIB, 1),
            "in use": round(info["uordblks"] / MIB, 1),
            "free, kept": round(info["fordblks"] / MIB, 1),
            "mmapped": round(info["hblkhd"] / MIB, 1),
            "mmap blocks": info["hblks"],
        }
    arenas = pymalloc_arenas()
    if arenas:
        size = arenas.get("arena_size", 1 << 20)
        data["pymalloc_mib"] = {
            "arenas": round(arenas.get("arenas_current", 0) * size / MIB, 1),
            "arenas at most": round(arenas.get("arenas_highwater", 0) * size / MIB, 1),
            "in blocks used": round(arenas.get("bytes_in_blocks", 0) / MIB, 1),
            "in free blocks": round(arenas.get("bytes_in_free_blocks", 0) / MIB, 1),
        }
    if traced and tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        stats = snapshot.statistics("lineno")
        data["traced_mib"] = round(sum(s.size for s in stats) / MIB, 1)
        data["traced_top"] = [
            f"{s.size / MIB:.1f} MiB {s.count} {s.traceback[0].filename.split('/src/')[-1]}:"
            f"{s.traceback[0].lineno}"
            for s in stats[:top]
        ]
    return data


async def run(args: argparse.Namespace) -> int:
    from kubepulse.cli import server as server_cli
    from kubepulse.server import run as server_run

    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="kubepulse-census-") as tmp:
        workdir = Path(tmp)
        sim = start_shaped_simulator(args, workdir)
        token = os.urandom(16).hex()
        (workdir / "tokens.csv").write_text(f'{token},bench,bench,"system:masters"\n')
        command = server_command(sim, workdir, free_port(), args.resolution)
        parser = argparse.ArgumentParser()
        server_cli.add_arguments(parser)
        config = server_cli.config(parser.parse_args([*command[2:], *args.server_flag]))
        if args.tracemalloc:
            tracemalloc.start(1)
        server = asyncio.create_task(server_run.run(config))
        samples: list[dict[str, Any]] = []
        try:
            await asyncio.sleep(args.resolution * args.warmup)
            for cycle in range(args.cycles):
                if server.done():
                    raise BenchError(f"the server stopped: {server.exception()!r}")
                started = time.monotonic()
                sample = census(traced=args.tracemalloc)
                sample["cycle"] = cycle
                sample["census_s"] = round(time.monotonic() - started, 2)
                samples.append(sample)
                print(json.dumps(sample), file=sys.stderr, flush=True)
                await asyncio.sleep(max(0.0, args.resolution - (time.monotonic() - started)))
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(30):
                    await server
            stop(sim.process)
    rss = sorted(s["rss_mib"] for s in samples)
    result = {
        "nodes": args.nodes,
        "shape": sim.info.get("shape"),
        "answer_bytes": sim.info.get("answer_bytes"),
        "env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "rss_median_mib": rss[len(rss) // 2] if rss else None,
        "rss_mib_per_node": round(rss[len(rss) // 2] / args.nodes, 3) if rss else None,
        "last": samples[-1] if samples else None,
    }
    print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps({"result": result, "samples": samples}, indent=1))
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="census of the server's memory, in-process")
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--shape", default="sim")
    p.add_argument("--resolution", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=3.0, help="resolutions before the first")
    p.add_argument("--cycles", type=int, default=3, help="censuses, one per resolution")
    p.add_argument("--tracemalloc", action="store_true")
    p.add_argument("--server-flag", action="append", default=[])
    add_kubelet_port_flag(p)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    budget = args.resolution * (args.warmup + args.cycles + 2) + 120 + 0.5 * args.nodes

    try:
        return run_bounded(lambda: run(args), budget, "the census within its budget")
    except BenchError as err:
        print(f"benchmark error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
