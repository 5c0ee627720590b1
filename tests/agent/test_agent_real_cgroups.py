"""The agent's numbers against the truth, on real cgroups in the kubepods layout.

The test makes a Burstable pod the way a kubelet with the cgroupfs driver would
(kubepods/burstable/pod<uid>/<container>), puts one process that burns CPU under a
0.5-core CFS quota in one container and one process that holds a known amount of
memory in the other, and compares what the agent serves with what the kernel says
about those processes in /proc.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubepulse.agent import cgroups
from kubepulse.agent.procfs import CLOCK_TICKS, ProcFS
from tests.agent.conftest import Agent, start_agent
from tests.support import wait_for

HOLD_MIB = 256
POD_NAME = "web-0"

BURN = "import sys\nsys.stdout.write('ready\\n'); sys.stdout.flush()\nwhile True: pass\n"
HOLD = (
    "import sys\n"
    f"b = bytearray({HOLD_MIB} * 1024 * 1024)\n"
    "for i in range(0, len(b), 4096): b[i] = 1\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "sys.stdin.read()\n"
)


@dataclass
class Pod:
    uid: str
    hierarchy: cgroups.Hierarchy
    dirs: list[Path]
    burner: subprocess.Popen[str]
    holder: subprocess.Popen[str]


def controller_roots(h: cgroups.Hierarchy) -> list[Path]:
    return sorted({h.cpu, h.cpuacct, h.memory})


def enter(cgroup_dirs: list[Path]) -> None:
    """Runs in the child before exec, so every charge lands in the new cgroups."""
    for d in cgroup_dirs:
        (d / "cgroup.procs").write_text(str(os.getpid()))


def spawn(code: str, cgroup_dirs: list[Path]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOSTNAME": POD_NAME},
        preexec_fn=lambda: enter(cgroup_dirs),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def real_pod() -> Iterator[Pod]:
    if os.geteuid() != 0:
        pytest.fail("this test makes cgroups and must run as root (CI does)")
    h = cgroups.detect_host()
    uid = str(uuid.uuid4())
    rel = f"kubepods/burstable/pod{uid}"
    made = make_pod_cgroups(h, rel, ("burner", "holder"))
    set_quota(h, f"{rel}/burner", 50000)
    if h.version == 1:
        (h.cpu / rel / "burner" / "cpu.shares").write_text("512")
    burner = spawn(BURN, [root / rel / "burner" for root in controller_roots(h)])
    holder = spawn(HOLD, [root / rel / "holder" for root in controller_roots(h)])
    try:
        yield Pod(uid, h, made, burner, holder)
    finally:
        for proc in (burner, holder):
            proc.kill()
            proc.wait()
        remove_cgroups(made)


def make_pod_cgroups(h: cgroups.Hierarchy, rel: str, containers: tuple[str, ...]) -> list[Path]:
    """A pod's cgroup and its containers' in every controller, as a kubelet with the
    cgroupfs driver makes them; the directories made, for remove_cgroups()."""
    made: list[Path] = []
    parts = ("kubepods", "kubepods/burstable", rel, *(f"{rel}/{c}" for c in containers))
    for root in controller_roots(h):
        for part in parts:
            d = root / part
            if not d.exists():
                d.mkdir()
                made.append(d)
    if h.version == 2:
        for d in (h.cpu / "kubepods", h.cpu / "kubepods/burstable", h.cpu / rel):
            (d / "cgroup.subtree_control").write_text("+cpu +memory")
    return made


def set_quota(h: cgroups.Hierarchy, cgroup: str, quota_us: int) -> None:
    """A CFS quota of quota_us in each 100 ms period."""
    if h.version == 1:
        (h.cpu / cgroup / "cpu.cfs_period_us").write_text("100000")
        (h.cpu / cgroup / "cpu.cfs_quota_us").write_text(str(quota_us))
    else:
        (h.cpu / cgroup / "cpu.max").write_text(f"{quota_us} 100000")


def remove_cgroups(made: list[Path]) -> None:
    for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
        wait_for(lambda d=d: _rmdir(d), timeout=10, what=f"rmdir {d}")


def _rmdir(d: Path) -> bool:
    try:
        d.rmdir()
    except FileNotFoundError:
        return True
    return True


def scrape(agent: Agent) -> dict[tuple[str, str], tuple[float, float]]:
    """(sample name, container) -> (value, timestamp in s) for our pod's containers."""
    status, body = agent.get("/metrics/resource")
    assert status == 200
    found: dict[tuple[str, str], tuple[float, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.labels.get("pod") == POD_NAME and "container" in s.labels:
                found[(s.name, s.labels["container"])] = (s.value, s.timestamp or 0.0)
            elif s.name.startswith("node_"):
                found[(s.name, "")] = (s.value, s.timestamp or 0.0)
    return found


def process_cpu_seconds(pid: int) -> float:
    process = ProcFS().process(pid)
    return (process.own_cpu_ticks + process.reaped_cpu_ticks) / CLOCK_TICKS


def vm_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def wait_for_new_sample(agent: Agent, after: float) -> dict[tuple[str, str], tuple[float, float]]:
    def newer() -> dict[tuple[str, str], tuple[float, float]] | None:
        sample = scrape(agent)
        cpu = sample.get(("container_cpu_usage_seconds_total", "burner"))
        return sample if cpu and cpu[1] > after else None

    return wait_for(newer, timeout=30, what="a newer sample of the burner")


def test_agent_reports_known_cpu_and_memory_within_ten_percent(
    real_pod: Pod, tmp_path: Path
) -> None:
    gen = start_agent(tmp_path)
    agent = next(gen)
    try:
        first = wait_for_new_sample(agent, 0)
        start_truth = (time.time(), process_cpu_seconds(real_pod.burner.pid))
        # A window of at least 3 s between two agent samples.
        t0 = first[("container_cpu_usage_seconds_total", "burner")][1]
        second = wait_for_new_sample(agent, t0 + 3)
        end_truth = (time.time(), process_cpu_seconds(real_pod.burner.pid))

        cpu0, ts0 = first[("container_cpu_usage_seconds_total", "burner")]
        cpu1, ts1 = second[("container_cpu_usage_seconds_total", "burner")]
        agent_rate = (cpu1 - cpu0) / (ts1 - ts0)
        truth_rate = (end_truth[1] - start_truth[1]) / (end_truth[0] - start_truth[0])
        assert truth_rate > 0.2, "the burner did not get CPU; the machine is overloaded"
        assert agent_rate == pytest.approx(truth_rate, rel=0.10)
        # The CFS quota caps the container at half a core.
        assert agent_rate <= 0.5 * 1.10

        # Stopped, the burner's counter stands still: the agent's cumulative CPU must
        # then match the kernel's count for the process.
        real_pod.burner.send_signal(signal.SIGSTOP)
        try:
            stopped_truth = process_cpu_seconds(real_pod.burner.pid)
            stopped_at = time.time()
            frozen = wait_for_new_sample(agent, stopped_at)
            cpu_total = frozen[("container_cpu_usage_seconds_total", "burner")][0]
            assert cpu_total == pytest.approx(stopped_truth, rel=0.10)
        finally:
            real_pod.burner.send_signal(signal.SIGCONT)

        working_set = frozen[("container_memory_working_set_bytes", "holder")][0]
        truth = vm_rss_bytes(real_pod.holder.pid)
        assert working_set >= HOLD_MIB * 1024 * 1024
        assert working_set == pytest.approx(truth, rel=0.10)

        start = frozen[("container_start_time_seconds", "holder")][0]
        assert abs(start - ProcFS().process(real_pod.holder.pid).start_time) < 1.0

        # The node counts at least what its pods use.
        node_ws = frozen[("node_memory_working_set_bytes", "")][0]
        assert node_ws > working_set
    finally:
        gen.close()


def test_summary_names_the_pod_after_its_hostname_and_skips_nothing(
    real_pod: Pod, tmp_path: Path
) -> None:
    gen = start_agent(tmp_path)
    agent = next(gen)
    try:

        def our_pod() -> dict[str, object] | None:
            status, body = agent.get("/stats/summary")
            assert status == 200
            pods = json.loads(body)["pods"]
            return next((p for p in pods if p["podRef"]["uid"] == real_pod.uid), None)

        pod = wait_for(our_pod, what="the pod in /stats/summary")
        assert pod["podRef"] == {"name": POD_NAME, "namespace": "default", "uid": real_pod.uid}
        containers = {c["name"]: c for c in pod["containers"]}  # type: ignore[attr-defined]
        assert sorted(containers) == ["burner", "holder"]
        holder_memory = containers["holder"]["memory"]
        assert holder_memory["workingSetBytes"] >= HOLD_MIB * 1024 * 1024
        assert holder_memory["usageBytes"] >= holder_memory["workingSetBytes"]
        assert containers["burner"]["cpu"]["usageCoreNanoSeconds"] > 0
    finally:
        gen.close()
