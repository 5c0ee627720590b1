"""The collector on the fake host: one reading of the node and of every workload."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable

import pytest

from kubepulse.agent.collector import Collector
from kubepulse.agent.procfs import CLOCK_TICKS, PAGE_SIZE
from kubepulse.agent.workloads import PodRef
from kubepulse.model import Resources
from tests.agent.fakehost import (
    BTIME,
    CGROUPFS,
    Clock,
    FakeHost,
    collected,
    hexid,
    make_collected_host,
    make_kube_pod,
    make_processes,
    make_units,
)


def names(collector: Collector) -> dict[str, list[str]]:
    stats = collector.collect()
    return {f"{p.namespace}/{p.name}": [c.name for c in p.containers] for p in stats.pods}


ALL_PODS = {
    "shop/shop-web-7d4b9c-xk2lp": ["mesh", "web"],
    "shop/db-0": ["postgres"],
    "system/containerd": ["containerd"],
    "system/getty-tty1": ["getty-tty1"],
    "user/session-3": ["session-3"],
    "host/sd-pam-600": ["sd-pam"],
    "host/systemd-1": ["systemd"],
    "host/tmux-server-500": ["bash", "python3", "tmux-server"],
}


def remove_cgroup(path: str) -> Callable[[FakeHost], None]:
    return lambda host: shutil.rmtree(host.dir(path))


def remove_processes(*pids: int) -> Callable[[FakeHost], None]:
    def remove(host: FakeHost) -> None:
        for pid in pids:
            shutil.rmtree(host.proc_root / str(pid))

    return remove


@pytest.mark.parametrize(
    ("vanish", "skipped", "gone", "shrunk"),
    [
        pytest.param(
            remove_cgroup(CGROUPFS.pod_dir),
            2,
            "shop/shop-web-7d4b9c-xk2lp",
            {},
            id="whole-pod-removed-skips-both-containers",
        ),
        pytest.param(
            remove_cgroup(CGROUPFS.container(hexid("sidecar"))),
            1,
            None,
            {"shop/shop-web-7d4b9c-xk2lp": ["web"]},
            id="one-container-removed-keeps-the-pod",
        ),
        pytest.param(
            remove_cgroup("system.slice/containerd.service"),
            1,
            "system/containerd",
            {},
            id="unit-stopped",
        ),
        pytest.param(
            remove_processes(500, 501, 502, 503),
            3,
            "host/tmux-server-500",
            {},
            id="process-tree-exited",
        ),
    ],
)
def test_collector_skips_workloads_that_vanish_after_discovery(
    host: FakeHost,
    monkeypatch: pytest.MonkeyPatch,
    vanish: Callable[[FakeHost], None],
    skipped: int,
    gone: str | None,
    shrunk: dict[str, list[str]],
) -> None:
    make_collected_host(host)
    collector = collected(host, Clock())
    discover = collector.discovery.pods

    def discover_then_vanish() -> list[PodRef]:
        found = discover()
        vanish(host)
        return found

    monkeypatch.setattr(collector.discovery, "pods", discover_then_vanish)

    result = names(collector)

    expected = {k: shrunk.get(k, v) for k, v in ALL_PODS.items() if k != gone}
    assert result == expected
    assert collector.skipped_reads == skipped


def test_collector_reads_every_workload_when_nothing_vanishes(host: FakeHost) -> None:
    make_collected_host(host)
    collector = collected(host, Clock())
    assert names(collector) == ALL_PODS
    assert collector.skipped_reads == 0


def write(cgroup: str, name: str, text: str) -> Callable[[FakeHost], None]:
    return lambda host: (host.dir(cgroup) / name).write_text(text)


def directory_instead_of(cgroup: str, name: str) -> Callable[[FakeHost], None]:
    """A file that cannot be read even by root, as chmod 000 would not do."""

    def replace(host: FakeHost) -> None:
        (host.dir(cgroup) / name).unlink()
        (host.dir(cgroup) / name).mkdir()

    return replace


WEB_POD = "shop/shop-web-7d4b9c-xk2lp"
DB = f"kubepods/burstable/pod9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d/{hexid('db')}"


@pytest.mark.parametrize(
    ("corrupt", "gone", "shrunk"),
    [
        pytest.param(
            write(CGROUPFS.container(hexid("web")), "memory.stat", "anon 4096\nfile many\n"),
            None,
            {WEB_POD: ["mesh"]},
            id="garbage-memory-stat-in-one-container",
        ),
        pytest.param(
            write("system.slice/containerd.service", "cpu.stat", "usage_usec -\n"),
            "system/containerd",
            {},
            id="garbage-cpu-stat-in-a-unit",
        ),
        pytest.param(
            write(DB, "cpu.stat", "user_usec 5\nsystem_usec 1\n"),
            "shop/db-0",
            {},
            id="cpu-stat-without-usage-usec",
        ),
        pytest.param(
            directory_instead_of(CGROUPFS.container(hexid("sidecar")), "memory.current"),
            None,
            {WEB_POD: ["web"]},
            id="memory-current-unreadable",
        ),
        pytest.param(
            write(CGROUPFS.pod_dir, "memory.stat", "\x00\x01 garbage\n"),
            None,
            {},
            id="garbage-pod-level-memory-stat-keeps-the-containers",
        ),
    ],
)
def test_an_unparseable_cgroup_file_is_skipped_counted_and_logged_once_per_reading(
    host: FakeHost,
    caplog: pytest.LogCaptureFixture,
    corrupt: Callable[[FakeHost], None],
    gone: str | None,
    shrunk: dict[str, list[str]],
) -> None:
    make_collected_host(host)
    corrupt(host)
    collector = collected(host, Clock())
    caplog.set_level(logging.WARNING, logger="kubepulse.agent.collector")

    first, second = names(collector), names(collector)

    assert first == second == {k: shrunk.get(k, v) for k, v in ALL_PODS.items() if k != gone}
    assert collector.skipped_reads == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "skipped 1 unreadable or vanished workload files in this reading (1 since start)",
        "skipped 1 unreadable or vanished workload files in this reading (2 since start)",
    ]


def test_a_pod_whose_own_cgroup_is_unreadable_sums_its_containers(host: FakeHost) -> None:
    make_collected_host(host)
    write(CGROUPFS.pod_dir, "memory.stat", "anon x\n")(host)

    stats = collected(host, Clock()).collect()

    (web,) = [p for p in stats.pods if p.name == "shop-web-7d4b9c-xk2lp"]
    assert web.usage is not None
    assert web.usage.working_set_bytes == sum(c.usage.working_set_bytes for c in web.containers)
    assert web.usage.cpu_usage_core_nanoseconds == sum(
        c.usage.cpu_usage_core_nanoseconds for c in web.containers
    )


def test_a_clean_reading_logs_no_warning(host: FakeHost, caplog: pytest.LogCaptureFixture) -> None:
    make_collected_host(host)
    caplog.set_level(logging.WARNING, logger="kubepulse.agent.collector")
    collected(host, Clock()).collect()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# MemTotal of the fake /proc/meminfo, and its two CPUs.
MEM_TOTAL = 8_041_672 * 1024
MI, GI = 1024**2, 1024**3


@pytest.mark.parametrize(
    ("reserved", "cpu", "memory"),
    [
        pytest.param(
            Resources(), 2000, MEM_TOTAL - 100 * MI, id="nothing-reserved-keeps-the-100Mi-threshold"
        ),
        pytest.param(
            Resources(cpu_millicores=500, memory_bytes=GI),
            1500,
            MEM_TOTAL - GI - 100 * MI,
            id="cpu-and-memory-reserved",
        ),
        pytest.param(
            Resources(cpu_millicores=250), 1750, MEM_TOTAL - 100 * MI, id="cpu-only-reserved"
        ),
        pytest.param(
            Resources(memory_bytes=512 * MI),
            2000,
            MEM_TOTAL - 612 * MI,
            id="memory-only-reserved",
        ),
        pytest.param(
            Resources(cpu_millicores=4000, memory_bytes=16 * GI),
            0,
            0,
            id="more-than-capacity-is-zero-not-negative",
        ),
    ],
)
def test_allocatable_is_capacity_minus_reserved_minus_the_hard_eviction_threshold(
    host: FakeHost, reserved: Resources, cpu: int, memory: int
) -> None:
    # The kubelet's rule (pkg/kubelet/cm/node_container_manager_linux.go,
    # GetNodeAllocatableAbsolute): allocatable = capacity - kube/system-reserved - the
    # hard eviction threshold, which only memory has (memory.available<100Mi by default).
    node = collected(host, Clock(), reserved).collect().node

    assert node.capacity == Resources(cpu_millicores=2000, memory_bytes=MEM_TOTAL)
    assert node.allocatable == Resources(cpu_millicores=cpu, memory_bytes=memory)


WEB = CGROUPFS.container(hexid("web"))


@pytest.mark.parametrize(
    ("before_usec", "after_usec", "seconds", "nanocores"),
    [
        pytest.param(5_000_000, 10_000_000, 10.0, 500_000_000, id="half-a-core"),
        pytest.param(5_000_000, 35_000_000, 15.0, 2_000_000_000, id="two-cores"),
        pytest.param(5_000_000, 5_000_000, 10.0, 0, id="idle"),
        pytest.param(10_000_000, 5_000_000, 10.0, None, id="counter-reset-gives-no-rate"),
        pytest.param(5_000_000, 10_000_000, 0.0, None, id="no-time-passed-gives-no-rate"),
    ],
)
def test_collector_reports_a_cpu_rate_from_the_second_collect(
    host: FakeHost, before_usec: int, after_usec: int, seconds: float, nanocores: int | None
) -> None:
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    host.set_cpu(WEB, before_usec)
    host.set_cpu(CGROUPFS.pod_dir, before_usec)
    host.set_cpu("", before_usec)
    clock = Clock()
    collector = collected(host, clock)

    first = collector.collect()
    host.set_cpu(WEB, after_usec)
    host.set_cpu(CGROUPFS.pod_dir, after_usec)
    host.set_cpu("", after_usec)
    clock.now += seconds
    second = collector.collect()

    (pod1,), (pod2,) = first.pods, second.pods
    web1 = next(c for c in pod1.containers if c.name == "web")
    web2 = next(c for c in pod2.containers if c.name == "web")
    assert (web1.cpu_usage_nanocores, pod1.cpu_usage_nanocores) == (None, None)
    assert first.node.cpu_usage_nanocores is None
    assert web2.usage.cpu_usage_core_nanoseconds == after_usec * 1000
    assert web2.usage.timestamp == clock.now
    assert web2.cpu_usage_nanocores == nanocores
    assert pod2.cpu_usage_nanocores == nanocores
    assert second.node.cpu_usage_nanocores == nanocores


def test_collector_requests_and_limits_only_for_kubelet_cgroups(host: FakeHost) -> None:
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    (host.dir(WEB) / "cpu.weight").write_text("39\n")  # the kubelet's weight for 1 core
    (host.dir(WEB) / "cpu.max").write_text("200000 100000\n")
    (host.dir(WEB) / "memory.max").write_text("268435456\n")
    make_units(host)
    (host.dir("system.slice/containerd.service") / "cpu.weight").write_text("39\n")

    stats = collected(host, Clock()).collect()

    pods = {p.name: p for p in stats.pods}
    web = next(c for c in pods["shop-web-7d4b9c-xk2lp"].containers if c.name == "web")
    assert web.requests.cpu_millicores == 975
    assert (web.limits.cpu_millicores, web.limits.memory_bytes) == (2000, 268_435_456)
    (containerd,) = pods["containerd"].containers
    assert containerd.requests.cpu_millicores is None


def test_collector_node_and_process_tree_usage(host: FakeHost) -> None:
    host.cgroup("init.scope")
    make_processes(host)
    (host.proc_root / "501" / "smaps_rollup").write_text(
        "55d4a000000-7ffd2ab000 ---p 00000000 00:00 0    [rollup]\n"
        "Rss:                4096 kB\nPss:                1024 kB\nPss_Anon:            512 kB\n"
    )
    clock = Clock()

    stats = collected(host, clock).collect()

    node = stats.node
    assert (node.name, node.start_time, node.max_pid) == ("node-a", float(BTIME), 4_194_304)
    assert node.capacity.cpu_millicores == 2000
    assert node.capacity.memory_bytes == 8_041_672 * 1024
    assert node.usage.timestamp == clock.now
    tmux = next(p for p in stats.pods if p.name == "tmux-server-500")
    bash = next(c for c in tmux.containers if c.name == "bash")
    # Each process: utime 50 + stime 20 + cutime 7 + cstime 3 ticks.
    assert bash.usage.cpu_usage_core_nanoseconds == 2 * (80 * 1_000_000_000 // CLOCK_TICKS)
    assert bash.usage.rss_bytes == 2 * 256 * PAGE_SIZE
    # PSS where smaps_rollup has it (pid 501), RSS otherwise (pid 502).
    assert bash.usage.working_set_bytes == 1024 * 1024 + 256 * PAGE_SIZE
    assert tmux.process_count == 4
    assert node.process_count == sum(p.process_count or 0 for p in stats.pods)
