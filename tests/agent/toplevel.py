"""Real process trees that are children of init, as a user's daemons and sessions are.

A launcher starts the tree in a new session and exits at once, so the kernel re-parents
the tree's root to PID 1 (or to the nearest subreaper). The test talks to the tree over
its stdin and stdout, which stay pipes to the test.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from kubepulse.agent.process_trees import ProcessTrees, Tree
from kubepulse.agent.procfs import CLOCK_TICKS, ProcFS
from kubepulse.agent.workloads import dns_label

LAUNCH = (
    "import subprocess, sys\n"
    "p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], start_new_session=True)\n"
    "print(p.pid, flush=True)\n"
)


class TopLevel:
    """One tree under init: its root's pid, and lines to and from it."""

    def __init__(self, code: str) -> None:
        self.launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.launcher.stdin is not None and self.launcher.stdout is not None
        self.stdin, self.stdout = self.launcher.stdin, self.launcher.stdout
        self._buffer = b""  # before the first read: the tree's first line may come with it
        self.pid = int(self.line(timeout=30))
        self.launcher.wait(timeout=30)

    def line(self, timeout: float) -> str:
        """The next line the tree writes; AssertionError if none within timeout."""
        line = self.poll_line(timeout)
        assert line is not None, f"no line from pid {self.pid} within {timeout} s"
        return line

    def poll_line(self, timeout: float) -> str | None:
        """The next line if one comes within timeout; None on a timeout or at its end."""
        deadline = time.monotonic() + timeout
        buffer = self._buffer
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.stdout], [], [], max(0.0, left))
            chunk = os.read(self.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                self._buffer = buffer
                return None
            buffer += chunk
        line, _, self._buffer = buffer.partition(b"\n")
        return line.decode()

    def send(self, text: str) -> None:
        self.stdin.write(text.encode() + b"\n")
        self.stdin.flush()

    def alive(self) -> bool:
        try:
            return ProcFS().process(self.pid).zombie is False
        except OSError:
            return False

    def ppid(self) -> int:
        return ProcFS().process(self.pid).ppid

    def stop(self, timeout: float = 30) -> None:
        """Close its input (the tree's code exits on EOF), then make sure it is gone."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            pidfd = None
        with contextlib.suppress(OSError):
            self.stdin.close()
        if pidfd is not None:
            # A pidfd turns readable when the process ends: wait on it, not on a timer.
            if not select.select([pidfd], [], [], timeout)[0]:
                os.kill(self.pid, signal.SIGKILL)
            os.close(pidfd)
        self.stdout.close()


class Readings:
    """ProcessTrees over the real /proc, read as the agent reads it."""

    def __init__(self, established_seconds: float = 60.0) -> None:
        self.proc = ProcFS()
        self.trees = ProcessTrees(self.proc, dns_label, established_seconds)
        self.cores = self.proc.cpu_count()

    def read(self) -> tuple[float, dict[int, Tree]]:
        """(seconds since boot, tree root pid -> tree)."""
        found = self.trees.read(lambda pid: False)
        return self.trees.uptime_ticks / CLOCK_TICKS, {t.root_pid: t for t in found}


def follow(
    readings: Readings, tree: TopLevel, every: float, limit: float
) -> tuple[str, list[tuple[float, int]]]:
    """Read every `every` seconds, telling the tree to go after the first reading,
    until the reading after it prints a line: that line, and (seconds since boot, the
    tree's counter in ns) of each reading."""
    counters: list[tuple[float, int]] = []
    line: str | None = None
    for i in paced(every, int(limit / every)):
        now, found = readings.read()
        counters.append((now, found[tree.pid].cpu_usage_core_nanoseconds))
        if i == 0:
            tree.send("go")
        elif line is not None:
            return line, counters
        line = tree.poll_line(timeout=0)
    raise AssertionError(f"pid {tree.pid} said nothing in {limit} s")


def rates(counters: list[tuple[float, int]]) -> list[float]:
    """Cores used between each two readings."""
    return [(c1 - c0) / 1e9 / (t1 - t0) for (t0, c0), (t1, c1) in itertools.pairwise(counters)]


def paced(interval: float, limit: int) -> Iterator[int]:
    """0, 1, ... limit-1, one every `interval` seconds: the agent's housekeeping rhythm.

    /proc counts CPU in 10 ms ticks, so readings must be as far apart as the agent's
    (a second): two readings 5 ms apart that straddle one tick would read two cores.
    This paces a sampler; it waits for nothing to happen.
    """
    start = time.monotonic()
    for i in range(limit):
        time.sleep(max(0.0, start + i * interval - time.monotonic()))
        yield i


def own_cpu_seconds(pid: int) -> float:
    process = ProcFS().process(pid)
    return process.own_cpu_ticks / CLOCK_TICKS
