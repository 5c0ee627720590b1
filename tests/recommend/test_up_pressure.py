"""End to end on real cgroups: `kubepulse up` reads the agent's OOM and throttling
counters into its history as they rise, and `kubepulse recommend` over that file (host
mode, no cluster) flags the container killed for memory and the one held to a tenth of
a core, with the counts the kernel kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse.agent import cgroups
from kubepulse.history.snapshot import HistorySnapshot
from kubepulse.model import CgroupCounters
from tests.agent.test_agent_real_cgroups import POD_NAME
from tests.agent.test_counters_real_cgroups import Pod, pod_under_pressure, run_hog
from tests.e2e.test_kubectl_up import start_up
from tests.support import wait_for

NAMESPACE = "default"


@pytest.fixture
def pressed_later() -> Iterator[Pod]:
    """The OOM kill waits for the test (run_hog), after up has its baseline."""
    with pod_under_pressure() as pod:
        yield pod


def recorded(db: Path) -> dict[str, CgroupCounters]:
    """What the history holds of the pod's counters' rises, by container."""
    if not db.exists():
        return {}
    snapshot = HistorySnapshot(db)
    try:
        found = snapshot.pressure(0, time.time() + 3600)
    finally:
        snapshot.close()
    return {c: v for (ns, pod, c), v in found.items() if (ns, pod) == (NAMESPACE, POD_NAME)}


def recommend(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubepulse recommend` in host mode (no kubeconfig to find a cluster in)."""
    return subprocess.run(
        [sys.executable, "-m", "kubepulse", "recommend", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
    )


def test_recommend_over_ups_history_flags_the_oom_kill_and_the_throttling(
    tmp_path: Path, pressed_later: Pod
) -> None:
    state = tmp_path / "state"
    db = state / "history.db"
    gen = start_up(state, tmp_path / "up.log", "--metric-resolution", "2s")
    next(gen)
    try:
        # A rise of the burner's periods in the file: up has its baseline of the pod.
        wait_for(lambda: recorded(db).get("throttled"), 60, "the throttling in the history")
        assert run_hog(pressed_later) == -9, "the hog was not killed for memory"

        def oom_recorded() -> int:
            return recorded(db).get("oom", CgroupCounters(0, 0, 0)).oom_events

        wait_for(oom_recorded, 60, "the OOM kill in the history")
    finally:
        gen.close()
    kernel = cgroups.read_counters(pressed_later.hierarchy, f"{pressed_later.rel}/throttled")
    assert kernel is not None
    found = recorded(db)
    # Rises since up's first reading: at most what the kernel counted in all.
    assert found["throttled"].cpu_cfs_periods <= kernel.cpu_cfs_periods
    assert found["throttled"].oom_events == 0
    assert found["oom"] == CgroupCounters(1, 0, 0)

    args = ["--history", str(db), "-n", NAMESPACE, "--history-duration", "3m"]
    out = recommend(tmp_path, *args, "--points-required", "1", "-o", "json")
    assert out.returncode == 0 and out.stdout, out.stderr
    items = {
        i["container"]: i
        for i in json.loads(out.stdout)["items"]
        if i["workload"]["name"] == POD_NAME
    }
    assert items["oom"]["oomKilled"] is True and items["oom"]["oomEvents"] == 1
    assert items["oom"]["cpuThrottled"] is False
    # Under a tenth of a core, a burner is throttled in nearly every period.
    assert items["throttled"]["cpuThrottled"] is True
    assert items["throttled"]["cpuThrottledShare"] >= 0.8
    assert items["throttled"]["oomKilled"] is False
    table = recommend(tmp_path, *args, "--points-required", "1")
    assert table.returncode == 0, table.stderr
    lines = {line.split()[2]: line for line in table.stdout.splitlines()[1:] if POD_NAME in line}
    assert lines["oom"].rstrip().endswith("OOMKilled: memory not lowered"), table.stdout
    assert "CPU not lowered" in lines["throttled"], table.stdout
