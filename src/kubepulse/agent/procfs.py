"""Read processes and host facts from /proc."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    ppid: int
    comm: str
    start_ticks: int
    """Clock ticks since boot: with the pid, it names a process across pid reuse."""
    start_time: float
    """Seconds since the epoch."""
    own_cpu_ticks: int
    """utime + stime: the process's own CPU, in clock ticks."""
    reaped_cpu_ticks: int
    """cutime + cstime: the CPU of the children it has waited for, in clock ticks."""
    rss_bytes: int
    kernel_thread: bool
    zombie: bool = False
    """Ended and not yet waited for by its parent (state Z)."""


class ProcFS:
    """A /proc tree; tests point it at a directory of their own."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = root
        self.boot_time = self._boot_time()

    def _boot_time(self) -> float:
        for line in (self.root / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
        raise OSError(f"no btime in {self.root}/stat")

    def pids(self) -> list[int]:
        return [int(name) for name in os.listdir(self.root) if name.isdigit()]

    def process(self, pid: int) -> Process:
        """Raises OSError (usually FileNotFoundError) when the process is gone."""
        raw = (self.root / str(pid) / "stat").read_bytes()
        # comm may hold spaces and parentheses: it ends at the last ')'.
        open_paren, close_paren = raw.index(b"("), raw.rindex(b")")
        fields = raw[close_paren + 2 :].split()
        # Field numbers from proc(5), counted from state (field 3) at index 0.
        flags = int(fields[6])
        start_ticks = int(fields[19])
        return Process(
            pid=pid,
            ppid=int(fields[1]),
            comm=raw[open_paren + 1 : close_paren].decode(errors="replace"),
            start_ticks=start_ticks,
            start_time=self.boot_time + start_ticks / CLOCK_TICKS,
            own_cpu_ticks=int(fields[11]) + int(fields[12]),
            reaped_cpu_ticks=int(fields[13]) + int(fields[14]),
            rss_bytes=int(fields[21]) * PAGE_SIZE,
            kernel_thread=bool(flags & 0x00200000),  # PF_KTHREAD
            zombie=fields[0] == b"Z",
        )

    def uptime_ticks(self) -> int:
        """Clock ticks since boot: the clock of start_ticks (proc(5), /proc/uptime)."""
        try:
            seconds = float((self.root / "uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            seconds = time.time() - self.boot_time
        return int(seconds * CLOCK_TICKS)

    def program(self, pid: int, comm: str) -> str:
        """The name a person knows the process by.

        comm is the base name of the file executed, which means nothing when that file
        was a memfd (runc and self-extracting tools: "memfd:...", or the fd number
        fexecve's /dev/fd/N leaves): then argv[0]'s first word names it, else comm.
        """
        try:
            exe = os.readlink(self.root / str(pid) / "exe")
        except OSError:
            exe = ""
        if not (comm.isdigit() or comm.startswith("memfd") or exe.startswith("/memfd:")):
            return comm
        try:
            argv0 = (self.root / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            argv0 = b""
        words = argv0.decode(errors="replace").split()
        name = os.path.basename(words[0]).strip("-:") if words else ""
        return name or comm

    def pss_bytes(self, pid: int) -> int | None:
        """Proportional set size: shared pages split among the processes that map them,
        so that summing it over processes counts each page once."""
        try:
            raw = (self.root / str(pid) / "smaps_rollup").read_bytes()
        except OSError:
            return None
        for line in raw.splitlines():
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
        return None

    def environ(self, pid: int) -> dict[str, str]:
        try:
            raw = (self.root / str(pid) / "environ").read_bytes()
        except OSError:
            return {}
        env: dict[str, str] = {}
        for item in raw.split(b"\0"):
            key, sep, value = item.partition(b"=")
            if sep:
                env[key.decode(errors="replace")] = value.decode(errors="replace")
        return env

    def in_root(self, pid: int, path: str) -> Path:
        """A path as the process sees it, through its mount namespace."""
        return self.root / str(pid) / "root" / path.lstrip("/")

    def meminfo(self) -> dict[str, int]:
        values: dict[str, int] = {}
        for line in (self.root / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                values[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
        return values

    def cpu_count(self) -> int:
        return sum(
            1
            for line in (self.root / "stat").read_text().splitlines()
            if line.startswith("cpu") and line[3:4].isdigit()
        )

    def max_pid(self) -> int | None:
        try:
            return int((self.root / "sys" / "kernel" / "pid_max").read_text())
        except (OSError, ValueError):
            return None

    def boot_id(self) -> str:
        try:
            return (self.root / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        except OSError:
            return f"btime-{self.boot_time:.0f}"
