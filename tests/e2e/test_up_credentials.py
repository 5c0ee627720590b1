"""`kubepulse up` with kubeconfigs as managed clusters hand them out: an exec credential
plugin that gives up's token, and impersonation, by kubepulse and kubectl 1.32 alike."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agent.test_bootstrap import within
from tests.dashboard.test_dashboard_command import get_json, open_browser, sign_in, start_dashboard
from tests.e2e.test_kubectl_up import HOST, Up, start_up, table
from tests.kube.plugins.cluster import PLUGIN, kubectl, kubepulse
from tests.support import wait_for

ADMIN_TOKEN = "up-admin-token-for-plugin-tests-0001"
VIEWER_TOKEN = "up-viewer-token-for-plugin-tests-0002"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up-credentials")
    state = tmp / "state"
    state.mkdir(mode=0o700)
    # The first token is up's admin (system:masters); the second one is not.
    tokens = state / "tokens.csv"
    tokens.write_text(
        f'{ADMIN_TOKEN},kubepulse-admin,kubepulse-admin,"system:masters"\n'
        f"{VIEWER_TOKEN},viewer,viewer-uid\n"
    )
    tokens.chmod(0o600)
    yield from start_up(state, tmp / "up.log")


def with_user(up: Up, tmp: Path, user: dict[str, object]) -> Path:
    doc = yaml.safe_load(up.kubeconfig.read_text())
    doc["users"][0]["user"] = user
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_top_signs_in_to_up_with_an_exec_plugin_as_kubectl_does(up: Up, tmp_path: Path) -> None:
    tokens, log = tmp_path / "tokens", tmp_path / "runs.jsonl"
    tokens.write_text(ADMIN_TOKEN + "\n")
    section = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(PLUGIN), "--token-file", str(tokens), "--log", str(log)],
        "interactiveMode": "Never",
        "provideClusterInfo": True,
    }
    config = with_user(up, tmp_path, {"exec": section})
    ours = kubepulse(config, "top", "nodes")
    theirs = kubectl(config, "top", "nodes")
    # The usage moves between the two runs; everything else is the same.
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (0, "")
    assert table(ours.stdout)[0] == table(theirs.stdout)[0]
    assert [r[0] for r in table(ours.stdout)[1]] == [r[0] for r in table(theirs.stdout)[1]]
    assert HOST in ours.stdout
    runs = [yaml.safe_load(line) for line in log.read_text().splitlines()]
    assert len(runs) == 2  # one each
    assert runs[0]["info"] == runs[1]["info"]
    cluster = runs[0]["info"]["spec"]["cluster"]
    assert cluster["server"] == f"https://127.0.0.1:{up.port}"
    ca = (up.state_dir / "pki" / "ca.crt").read_bytes()
    assert base64.b64decode(cluster["certificate-authority-data"]) == ca


def whoami(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return kubectl(config, "auth", "whoami", "-o", "jsonpath={.status.userInfo}", *args)


def test_up_lets_its_admin_impersonate_and_nobody_else(up: Up, tmp_path: Path) -> None:
    admin = with_user(up, tmp_path, {"token": ADMIN_TOKEN})
    seen = whoami(admin, "--as", "bob", "--as-group", "devs")
    assert yaml.safe_load(seen.stdout) == {
        "username": "bob",
        "groups": ["devs", "system:authenticated"],
    }
    assert kubepulse(admin, "top", "nodes", "--as", "bob", "--as-group", "devs").returncode == 0
    viewer = with_user(up, tmp_path, {"token": VIEWER_TOKEN})
    ours = kubepulse(viewer, "top", "nodes", "--as", "bob")
    theirs = kubectl(viewer, "top", "nodes", "--as", "bob")
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert ours.stderr.startswith(
        'Error from server (Forbidden): users "bob" is forbidden: User "viewer" cannot '
        "impersonate resource"
    )
    assert theirs.stderr.startswith("Error from server (Forbidden)")
    # The viewer reads the metrics as itself.
    assert kubepulse(viewer, "top", "nodes").returncode == 0


async def test_the_dashboard_polls_up_with_an_expiring_plugin_token_without_a_restart(
    up: Up, tmp_path: Path
) -> None:
    tokens, log = tmp_path / "tokens", tmp_path / "runs.jsonl"
    tokens.write_text(ADMIN_TOKEN + "\n")
    section = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(PLUGIN), "--token-file", str(tokens), "--log", str(log), "--expires-in", "2"],
        "interactiveMode": "Never",
    }
    config = with_user(up, tmp_path, {"exec": section})

    def runs() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    with contextmanager(start_dashboard)(up, tmp_path, "--kubeconfig", str(config)) as dashboard:
        pid = dashboard.running.proc.pid
        # Polled each second with a token that lasts two: the plugin runs again and again.
        wait_for(lambda: runs() >= 3, timeout=30, what="the plugin run after expiries")
        async with open_browser(dashboard) as browser:
            assert (await sign_in(browser, ADMIN_TOKEN)).status == 303
            after = time.time() - 1

            async def fresh_points() -> list[Any] | None:
                detail = await get_json(browser, f"/dashboard/api/nodes/{HOST}?range=15m")
                return [p for p in detail["series"] if p[0] >= after] or None

            await within(fresh_points, "points polled after the plugin ran again", timeout=30)
        assert dashboard.running.proc.pid == pid and dashboard.running.proc.poll() is None
        assert ADMIN_TOKEN not in dashboard.running.log()
