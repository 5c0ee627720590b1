"""TreeCpu: process trees' CPU counted as it is spent, once, against a model kernel."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kubepulse.agent.tree_cpu import Key, TreeCpu
from tests.agent.kernel_sim import INIT, Kernel


class Reader:
    """Reads the model kernel the way the agent reads /proc, keeping every counter."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.cpu = TreeCpu(init_pids=(INIT,))
        self.trees: dict[Key, int] = {}

    def read(self) -> dict[Key, int]:
        self.trees, _ = self.cpu.update(self.kernel.members(), self.kernel.now)
        return self.trees

    def tree(self, pid: int) -> int:
        return self.trees[self.kernel.procs[pid].key]


def test_a_child_reaped_by_its_parent_is_counted_once_as_it_runs() -> None:
    k = Kernel()
    shell = k.start(INIT)
    reader = Reader(k)
    burner = k.start(shell)
    reader.read()
    before = reader.tree(shell)
    k.run(burner, 100, reader.read, 20)
    k.end(burner)
    k.advance(100)
    reader.read()

    assert reader.tree(shell) - before == 20 * 100
    assert k.procs[shell].reaped == 2_000  # the kernel's figure, now in the shell's cutime


def test_children_that_begin_and_end_between_readings_are_counted_through_their_reaper() -> None:
    k = Kernel()
    shell = k.start(INIT)
    reader = Reader(k)
    reader.read()
    before = reader.tree(shell)
    for _ in range(30):
        child = k.start(shell)
        k.advance(3)
        k.burn(child, 3)
        k.end(child)
    reader.read()

    assert reader.tree(shell) - before == 90


def test_a_top_level_tree_that_ends_is_never_charged_to_init() -> None:
    k = Kernel()
    reader = Reader(k)
    root = k.start(INIT)
    burner = k.start(root)
    reader.read()
    init_before = reader.tree(INIT)
    init_seen: list[int] = []
    k.run(burner, 100, lambda: init_seen.append(reader.read()[k.procs[INIT].key]), 40)
    assert init_seen == [init_before] * 40
    k.advance(50)
    k.burn(burner, 50)
    k.end(burner)
    k.exit(root)  # init waits for it at once: 4,050 ticks land in init's cutime
    trees = reader.read()

    assert k.procs[INIT].reaped >= 4_050
    assert reader.tree(INIT) == init_before
    assert set(trees) == {k.procs[INIT].key}


def test_an_orphan_that_ends_is_charged_to_the_tree_it_ran_in() -> None:
    """Its parent exits first, so init reaps it: its last moments go back to its tree."""
    k = Kernel()
    shell = k.start(INIT)
    middle = k.start(shell)
    worker = k.start(middle)
    reader = Reader(k)
    reader.read()
    k.advance(100)
    k.burn(worker, 100)
    reader.read()
    before, init_before = reader.tree(shell), reader.tree(INIT)
    k.advance(100)
    k.burn(worker, 60)
    k.end(middle)
    k.burn(worker, 40)
    k.exit(worker)  # re-parented to init, which reaps it
    reader.read()

    assert reader.tree(shell) - before == 100
    assert reader.tree(INIT) == init_before


def test_a_daemon_re_parented_to_init_is_counted_once_in_its_own_pod() -> None:
    k = Kernel()
    shell = k.start(INIT)
    middle = k.start(shell)
    daemon = k.start(middle)
    reader = Reader(k)
    reader.read()
    k.exit(middle)  # the double fork: the daemon's parent exits at once
    k.reap(middle)
    k.advance(100)
    k.burn(daemon, 100)
    reader.read()
    shell_before, daemon_before = reader.tree(shell), reader.tree(daemon)
    for _ in range(5):
        k.advance(100)
        k.burn(daemon, 80)
        reader.read()

    assert k.tree_root(daemon) == daemon
    assert reader.tree(daemon) - daemon_before == 400
    assert reader.tree(shell) == shell_before


def test_a_subreaper_is_charged_for_what_it_reaps_once_and_init_never() -> None:
    k = Kernel()
    supervisor = k.start(INIT, subreaper=True)
    middle = k.start(supervisor)
    worker = k.start(middle)
    reader = Reader(k)
    reader.read()
    k.exit(middle)  # the worker is re-parented to the subreaper, not to init
    k.reap(middle)
    before, init_before = reader.read()[k.procs[supervisor].key], reader.tree(INIT)
    k.run(worker, 100, reader.read, 10)
    k.advance(100)
    k.burn(worker, 30)
    k.end(worker)
    reader.read()

    assert reader.tree(supervisor) - before == 1_030
    assert reader.tree(INIT) == init_before


