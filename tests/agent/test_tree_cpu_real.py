"""Process trees' CPU on the real /proc, against what the kernel says the processes spent.

Each tree is a real child of init (tests/agent/toplevel.py), read every second as the
agent reads it; the truth is each process's own getrusage(2) or /proc figures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse.agent.cgroups import detect_host
from kubepulse.agent.collector import Collector
from kubepulse.agent.procfs import ProcFS
from kubepulse.model import NodeStats
from kubepulse.store.points import MetricsStore
from tests.agent.toplevel import Readings, TopLevel, follow, own_cpu_seconds, paced, rates

RUSAGE = (
    "import resource\n"
    "def spent():\n"
    "    s = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime\n"
)
BURN_FOR = (
    "import os, time\ndef burn_for(seconds):\n    while time.process_time() < seconds: pass\n"
)


@pytest.fixture
def trees() -> Iterator[list[TopLevel]]:
    started: list[TopLevel] = []
    yield started
    for tree in started:
        tree.stop()


def start(trees: list[TopLevel], code: str) -> TopLevel:
    tree = TopLevel(code)
    trees.append(tree)
    assert tree.line(timeout=30) == "ready"
    return tree


def test_a_child_that_burns_20_core_seconds_and_is_reaped_is_counted_once_as_it_runs(
    trees: list[TopLevel],
) -> None:
    tree = start(
        trees,
        RUSAGE + BURN_FOR + "import os, sys\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    burn_for(20.0)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('reaped', spent()[1], flush=True)\n"
        "sys.stdin.read()\n",
    )
    reaped, counters = follow(Readings(), tree, every=1.0, limit=120)
    total = (counters[-1][1] - counters[0][1]) / 1e9

    children = float(reaped.split()[1])
    assert 19.5 <= children <= 21.0  # the kernel's own figure for the child
    assert max(rates(counters)) <= 1.05, rates(counters)
    assert abs(total - 20.0) <= 2.0, total


def test_a_thousand_short_lived_children_are_each_counted_once(
    trees: list[TopLevel],
) -> None:
    tree = start(
        trees,
        RUSAGE + BURN_FOR + "import os, sys, time\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "before = spent()\n"
        "t0 = time.monotonic()\n"
        "for i in range(1000):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        burn_for(0.004)\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "    time.sleep(max(0.0, t0 + (i + 1) * 0.01 - time.monotonic()))\n"
        "after = spent()\n"
        "print('done', after[0] - before[0], after[1] - before[1], flush=True)\n"
        "sys.stdin.read()\n",
    )
    readings = Readings()
    done, counters = follow(readings, tree, every=0.5, limit=120)
    total = (counters[-1][1] - counters[0][1]) / 1e9

    assert max(rates(counters)) <= readings.cores * 1.05
    parent, children = (float(x) for x in done.split()[1:])
    assert children >= 3.5  # 1,000 x 4 ms, as the kernel counted them
    assert abs(total - (parent + children)) <= 0.1 * (parent + children), (
        total,
        parent,
        children,
    )


def collector() -> Collector:
    return Collector("node-a", detect_host(), ProcFS())


class SlowMemoryReads(ProcFS):
    """/proc whose memory read (PSS) of one process takes 0.4 s more every other
    reading: what reading the PSS of many processes costs on a loaded node."""

    def __init__(self, slow_pid: int) -> None:
        super().__init__()
        self.slow_pid, self.reads = slow_pid, 0

    def pss_bytes(self, pid: int) -> int | None:
        if pid == self.slow_pid:
            self.reads += 1
            if self.reads % 2 == 0:
                time.sleep(0.4)  # the slow read itself, not a wait for anything
        return super().pss_bytes(pid)


def test_a_busy_trees_rate_spans_its_cpu_reads_not_its_slower_memory_reads(
    trees: list[TopLevel],
) -> None:
    """A tree burning one core reads one core at every reading, though its memory is
    read 0.4 s later at every other one. Its samples used to take the time of the
    memory read: 0.7 and 1.7 cores by turns."""
    tree = start(
        trees,
        BURN_FOR + "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n"
        "burn_for(12.0)\nsys.stdin.read()\n",
    )
    agent = Collector("node-a", detect_host(), SlowMemoryReads(tree.pid))
    tree.send("go")
    found: list[float] = []
    for _ in paced(1.0, 8):
        pod = next(p for p in agent.collect().pods if p.name.endswith(f"-{tree.pid}"))
        if pod.cpu_usage_nanocores is not None:
            found.append(pod.cpu_usage_nanocores / 1e9)
    assert len(found) == 7
    assert all(0.8 <= cores <= 1.1 for cores in found[1:]), found


def pod_rates(stats: NodeStats) -> dict[str, float]:
    return {p.name: (p.cpu_usage_nanocores or 0) / 1e9 for p in stats.pods}


def test_a_top_level_tree_that_ends_is_not_charged_to_init_and_pods_stay_within_the_node(
    trees: list[TopLevel],
) -> None:
    tree = start(
        trees,
        BURN_FOR + "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\nburn_for(40.0)\n",
    )
    assert tree.ppid() == 1, "the tree should have been re-parented to init"
    cores = ProcFS().cpu_count()
    agent = collector()
    tick = paced(1.0, 200)
    next(tick)
    init_pod = next(p.name for p in agent.collect().pods if p.name.endswith("-1"))
    next(tick)
    init_before = next(p for p in agent.collect().pods if p.name == init_pod)
    init_own_before = own_cpu_seconds(1)
    tree.send("go")
    readings_after_the_end = 0
    for _ in tick:
        stats = agent.collect()
        rates = pod_rates(stats)
        node = (stats.node.cpu_usage_nanocores or 0) / 1e9
        assert max(rates.values()) <= cores * 1.05, rates
        assert sum(rates.values()) <= node * 1.1 + 0.05, (sum(rates.values()), node)
        if not tree.alive():
            readings_after_the_end += 1  # init has reaped it: 40 s in init's cutime
            if readings_after_the_end == 3:
                break
    else:
        pytest.fail("the tree did not end within 200 readings")

    init_after = next(p for p in stats.pods if p.name == init_pod)
    assert init_after.usage is not None and init_before.usage is not None
    init_pod_rise = (
        init_after.usage.cpu_usage_core_nanoseconds - init_before.usage.cpu_usage_core_nanoseconds
    ) / 1e9
    assert init_pod_rise <= own_cpu_seconds(1) - init_own_before + 0.02


def test_a_double_forked_daemon_is_counted_once_in_its_own_pod(trees: list[TopLevel]) -> None:
    """The root forks a middle that forks the daemon and exits: the daemon is re-parented
    to init and becomes a tree of its own; the root's tree is not charged for it."""
    tree = start(
        trees,
        BURN_FOR + "import os, sys, time\n"
        "r, w = os.pipe()\n"
        "middle = os.fork()\n"
        "if middle == 0:\n"
        "    if os.fork() == 0:\n"
        "        os.close(r)\n"
        "        os.write(w, str(os.getpid()).encode())\n"
        "        os.close(w)\n"
        "        burn_for(3.0)\n"
        "        sys.stdin.read()\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "os.close(w)\n"
        "os.waitpid(middle, 0)\n"
        "print('ready', flush=True)\n"
        "print(os.read(r, 32).decode(), flush=True)\n"
        "sys.stdin.read()\n",
    )
    daemon = int(tree.line(timeout=30))
    readings = Readings()
    _, found = readings.read()
    assert ProcFS().process(daemon).ppid == 1
    root_start = found[tree.pid].cpu_usage_core_nanoseconds
    daemon_start = found[daemon].cpu_usage_core_nanoseconds
    daemon_own = own_cpu_seconds(daemon)
    root_own = own_cpu_seconds(tree.pid)
    for _ in paced(0.5, 120):
        if own_cpu_seconds(daemon) >= 2.9:
            break
        readings.read()
    else:
        pytest.fail("the daemon did not burn its 3 s in 60 s")
    _, found = readings.read()

    daemon_rise = (found[daemon].cpu_usage_core_nanoseconds - daemon_start) / 1e9
    root_rise = (found[tree.pid].cpu_usage_core_nanoseconds - root_start) / 1e9
    assert abs(daemon_rise - (own_cpu_seconds(daemon) - daemon_own)) <= 0.05
    assert root_rise <= own_cpu_seconds(tree.pid) - root_own + 0.02


