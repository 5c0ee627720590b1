"""CPU counters for process trees that rise as the CPU is spent, counted once.

A process's /proc/<pid>/stat has its own CPU (utime + stime) and, apart, the CPU of the
children it has waited for (cutime + cstime): when a child is reaped, the kernel adds
the child's own and reaped CPU to its reaper's (kernel/exit.c, wait_task_zombie). Summing
own + reaped over live processes therefore counts a child twice (while it lives, and again
in its reaper) and all at once, in the interval it is reaped. Every top-level tree is
reaped by PID 1 (or a subreaper, prctl(2) PR_SET_CHILD_SUBREAPER), so a tree that ended
landed again, whole, on init's pod: 4.8 cores on a 2-core host.

The rule here, reading after reading:
- a live process seen before is charged the rise of its own CPU;
- a process born since the last reading is charged all it has (own + reaped: that is
  all spent since then);
- a reaper's rise of reaped CPU is the final total of what it reaped. From it, the part
  already charged while those processes lived (their own + reaped at their last reading)
  is taken off; the rest (their last moments, and children that began and ended between
  two readings) is charged to the tree the reaped processes belonged to. What init
  reaps from other trees goes back to those trees, never to init's own pod; a tree that
  has ended takes it with it.

Processes are keyed by (pid, start time), so a reused pid is a new process. Counters are
in clock ticks, as /proc counts them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import NamedTuple

Key = tuple[int, int]
"""(pid, start time in clock ticks since boot): one process, never a reused pid."""

Slot = tuple[Key, str]
"""(the tree's root, a container name): where a process's CPU is charged."""


class Member(NamedTuple):
    """One live process of a reading, with the tree and container it belongs to."""

    key: Key
    parent: Key | None
    own_ticks: int
    """utime + stime: the process's own CPU, all its threads, live and ended."""
    reaped_ticks: int
    """cutime + cstime: the CPU of the children it has waited for."""
    slot: Slot
    zombie: bool = False
    """Ended, not yet waited for: it reaps nothing, and its children have moved on."""


class _Seen(NamedTuple):
    parent: Key | None
    own_ticks: int
    reaped_ticks: int
    slot: Slot
    recent_ticks: int
    """What it was charged in its last interval, +1: the weight of its share of an
    orphan's final moments when init reaps several trees' processes at once."""


class TreeCpu:
    """Counters per tree and per (tree, container) that only rise as CPU is spent.

    `init_pids` names the processes whose reaped CPU belongs to other trees (PID 1 of
    the host).
    """

    def __init__(self, init_pids: Iterable[int] = (1,)) -> None:
        self.init_pids = frozenset(init_pids)
        self._seen: dict[Key, _Seen] = {}
        self._trees: dict[Key, int] = {}
        self._slots: dict[Slot, int] = {}
        self._uptime_ticks: int | None = None

    def update(
        self, members: Mapping[Key, Member], uptime_ticks: int
    ) -> tuple[dict[Key, int], dict[Slot, int]]:
        """Take one reading (every live process of the trees, and the clock they share:
        ticks since boot); return every live tree's and slot's counter, in ticks."""
        previous_uptime = self._uptime_ticks
        charges: dict[Slot, int] = defaultdict(int)
        rises: dict[Key, int] = {}
        recent: dict[Key, int] = {}
        for key, m in members.items():
            seen = self._seen.get(key)
            if seen is not None:
                spent = max(0, m.own_ticks - seen.own_ticks)
                rises[key] = max(0, m.reaped_ticks - seen.reaped_ticks)
            elif previous_uptime is not None and key[1] >= previous_uptime:
                spent = m.own_ticks + m.reaped_ticks  # born since the last reading
            else:
                spent = 0  # it ran before we looked: its past is its slot's baseline
            charges[m.slot] += spent
            recent[key] = spent
        if previous_uptime is not None:
            self._charge_reaped(members, rises, charges)
        self._seen = {
            key: _Seen(m.parent, m.own_ticks, m.reaped_ticks, m.slot, recent[key] + 1)
            for key, m in members.items()
        }
        self._uptime_ticks = uptime_ticks
        return self._advance(members, charges)

    # -- reaped CPU ------------------------------------------------------------------
    def _charge_reaped(
        self, members: Mapping[Key, Member], rises: dict[Key, int], charges: dict[Slot, int]
    ) -> None:
        credit: dict[Key, int] = defaultdict(int)
        credited: dict[Key, list[tuple[Slot, int]]] = defaultdict(list)
        init = next((k for k in members if k[0] in self.init_pids), None)
        for key, seen in self._seen.items():
            if key in members:
                continue
            for reaper in self._possible_reapers(key, members, init):
                credit[reaper] += seen.own_ticks + seen.reaped_ticks
                credited[reaper].append((seen.slot, seen.recent_ticks))
        live: _Live | None = None
        for reaper, rise in rises.items():
            excess = rise - credit.get(reaper, 0)
            if excess > 0:
                live = live or _Live(members)
                self._attribute(reaper, live, excess, credited.get(reaper, []), charges)

    def _possible_reapers(
        self, key: Key, members: Mapping[Key, Member], init: Key | None
    ) -> list[Key]:
        """Who may have reaped a process that has ended since the last reading.

        Its parent, if that still runs: a process changes parent only when its parent
        exits. If the parent has exited too, it may have reaped it first (and been
        reaped in turn), or the orphan went to the nearest subreaper among its
        ancestors, or to init (kernel/exit.c, find_new_reaper). Every ancestor still in
        /proc (running, or a zombie that may have reaped before it exited) and init is
        credited with what was already charged for it: no reaper is charged again for
        what it reaped, at the price of undercounting, in that one interval, what the
        others reaped besides.
        """
        parent = self._seen[key].parent
        if parent is not None and _running(parent, members):
            return [parent]
        found: list[Key] = []
        while parent is not None and len(found) < 4096:
            member = members.get(parent)
            if member is not None:
                found.append(parent)
                parent = member.parent
            else:
                seen = self._seen.get(parent)
                parent = seen.parent if seen is not None else None
        if init is not None and init not in found and key[0] not in self.init_pids:
            found.append(init)
        return found

    def _attribute(
        self,
        reaper: Key,
        live: _Live,
        excess: int,
        credited: list[tuple[Slot, int]],
        charges: dict[Slot, int],
    ) -> None:
        """Charge what `reaper` reaped beyond its credit to the trees it came from."""
        own_slot = live.members[reaper].slot
        is_init = reaper[0] in self.init_pids
        if not any(slot[0] != own_slot[0] for slot, _ in credited):
            if not is_init:
                charges[own_slot] += excess
            # Init's reaped CPU with nothing seen to explain it: orphans that began and
            # ended between two readings, whose tree is unknown. It stays in the node's
            # total, in no pod.
            return
        total = sum(w for _, w in credited)
        given = 0
        for i, (slot, weight) in enumerate(credited):
            share = excess - given if i == len(credited) - 1 else excess * weight // total
            given += share
            if slot[0] == own_slot[0]:
                if not is_init:
                    charges[own_slot] += share
            elif slot in live.slots:
                charges[slot] += share
            elif slot[0] in live.root_slots:
                charges[live.root_slots[slot[0]]] += share
            # else: the tree has ended; its last moments end with it.

    # -- counters --------------------------------------------------------------------
    def _advance(
        self, members: Mapping[Key, Member], charges: Mapping[Slot, int]
    ) -> tuple[dict[Key, int], dict[Slot, int]]:
        """Add this reading's charges to every live counter; a counter seen for the first
        time starts from what its processes have spent so far (init: its own CPU only,
        its reaped CPU being other trees')."""
        baselines: dict[Slot, int] = defaultdict(int)
        for m in members.values():
            own_only = m.key[0] in self.init_pids
            baselines[m.slot] += m.own_ticks + (0 if own_only else m.reaped_ticks)
        slots: dict[Slot, int] = {}
        tree_charges: dict[Key, int] = defaultdict(int)
        tree_baselines: dict[Key, int] = defaultdict(int)
        for slot, baseline in baselines.items():
            before = self._slots.get(slot)
            slots[slot] = baseline if before is None else before + charges.get(slot, 0)
            tree_charges[slot[0]] += charges.get(slot, 0)
            tree_baselines[slot[0]] += baseline
        trees: dict[Key, int] = {}
        for tree, baseline in tree_baselines.items():
            before = self._trees.get(tree)
            trees[tree] = baseline if before is None else before + tree_charges[tree]
        self._slots, self._trees = slots, trees
        return trees, slots


def _running(key: Key, members: Mapping[Key, Member]) -> bool:
    member = members.get(key)
    return member is not None and not member.zombie


class _Live:
    """The slots of one reading, and each live tree's root slot."""

    def __init__(self, members: Mapping[Key, Member]) -> None:
        self.members = members
        self.slots = {m.slot for m in members.values()}
        self.root_slots = {m.key: m.slot for m in members.values() if m.key == m.slot[0]}