def test_an_orphan_re_parented_to_a_subreaper_above_its_grandparent_is_counted_once() -> None:
    """worker's parent and worker end in one interval: the grandparent may have reaped
    it (through its parent) or the subreaper above may have: /proc cannot tell, so
    neither is charged again for what was counted while it ran."""
    k = Kernel()
    supervisor = k.start(INIT, subreaper=True)
    shell = k.start(supervisor)
    middle = k.start(shell)
    worker = k.start(middle)
    helper = k.start(shell)
    reader = Reader(k)
    reader.read()
    for _ in range(10):
        k.advance(100)
        k.burn(worker, 100)
        k.burn(helper, 50)
        reader.read()
    before, burned = reader.tree(supervisor), k.burned
    k.advance(100)
    k.burn(worker, 20)
    k.exit(middle)  # the worker goes to the supervisor, not to the shell
    k.reap(middle)
    k.burn(helper, 50)
    k.end(helper)  # the shell reaps 550 ticks: more than middle was credited with
    k.end(worker)  # the supervisor reaps 1,020
    reader.read()

    assert k.procs[supervisor].reaped == 1_020
    assert 0 <= reader.tree(supervisor) - before <= k.burned - burned == 70


def test_a_zombie_parent_reaps_nothing_its_orphans_reaper_is_not_charged_twice() -> None:
    k = Kernel()
    supervisor = k.start(INIT, subreaper=True)
    middle = k.start(supervisor)
    worker = k.start(middle)
    reader = Reader(k)
    reader.read()
    k.run(worker, 100, reader.read, 10)
    before = reader.tree(supervisor)
    k.advance(100)
    k.burn(worker, 20)
    k.exit(middle)  # a zombie nobody has waited for yet; the worker goes to the supervisor
    k.end(worker)
    reader.read()

    assert k.procs[middle].zombie
    assert reader.tree(supervisor) - before == 20


def test_a_parent_that_reaps_its_child_and_exits_is_not_charged_again_for_it() -> None:
    """timeout(1) waits for its command and exits: in the reading after, it is a zombie
    whose reaped CPU holds the command's, which was counted while it ran."""
    k = Kernel()
    wrapper = k.start(INIT)
    command = k.start(wrapper)
    reader = Reader(k)
    reader.read()
    for _ in range(5):
        k.advance(100)
        k.burn(command, 90)
        reader.read()
    before = reader.tree(wrapper)
    k.advance(100)
    k.burn(command, 30)
    k.end(command)
    k.init_waits_at_once = False  # so that the reading sees the wrapper as a zombie
    k.exit(wrapper)
    reader.read()

    assert k.procs[wrapper].zombie and k.procs[wrapper].reaped == 480
    assert reader.tree(wrapper) - before == 30


def test_a_reused_pid_is_a_new_process() -> None:
    k = Kernel(max_pid=4)  # pids 2 and 3 only
    shell = k.start(INIT)
    child = k.start(shell)
    reader = Reader(k)
    k.advance(100)
    k.burn(child, 100)
    reader.read()
    before = reader.tree(shell)
    k.end(child)
    again = k.spawn(shell)
    assert again == child  # the same pid, a later start
    k.advance(100)
    k.burn(again, 70)
    reader.read()

    assert reader.tree(shell) - before == 70


def test_the_first_reading_starts_each_tree_from_what_it_has_spent_init_from_its_own() -> None:
    k = Kernel()
    shell = k.start(INIT)
    child = k.start(shell)
    k.advance(100)
    k.burn(shell, 30)
    k.burn(child, 70)
    k.end(child)
    k.procs[INIT].own = 5
    k.procs[INIT].reaped = 1_000_000  # every tree that ever ended

    trees = Reader(k).read()

    assert trees[k.procs[shell].key] == 100
    assert trees[k.procs[INIT].key] == 5


# -- properties over random histories ------------------------------------------------------

# A history: a few chains of processes under init (some of them subreapers), then
# events on them, each on a process picked newest first, so that middles end before
# their leaves and orphans go to subreapers, init, or zombies' parents.
CHAINS = st.lists(st.lists(st.booleans(), min_size=1, max_size=4), min_size=1, max_size=3)
EVENT = st.tuples(
    st.sampled_from(["burn", "burn", "advance", "read", "read", "exit", "reap", "reap", "spawn"]),
    st.integers(0, 7),
    st.integers(1, 120),
)
HISTORY = st.tuples(CHAINS, st.lists(EVENT, max_size=60), st.booleans()).map(
    lambda h: [
        *([("slow-init", 0, 0)] if h[2] else []),
        *[
            op
            for chain in h[0]
            for op in [("root", 0, chain[0]), *[("spawn", 0, flag) for flag in chain[1:]]]
        ],
        *h[1],
    ]
)


