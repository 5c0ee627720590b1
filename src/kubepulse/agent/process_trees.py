"""Processes outside any workload cgroup, as pods in namespace `host`.

Each top-level process tree (a child of init, or init itself) is a pod named after its
root's program and pid. Its containers are programs, chosen so that they do not churn:
metrics-server serves a pod only when every container it lists had a point in the
scrape before (pkg/storage/pod.go), so a container that appears costs the pod one
scrape, while one that goes away costs nothing. A process is a container of its own
(named after its program) once it has run for `established_seconds`; younger ones, the
children that come and go, count in the container of their nearest established
ancestor, or the root's. A tree's CPU comes from TreeCpu (counted as it is spent,
once); its memory is the proportional set size of its live processes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from kubepulse.agent.procfs import CLOCK_TICKS, Process, ProcFS
from kubepulse.agent.tree_cpu import Key, Member, Slot, TreeCpu

HOST_NAMESPACE = "host"
ESTABLISHED_SECONDS = 60.0
_NS_PER_TICK = 1_000_000_000 // CLOCK_TICKS if 1_000_000_000 % CLOCK_TICKS == 0 else 0


def ticks_to_ns(ticks: int) -> int:
    return ticks * _NS_PER_TICK if _NS_PER_TICK else ticks * 1_000_000_000 // CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class TreeContainer:
    name: str
    start_time: float
    pids: tuple[int, ...]
    cpu_usage_core_nanoseconds: int


@dataclass(frozen=True, slots=True)
class Tree:
    name: str
    root_pid: int
    start_time: float
    cpu_usage_core_nanoseconds: int
    containers: tuple[TreeContainer, ...]
    cpu_read_at: float
    """When its CPU was read (the middle of the reading of /proc): its samples' time."""


class ProcessTrees:
    """Reads every process once a reading and keeps the trees' CPU counters."""

    def __init__(
        self,
        proc: ProcFS,
        label: Callable[[str, str], str],
        established_seconds: float = ESTABLISHED_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.proc = proc
        self.clock = clock
        self.label = label
        self.established_ticks = int(established_seconds * CLOCK_TICKS)
        self.cpu = TreeCpu(init_pids=(1,))
        self._programs: dict[Key, str] = {}
        self._container_starts: dict[Slot, float] = {}
        self.uptime_ticks = 0
        """The clock of the last reading: clock ticks since boot."""

    def read(self, in_workload: Callable[[int], bool]) -> list[Tree]:
        procs: dict[int, Process] = {}
        began = self.clock()
        for pid in self.proc.pids():
            try:
                process = self.proc.process(pid)
            except (OSError, ValueError, IndexError):
                continue  # exited between listdir and read
            if process.kernel_thread or in_workload(pid):
                continue
            procs[pid] = process
        # The trees' samples take the time their CPU was read, not the time their memory
        # is read later (a PSS read a process, slower under load): a rate over the
        # interval between two memory reads was off by their difference, 2.12 cores of a
        # 2-core node for a busy tree.
        read_at = (began + self.clock()) / 2
        uptime = self.uptime_ticks = self.proc.uptime_ticks()
        programs = {pid: self._program(p) for pid, p in procs.items()}
        roots: dict[int, int] = {}
        members: dict[Key, Member] = {}
        slots: dict[int, Slot] = {}
        for pid, process in procs.items():
            root = _tree_root(process, procs, roots)
            owner = self._owner(process, procs, root, uptime)
            root_key = (root, procs[root].start_ticks)
            slots[pid] = (root_key, self.label(programs[owner], "process"))
            parent = procs.get(process.ppid)
            members[(pid, process.start_ticks)] = Member(
                key=(pid, process.start_ticks),
                parent=(parent.pid, parent.start_ticks) if parent is not None else None,
                own_ticks=process.own_cpu_ticks,
                reaped_ticks=process.reaped_cpu_ticks,
                slot=slots[pid],
                zombie=process.zombie,
            )
        trees, counters = self.cpu.update(members, uptime)
        self._forget({m.key for m in members.values()}, set(counters))
        return self._trees(procs, programs, slots, trees, counters, read_at)

    def _trees(
        self,
        procs: dict[int, Process],
        programs: dict[int, str],
        slots: dict[int, Slot],
        trees: dict[Key, int],
        counters: dict[Slot, int],
        read_at: float,
    ) -> list[Tree]:
        pids_by_slot: dict[Slot, list[int]] = defaultdict(list)
        for pid, slot in slots.items():
            pids_by_slot[slot].append(pid)
        by_tree: dict[Key, list[TreeContainer]] = defaultdict(list)
        for slot, pids in sorted(pids_by_slot.items(), key=lambda item: item[0][1]):
            start = self._container_starts.setdefault(
                slot, min(procs[pid].start_time for pid in pids)
            )
            by_tree[slot[0]].append(
                TreeContainer(slot[1], start, tuple(sorted(pids)), ticks_to_ns(counters[slot]))
            )
        found: list[Tree] = []
        for (root_pid, _), containers in by_tree.items():
            root = procs[root_pid]
            name = f"{self.label(programs[root_pid], 'process')[:50]}-{root_pid}"
            tree_ns = ticks_to_ns(trees[(root_pid, root.start_ticks)])
            found.append(Tree(name, root_pid, root.start_time, tree_ns, tuple(containers), read_at))
        return sorted(found, key=lambda t: t.name)

    def _owner(self, process: Process, procs: dict[int, Process], root: int, uptime: int) -> int:
        """The process whose program names this one's container: itself or its nearest
        ancestor that has run for established_seconds, else the tree's root."""
        current = process
        for _ in range(4096):
            if current.pid == root or uptime - current.start_ticks >= self.established_ticks:
                return current.pid
            parent = procs.get(current.ppid)
            if parent is None:
                break
            current = parent
        return root

    def _program(self, process: Process) -> str:
        key = (process.pid, process.start_ticks)
        name = self._programs.get(key)
        if name is None:
            name = self._programs[key] = self.proc.program(process.pid, process.comm)
        return name

    def _forget(self, live: set[Key], live_slots: set[Slot]) -> None:
        for key in [k for k in self._programs if k not in live]:
            del self._programs[key]
        for slot in [s for s in self._container_starts if s not in live_slots]:
            del self._container_starts[slot]


def _tree_root(process: Process, procs: dict[int, Process], roots: dict[int, int]) -> int:
    """The ancestor just below init (or init itself) within the processes we keep."""
    path: list[int] = []
    current = process
    while current.pid not in roots and current.ppid > 1 and current.ppid in procs:
        path.append(current.pid)
        current = procs[current.ppid]
        if len(path) > 4096:
            break
    root = roots.get(current.pid, current.pid)
    roots[current.pid] = root
    for pid in path:
        roots[pid] = root
    return root