def test_what_a_subreaper_reaps_is_counted_once_in_its_pod(trees: list[TopLevel]) -> None:
    tree = start(
        trees,
        BURN_FOR + RUSAGE + "import ctypes, os, sys\n"
        "ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "middle = os.fork()\n"
        "if middle == 0:\n"
        "    if os.fork() == 0:\n"
        "        burn_for(3.0)\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "os.waitpid(middle, 0)\n"
        "os.waitpid(-1, 0)  # the orphaned worker, now the subreaper's child\n"
        "print('reaped', spent()[1], flush=True)\n"
        "sys.stdin.read()\n",
    )
    readings = Readings()
    _, found = readings.read()
    own_before = own_cpu_seconds(tree.pid)
    init_before, init_own = found[1].cpu_usage_core_nanoseconds, own_cpu_seconds(1)
    reaped, counters = follow(readings, tree, every=0.5, limit=60)
    _, found = readings.read()

    total = (counters[-1][1] - counters[0][1]) / 1e9
    truth = float(reaped.split()[1]) + own_cpu_seconds(tree.pid) - own_before
    assert truth >= 2.9
    assert abs(total - truth) <= 0.1 * truth, (total, truth)
    init_rise = (found[1].cpu_usage_core_nanoseconds - init_before) / 1e9
    assert init_rise <= own_cpu_seconds(1) - init_own + 0.02