ORPHAN_TO_SUBREAPER: list[tuple[str, int, object]] = [
    ("root", 0, True),
    ("spawn", 0, False),
    ("spawn", 0, False),
    ("burn", 0, 40),
    ("read", 0, 0),
]
ORPHAN_TO_INIT: list[tuple[str, int, object]] = [("root", 0, False), *ORPHAN_TO_SUBREAPER[1:]]
WAIT_THEN_EXIT: list[tuple[str, int, object]] = [
    ("exit", 0, 0),
    ("reap", 0, 0),
    ("exit", 0, 0),
    ("read", 0, 0),
]


def play(k: Kernel, op: tuple[str, int, object]) -> None:
    """One op on a process picked among those it can apply to, newest first."""
    name, n, arg = op
    newest = sorted(k.procs.values(), key=lambda p: (-p.start, p.pid))
    running = [p.pid for p in newest if not p.zombie]
    if name == "slow-init":
        k.init_waits_at_once = False  # its zombie children wait for a "reap"
    elif name == "root":
        k.spawn(INIT, subreaper=bool(arg))
    elif name == "spawn":
        k.spawn(running[n % len(running)], subreaper=bool(arg))
    elif name == "advance":
        k.advance(n)
    elif name == "reap":
        zombies = [p.pid for p in newest if p.zombie]
        if zombies:
            k.reap(zombies[n % len(zombies)])
    elif (workers := [pid for pid in running if pid != INIT]) and name == "burn":
        k.advance(int(str(arg)))  # it runs for a while
        k.burn(workers[n % len(workers)], int(str(arg)))
    elif workers and name == "exit":
        k.exit(workers[n % len(workers)])


@settings(max_examples=1000, deadline=None)
@given(HISTORY)
# Histories too deep for chance to find often, each of which a wrong rule fails:
# a middle ends as a zombie and its orphan is reaped by the subreaper above it;
# a middle and its orphan end in one interval, the orphan going to init.
@example([*ORPHAN_TO_SUBREAPER, ("exit", 1, 0), ("exit", 0, 0), ("reap", 0, 0), ("read", 0, 0)])
@example([*ORPHAN_TO_SUBREAPER, ("exit", 1, 0), ("reap", 1, 0), ("exit", 0, 0), ("read", 0, 0)])
@example([*ORPHAN_TO_INIT, ("exit", 1, 0), ("reap", 1, 0), ("exit", 0, 0), ("read", 0, 0)])
# a parent waits for its child, then exits and is a zombie at the next reading.
@example([("slow-init", 0, 0), *ORPHAN_TO_INIT[:2], *ORPHAN_TO_INIT[3:], *WAIT_THEN_EXIT])
def test_counters_only_rise_and_never_charge_more_than_was_spent(
    ops: list[tuple[str, int, object]],
) -> None:
    k = Kernel(cores=2)
    reader = Reader(k)
    previous = reader.read()
    burned, then = k.burned, k.now
    live_before = {p.key: p.own for p in k.procs.values()}
    for op in [*ops, ("read", 0, False)]:
        if op[0] != "read":
            play(k, op)
            continue
        trees = reader.read()
        common = previous.keys() & trees.keys()
        rises = {tree: trees[tree] - previous[tree] for tree in common}
        assert all(rise >= 0 for rise in rises.values()), rises
        # Never more than was spent, and so never more than the cores had.
        assert sum(rises.values()) <= k.burned - burned
        assert sum(rises.values()) <= k.cores * (k.now - then)
        # Never less than what the processes that lived through the interval, in the
        # same tree, spent themselves.
        for tree in common:
            own = sum(
                p.own - live_before[p.key]
                for p in k.procs.values()
                if p.key in live_before and k.procs[k.tree_root(p.pid)].key == tree
            )
            assert rises[tree] >= own
        for tree, value in trees.items():
            assert value <= k.cores * (k.now - tree[1])
        previous, burned, then = trees, k.burned, k.now
        live_before = {p.key: p.own for p in k.procs.values()}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.booleans()), max_size=80))
def test_a_tree_whose_parents_wait_for_their_children_is_counted_exactly(
    steps: list[tuple[int, int, bool]],
) -> None:
    """No ambiguity (each child is waited for by a parent that outlives it): what the
    tree's counter rises by over the run is exactly what its processes spent."""
    k = Kernel(cores=4)
    shell = k.start(INIT)
    reader = Reader(k)
    start = reader.read()[k.procs[shell].key]
    children: list[int] = []
    for action, ticks, read in steps:
        k.advance(40)
        if action == 0 and (child := k.spawn(shell)) is not None:
            children.append(child)
        elif action == 1 and children:
            k.burn(children[ticks % len(children)], ticks)
        elif action == 2 and children:
            done = children.pop(ticks % len(children))
            k.burn(done, ticks)
            k.end(done)
        else:
            k.burn(shell, ticks)
        if read:
            reader.read()
    reader.read()
    spent = k.procs[shell].own + k.procs[shell].reaped + sum(k.procs[c].own for c in children)

    assert reader.tree(shell) - start == spent
