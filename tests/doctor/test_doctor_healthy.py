"""doctor against a healthy `kubepulse up` (its own API, agent and metrics on loopback),
found through --state-dir, as a subprocess: report, exit code and -o json."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support import KUBEPULSE, run_kubepulse, wait_for


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KUBEPULSE, "doctor", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_a_healthy_kubepulse_up_passes_every_check(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = ["up", "--state-dir", str(state), "--port", "0", "--agent-port", "0"]
    with run_kubepulse(up, tmp_path / "up.log") as running:
        wait_for(lambda: "kubepulse is up" in running.log(), what="kubepulse up")

        def settled() -> dict[str, Any] | None:
            done = doctor("--state-dir", str(state), "-o", "json")
            doc: dict[str, Any] = json.loads(done.stdout)
            # Metrics come after two samples, about a second after the API listens. Pods
            # are this host's process trees: other tests' processes come and go, so a
            # pod-metrics warning is this host's churn, not a fault.
            warned = {f["check"] for f in doc["findings"] if f["status"] == "warn"}
            return doc if done.returncode == 0 and warned <= {"pod-metrics"} else None

        doc = wait_for(settled, what="doctor to find everything healthy")
        checks = {(f["subject"], f["check"]) for f in doc["findings"]}
        assert doc["ok"] is True and doc["summary"]["fail"] == 0
        assert {("cluster", "api"), ("metrics.k8s.io", "metrics-api")} <= checks
        assert {check for subject, check in checks if subject.startswith("node/")} >= {
            "address",
            "port",
            "certificate",
            "clock",
        }
        # No kubeconfig given: the state dir is used even with HOME elsewhere.
        env = {**os.environ, "KUBECONFIG": ""}
        text = doctor("--state-dir", str(state), env=env)
        assert text.returncode == 0, text.stdout + text.stderr
        assert "✗" not in text.stdout and "  ✓ certificate: serving certificate from" in text.stdout
        assert text.stdout.rstrip().endswith(" 0 failure(s)")
        token = (state / "tokens.csv").read_text().split(",")[0]
        assert token not in text.stdout and token not in text.stderr

    # The same state dir with `up` stopped: the API server is named as unreachable.
    stopped = doctor("--state-dir", str(state))
    assert stopped.returncode == 1
    assert "✗ api: cannot reach the API server" in stopped.stdout
