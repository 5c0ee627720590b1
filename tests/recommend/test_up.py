"""End to end: `kubepulse up` records a process tree that burns a known share of a core
and holds a known memory; `kubepulse recommend` over up's history (host mode: no
cluster) recommends that CPU within 15% and that memory plus 15% within 5%."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse.agent.procfs import CLOCK_TICKS
from tests.agent.toplevel import TopLevel
from tests.e2e.test_kubectl_up import start_up
from tests.recommend.support import MIB
from tests.support import wait_for

BURNER = "rec-burner"
SHARE = 0.25
"""Of a core: 25 ms of CPU in every 100 ms."""
HELD = 200 * MIB

# A top-level process tree (tests/agent/toplevel.py), so a pod of its own
# (BURNER-<pid> in namespace host). It touches every page of its block once (no copy:
# the peak is the block), then burns SHARE of each 100 ms period on a fixed schedule,
# so that a busy machine delays its bursts but not its rate, until its stdin closes.
CODE = (
    "import select, sys, time\n"
    "with open('/proc/self/comm', 'w') as comm:\n"
    f"    comm.write({BURNER!r})\n"
    f"block = bytearray({HELD})\n"
    "for i in range(0, len(block), 4096):\n"
    "    block[i] = 1\n"
    "print('holding', flush=True)\n"
    "period = time.monotonic()\n"
    "while not select.select([sys.stdin], [], [], 0)[0]:\n"
    "    spent = time.process_time()\n"
    f"    while time.process_time() - spent < {SHARE} * 0.1:\n"
    "        pass\n"
    "    period += 0.1\n"
    "    time.sleep(max(0.0, period - time.monotonic()))  # the load's rhythm\n"
)


@pytest.fixture
def burner() -> Iterator[int]:
    tree = TopLevel(CODE)
    try:
        assert tree.line(timeout=30) == "holding"
        yield tree.pid
    finally:
        tree.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no Pss in smaps_rollup")


def test_recommend_over_ups_history_finds_the_burners_cpu_and_memory(
    tmp_path: Path, burner: int
) -> None:
    pod = f"{BURNER}-{burner}"
    state = tmp_path / "state"
    gen = start_up(state, tmp_path / "up.log", "--metric-resolution", "2s")
    up = next(gen)
    try:
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/host/pods/{pod}"
        seen: set[str] = set()
        began: tuple[float, float] | None = None

        def scrapes() -> bool:
            nonlocal began
            raw = up.kubectl("get", "--raw", path, check=False)
            if raw.returncode == 0:
                seen.add(json.loads(raw.stdout)["timestamp"])
                began = began or (time.monotonic(), cpu_seconds(burner))
            return len(seen) >= 30

        wait_for(scrapes, timeout=150, what=f"30 scrapes of pod host/{pod}")
        assert began is not None
        cores = (cpu_seconds(burner) - began[1]) / (time.monotonic() - began[0])
        held = pss_bytes(burner)
    finally:
        gen.close()  # up seals what it holds in memory into the file as it stops

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubepulse",
            "recommend",
            "--history",
            str(state / "history.db"),
            "-n",
            "host",
            "--history-duration",
            "3m",
            "--points-required",
            "5",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
    )
    assert out.returncode == 0 and out.stdout, out.stderr
    rows = [i for i in json.loads(out.stdout)["items"] if i["workload"]["name"] == pod]
    assert len(rows) == 1, [i["workload"]["name"] for i in json.loads(out.stdout)["items"]]
    rec = rows[0]["recommended"]
    assert rec is not None, rows[0]["reason"]
    assert rows[0]["usage"]["points"] >= 20
    # The strategy's CPU (the 95th percentile) within 15% of what /proc says it burned.
    assert abs(rec["cpuRequestMillicores"] - cores * 1000) <= 0.15 * cores * 1000, (rec, cores)
    # Memory: its peak working set (the block and the interpreter) plus 15%.
    assert abs(rec["memoryRequestBytes"] - held * 1.15) <= 0.05 * held * 1.15, (rec, held)
    assert rec["memoryLimitBytes"] == rec["memoryRequestBytes"]
    assert rec["cpuLimitMillicores"] is None