def test_a_tree_with_churning_children_keeps_its_metrics_in_every_scrape(
    trees: list[TopLevel],
) -> None:
    """A shell-like root that starts a short child every 0.1 s: the pod's containers do
    not change, so metrics-server's rules serve it in every scrape after its second."""
    tree = start(
        trees,
        "import os, subprocess, sys, threading, time\n"
        "done = threading.Event()\n"
        "threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "while not done.is_set():\n"
        "    subprocess.run(['sleep', '0.05'])\n"
        "    subprocess.run([sys.executable, '-c', 'sum(range(100000))'])\n",
    )
    agent = collector()
    store = MetricsStore(resolution=15.0)
    served: list[bool] = []
    name: str | None = None
    for _ in paced(0.5, 22):
        stats = agent.collect()
        store.store(stats.node.name, stats.node, stats.pods)
        pod = next((p for p in stats.pods if p.uid and p.name.endswith(f"-{tree.pid}")), None)
        assert pod is not None, "the tree's pod is missing from a reading"
        name = pod.name
        served.append(store.pod(stats.node.name, "host", pod.name) is not None)

    assert name is not None and name.startswith("python")
    assert served[2:] == [True] * 20, served


def test_a_program_run_from_a_memfd_is_named_after_its_argv0(
    trees: list[TopLevel], tmp_path: Path
) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    tree = start(
        trees,
        "import os, subprocess, sys\n"
        "fd = os.memfd_create('memfd-sealed-91', 0)\n"
        f"os.write(fd, open({sleep!r}, 'rb').read())\n"
        "child = subprocess.Popen(['sleep', '600'], executable=f'/proc/self/fd/{fd}',\n"
        "                         pass_fds=[fd], start_new_session=True)\n"
        "print('ready', flush=True)\n"
        "print(child.pid, flush=True)\n"
        "os._exit(0)\n",
    )
    child = int(tree.line(timeout=30))
    try:
        # The line is printed before the parent exits: the child is a top-level
        # tree only once init has adopted it, so wait for that (with a deadline).
        deadline = time.monotonic() + 30
        while ProcFS().process(child).ppid != 1:
            assert time.monotonic() < deadline, "the child was never re-parented to init"
            time.sleep(0.01)
        process = ProcFS().process(child)
        assert process.comm.isdigit() or process.comm.startswith("memfd")  # what comm says
        first = Readings().read()[1][child]
        second = Readings().read()[1][child]
        assert first.name == second.name == f"sleep-{child}"
        assert [c.name for c in first.containers] == ["sleep"]
    finally:
        os.kill(child, 9)


def test_a_deleted_executable_keeps_its_name(tmp_path: Path) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    copy = tmp_path / "backup-agent"
    shutil.copy(sleep, copy)
    child = subprocess.Popen([str(copy), "600"])
    try:
        copy.unlink()
        assert os.readlink(f"/proc/{child.pid}/exe").endswith(" (deleted)")
        comm = ProcFS().process(child.pid).comm
        assert ProcFS().program(child.pid, comm) == "backup-agent"
    finally:
        child.kill()
        child.wait()
