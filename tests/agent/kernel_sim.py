"""A small model of how Linux accounts a process's CPU, for TreeCpu's tests.

What it keeps of the kernel's rules (kernel/exit.c):
- a process's own CPU (utime + stime) rises only while it runs;
- an exited process is a zombie until its parent waits for it; then its own and reaped
  CPU are added to the parent's reaped CPU (cutime + cstime), and its pid is free;
- the children of an exiting process go to the nearest living subreaper among its
  ancestors, else to init, which waits for every zombie child at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kubepulse.agent.tree_cpu import Key, Member

INIT = 1


@dataclass
class SimProcess:
    pid: int
    start: int
    ppid: int
    own: int = 0
    reaped: int = 0
    zombie: bool = False
    subreaper: bool = False

    @property
    def key(self) -> Key:
        return (self.pid, self.start)


@dataclass
class Kernel:
    cores: int = 2
    max_pid: int = 64
    """Small, so that pids are reused."""
    now: int = 1_000
    procs: dict[int, SimProcess] = field(default_factory=dict)
    burned: int = 0
    """Every tick of CPU any process has ever spent."""
    budget: int = 0
    init_waits_at_once: bool = True
    """CPU the cores have left to give since the clock last moved and nobody looked."""

    def __post_init__(self) -> None:
        self.procs[INIT] = SimProcess(INIT, 1, 0)

    def live(self) -> list[int]:
        return sorted(pid for pid, p in self.procs.items() if not p.zombie)

    def spawn(self, parent: int, subreaper: bool = False) -> int | None:
        if parent not in self.procs or self.procs[parent].zombie:
            return None
        free = [pid for pid in range(2, self.max_pid) if pid not in self.procs]
        if not free:
            return None
        pid = free[(self.now * 7 + parent) % len(free)]
        self.procs[pid] = SimProcess(pid, self.now, parent, subreaper=subreaper)
        return pid

    def start(self, parent: int, subreaper: bool = False) -> int:
        """spawn() that must succeed."""
        pid = self.spawn(parent, subreaper)
        assert pid is not None, f"no pid left for a child of {parent}"
        return pid

    def run(self, pid: int, ticks: int, reader: Callable[[], object], times: int) -> None:
        """`times` intervals of `ticks`, each with `pid` running flat out and a reading."""
        for _ in range(times):
            self.advance(ticks)
            self.burn(pid, ticks)
            reader()

    def advance(self, ticks: int) -> None:
        self.now += ticks
        self.budget += ticks * self.cores

    def burn(self, pid: int, ticks: int) -> int:
        process = self.procs.get(pid)
        if process is None or process.zombie or pid == INIT:
            return 0
        # One thread: never more than its age, nor more than the cores have left.
        ticks = max(0, min(ticks, self.budget, self.now - process.start - process.own))
        process.own += ticks
        self.budget -= ticks
        self.burned += ticks
        return ticks

    def exit(self, pid: int) -> None:
        process = self.procs.get(pid)
        if process is None or process.zombie or pid == INIT:
            return
        process.zombie = True
        for child in [p for p in self.procs.values() if p.ppid == pid]:
            child.ppid = self._new_parent(process)
        self._init_waits()

    def end(self, pid: int) -> None:
        """It exits and its parent waits for it."""
        self.exit(pid)
        self.reap(pid)

    def reap(self, pid: int) -> None:
        """The parent of `pid` waits for it, if it is a zombie."""
        process = self.procs.get(pid)
        if process is None or not process.zombie:
            return
        parent = self.procs[process.ppid]
        parent.reaped += process.own + process.reaped
        del self.procs[pid]

    def _new_parent(self, exiting: SimProcess) -> int:
        ancestor = self.procs.get(exiting.ppid)
        while ancestor is not None and ancestor.pid != INIT:
            if ancestor.subreaper and not ancestor.zombie:
                return ancestor.pid
            ancestor = self.procs.get(ancestor.ppid)
        return INIT

    def _init_waits(self) -> None:
        if not self.init_waits_at_once:
            return
        for process in [p for p in self.procs.values() if p.zombie and p.ppid == INIT]:
            self.reap(process.pid)

    def tree_root(self, pid: int) -> int:
        process = self.procs[pid]
        while process.ppid not in (0, INIT) and process.ppid in self.procs:
            process = self.procs[process.ppid]
        return process.pid

    def members(self) -> dict[Key, Member]:
        """What /proc shows now, zombies included, each process in its tree's slot.
        Looking closes the moment: what is burned next is burned after it."""
        self.budget = 0
        found: dict[Key, Member] = {}
        for process in self.procs.values():
            parent = self.procs.get(process.ppid)
            root = self.procs[self.tree_root(process.pid)]
            found[process.key] = Member(
                key=process.key,
                parent=parent.key if parent is not None else None,
                own_ticks=process.own,
                reaped_ticks=process.reaped,
                slot=(root.key, "main"),
                zombie=process.zombie,
            )
        return found
