"""/metrics/cadvisor's OOM and throttling counters against the kernel's, on real cgroups
in the kubepods layout: one container burns CPU under a 0.1-core CFS quota, in the other
a process outgrows its 64Mi memory limit and is killed while a quiet one stays."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubepulse.agent import cgroups
from tests.agent.conftest import Agent, start_agent
from tests.agent.test_agent_real_cgroups import (
    BURN,
    POD_NAME,
    controller_roots,
    enter,
    make_pod_cgroups,
    remove_cgroups,
    set_quota,
    spawn,
)
from tests.support import wait_for

QUIET = "import sys\nsys.stdout.write('ready\\n'); sys.stdout.flush()\nsys.stdin.read()\n"
HOG = "b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
LIMIT = 64 << 20


@dataclass
class Pod:
    hierarchy: cgroups.Hierarchy
    rel: str
    oom_dirs: list[Path]
    """The "oom" container's cgroup in every controller, for a process to enter()."""
    hog_exit: int = 0


def limit_memory(h: cgroups.Hierarchy, d: Path) -> None:
    if h.version == 1:
        (d / "memory.limit_in_bytes").write_text(str(LIMIT))
        swap = d / "memory.memsw.limit_in_bytes"
        if swap.exists():  # no swap beyond the limit either
            swap.write_text(str(LIMIT))
    else:
        (d / "memory.max").write_text(str(LIMIT))
        (d / "memory.swap.max").write_text("0")


@contextlib.contextmanager
def pod_under_pressure() -> Iterator[Pod]:
    """A pod whose "throttled" container burns under a 0.1-core quota and whose "oom"
    container (64Mi) holds a quiet process, for the caller to push past its limit."""
    if os.geteuid() != 0:
        pytest.fail("this test makes cgroups and must run as root (CI does)")
    h = cgroups.detect_host()
    rel = f"kubepods/burstable/pod{uuid.uuid4()}"
    made = make_pod_cgroups(h, rel, ("throttled", "oom"))
    set_quota(h, f"{rel}/throttled", 10000)
    limit_memory(h, h.memory / rel / "oom")
    oom_dirs = [root / rel / "oom" for root in controller_roots(h)]
    burner = spawn(BURN, [root / rel / "throttled" for root in controller_roots(h)])
    quiet = spawn(QUIET, oom_dirs)
    try:
        yield Pod(h, rel, oom_dirs)
    finally:
        for proc in (burner, quiet):
            proc.kill()
            proc.wait()
        remove_cgroups(made)


def run_hog(pod: Pod) -> int:
    """A process in the "oom" container that outgrows its limit; its exit status."""
    hog = subprocess.run(
        [sys.executable, "-c", HOG],
        preexec_fn=lambda: enter(pod.oom_dirs),
        capture_output=True,
        timeout=60,
    )
    return hog.returncode


@pytest.fixture
def pressed_pod() -> Iterator[Pod]:
    with pod_under_pressure() as pod:
        pod.hog_exit = run_hog(pod)
        yield pod


def counters(agent: Agent) -> dict[tuple[str, str], float]:
    status, body = agent.get("/metrics/cadvisor")
    assert status == 200
    return {
        (s.name, s.labels["container"]): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.labels.get("pod") == POD_NAME
    }


def test_cadvisor_counters_show_the_oom_kill_and_the_throttling(
    pressed_pod: Pod, tmp_path: Path
) -> None:
    assert pressed_pod.hog_exit == -9, "the hog was not killed for memory"
    gen = start_agent(tmp_path)
    agent = next(gen)
    try:
        h, rel = pressed_pod.hierarchy, pressed_pod.rel

        def throttled_a_while() -> dict[tuple[str, str], float] | None:
            found = counters(agent)
            done = found.get(("container_cpu_cfs_throttled_periods_total", "throttled"), 0)
            return found if done >= 5 else None

        found = wait_for(throttled_a_while, 30, "the burner throttled in 5 periods")
        kernel = cgroups.read_counters(h, f"{rel}/throttled")
        assert kernel is not None
        periods = found[("container_cpu_cfs_periods_total", "throttled")]
        throttled = found[("container_cpu_cfs_throttled_periods_total", "throttled")]
        # Under a tenth of a core, a burner is throttled in nearly every period.
        assert 0.8 <= throttled / periods <= 1.0
        assert periods <= kernel.cpu_cfs_periods  # read before the kernel's count now
        assert found[("container_oom_events_total", "oom")] == 1
        assert found[("container_oom_events_total", "throttled")] == 0
        # No quota, no CFS families (cAdvisor's rule).
        assert ("container_cpu_cfs_periods_total", "oom") not in found
    finally:
        gen.close()
