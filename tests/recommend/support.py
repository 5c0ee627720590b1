"""Histories written with the real writer (History), in data time: days in a second."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from kubepulse.history.file import History
from kubepulse.history.writer import Row

DAY = 86400.0
T0 = 19676 * DAY
"""A UTC midnight (so a whole number of 15 minutes and of half-lives since the epoch)."""
STEP = 900.0
"""One sample a 15-minute bucket: each point of the 15-minute tier is one sample."""
MIB = 1 << 20


def container_rows(
    namespace: str,
    pod: str,
    container: str,
    cpu_millicores: Sequence[float],
    memory_bytes: Sequence[int] | Callable[[int], int],
    start: float = T0,
    step: float = STEP,
) -> list[Row]:
    def memory(i: int) -> int:
        return memory_bytes(i) if callable(memory_bytes) else memory_bytes[i]

    return [
        ("container", namespace, pod, container, start + i * step, round(c * 1e6), memory(i))
        for i, c in enumerate(cpu_millicores)
    ]


def write_history(path: Path, rows: Sequence[Row]) -> Path:
    """Rows in time order, through the real writer, sealed by close()."""
    history = History(path)
    try:
        ordered = sorted(rows, key=lambda r: r[4])
        for i in range(0, len(ordered), 500):
            assert history.record(ordered[i : i + 500])
            assert history.flush(timeout=30)
    finally:
        history.close()
    return path


def recommend(*args: str) -> subprocess.CompletedProcess[str]:
    """`kubepulse recommend ARGS` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "kubepulse", "recommend", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
