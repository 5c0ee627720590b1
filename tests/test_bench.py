"""The benchmarks never hang: a wait that cannot be met ends the run with exit status 2,
the condition it waited for and what was measured so far (bench/sim/process.py Missed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_a_server_scale_run_past_its_budget_says_what_it_waited_for_and_exits_2() -> None:
    """A budget of 2 s cannot hold the warm-up's scrape ticks (15 s each): the run stops
    there, well within the subprocess's own deadline, instead of waiting on."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.server_scale",
            "--nodes",
            "5",
            "--budget",
            "2",
            "--kubelet-port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "deadline missed: the whole run within its budget" in done.stdout
    assert "measured so far" in done.stdout
    assert "Traceback" not in done.stderr
