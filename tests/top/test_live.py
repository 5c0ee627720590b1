"""The live view, driven headless in tmux: it starts, sorts, filters, quits cleanly."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import KUBEPULSE, wait_for
from tests.top.conftest import Cluster


class Tmux:
    """One tmux server per test, on its own socket.

    With the shared default server, a test that closes the last session makes
    the server exit while the next test's new-session is connecting to it, and
    that one fails with "server exited unexpectedly".
    """

    def __init__(self) -> None:
        self.session = f"kp-{uuid.uuid4().hex[:8]}"
        self.home = Path(tempfile.mkdtemp(prefix="kp-tmux-"))  # short: sockets have a length limit
        self.run(
            [
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                "80",
                "-y",
                "24",
                "bash --norc",
            ],
        )

    def run(self, args: list[str], capture: bool = False) -> str:
        return subprocess.run(
            ["tmux", "-S", str(self.home / "socket"), *args],
            capture_output=capture,
            text=True,
            check=True,
        ).stdout

    def send(self, *keys: str) -> None:
        self.run(["send-keys", "-t", self.session, *keys])

    def screen(self) -> str:
        return self.run(["capture-pane", "-p", "-t", self.session], capture=True)

    def wait_until(self, test: Callable[[str], bool], what: str) -> str:
        def check() -> str | None:
            screen = self.screen()
            return screen if test(screen) else None

        return wait_for(check, what=what)

    def wait_for_text(self, text: str, what: str = "") -> str:
        return self.wait_until(lambda s: text in s, what or text)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.home / "socket"), "kill-server"], check=False)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed; `make test` installs it")
    t = Tmux()
    yield t
    t.close()


def start(tmux: Tmux, kubeconfig: Path, *args: str) -> None:
    command = [
        *KUBEPULSE,
        "top",
        *args,
        "--watch",
        "--interval",
        "0.5",
        "--kubeconfig",
        str(kubeconfig),
    ]
    tmux.send(shlex.join(command), "Enter")


def rows(screen: str) -> list[str]:
    lines = screen.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NAMESPACE"))
    return [line.split()[1] for line in lines[header + 1 :] if line.strip()]


def test_live_view_sorts_filters_and_quits_cleanly(tmux: Tmux, cluster: Cluster) -> None:
    start(tmux, cluster.kubeconfig, "pods", "-A")
    screen = tmux.wait_for_text("web-1", "the pods to appear")
    assert all(len(line) <= 80 for line in screen.splitlines())
    assert "CPU 360m" in screen  # the cluster total on top: 350m + 10m, as kubectl rounds
    # Default: by CPU, busiest first.
    assert rows(screen) == ["web-1", "coredns-7db6d8ff4d-x2x9p"]
    tmux.send("m")
    screen = tmux.wait_until(lambda s: "MEMORYv" in s, "sorted by memory")
    assert rows(screen) == ["coredns-7db6d8ff4d-x2x9p", "web-1"]
    tmux.send("m")  # again: reversed
    screen = tmux.wait_until(lambda s: "MEMORY^" in s, "reversed")
    assert rows(screen) == ["web-1", "coredns-7db6d8ff4d-x2x9p"]
    tmux.send("/", "c", "o", "r", "e", "Enter")
    screen = tmux.wait_until(lambda s: "filter: core" in s and "web-1" not in s, "the filter")
    assert rows(screen) == ["coredns-7db6d8ff4d-x2x9p"]
    # Sparklines grow as samples come in.
    tmux.wait_until(lambda s: "▁▁▁" in s or "███" in s, "a sparkline of three samples")
    tmux.send("q")
    marker = uuid.uuid4().hex[:6]
    tmux.send(f"echo restored-{marker}", "Enter")
    # The shell echoes what is typed and runs it: the terminal is back in its old mode.
    screen = tmux.wait_for_text(f"\nrestored-{marker}", "the shell to answer after q")
    assert "CPU HISTORY" not in screen  # the alternate screen is gone


def test_ctrl_c_quits_too(tmux: Tmux, cluster: Cluster) -> None:
    start(tmux, cluster.kubeconfig, "nodes")
    screen = tmux.wait_for_text("node-a")
    assert "of 15200m" in screen  # allocatable of the nodes summed: 4 x 3800m
    tmux.send("C-c")
    tmux.send("echo done-$((40+2))", "Enter")
    tmux.wait_for_text("\ndone-42")


def test_server_gone_is_shown_and_retried(tmux: Tmux, tmp_path: Path, cluster: Cluster) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(cluster.kubeconfig.read_text().replace(f":{cluster.port}", ":1"))
    start(tmux, config, "pods", "-A")
    screen = tmux.wait_for_text("retrying", "the retry notice")
    assert "127.0.0.1:1 was refused" in screen
    tmux.send("q")
