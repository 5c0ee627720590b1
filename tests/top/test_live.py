"""The live view, driven headless in tmux: it starts, sorts, filters, retries, quits cleanly."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubepulse.cli.main import build_parser
from tests.api.conftest import COREDNS, KI, MI
from tests.support import KUBEPULSE, wait_for
from tests.top.conftest import Cluster, Restartable, malformed_app

FAST = ("--watch", "--interval", "0.5")


class Tmux:
    """One tmux server per test, on its own socket.

    With the shared default server, a test that closes the last session makes
    the server exit while the next test's new-session is connecting to it, and
    that one fails with "server exited unexpectedly".
    """

    def __init__(self, width: int = 80) -> None:
        self.session = f"kp-{uuid.uuid4().hex[:8]}"
        self.home = Path(tempfile.mkdtemp(prefix="kp-tmux-"))  # short: sockets have a length limit
        size = ["-x", str(width), "-y", "24"]
        self.run(["new-session", "-d", "-s", self.session, *size, "bash --norc"])

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

    def display(self, fmt: str) -> str:
        """A tmux format of the pane, e.g. #{alternate_on}."""
        return self.run(["display", "-p", "-t", self.session, fmt], capture=True).strip()

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


def start(tmux: Tmux, kubeconfig: Path, *args: str, watch: tuple[str, ...] = FAST) -> None:
    command = [*KUBEPULSE, "top", *args, *watch, "--kubeconfig", str(kubeconfig)]
    tmux.send(shlex.join(command), "Enter")


def rows(screen: str) -> list[str]:
    """The names in the table, top to bottom (pods have a namespace column first)."""
    lines = screen.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    column = 1 if lines[header].startswith("NAMESPACE") else 0
    return [line.split()[column] for line in lines[header + 1 :] if line.strip()]


def header(screen: str) -> str:
    return next(line for line in screen.splitlines() if line.startswith("NAME"))


# What tests/api/conftest stores: CPU as kubectl rounds it, memory as working sets.
POD_CPU_TOTAL = 10 + 350  # coredns, web-1 (nginx 100m + log-shipper 250m)
POD_MEMORY_TOTAL = 22244 * KI + 1 * MI + 2 * MI  # coredns, web-1's nginx and log-shipper
NODE_CPU_TOTAL = 500 + 488 + 2000  # node-a, node-b, node-d; node-c has no metrics
NODE_MEMORY_TOTAL = 1 * MI + 732212 * KI + 1024 * MI
NODE_ALLOCATABLE = 4 * 3800, 4 * 15223808 * KI  # all four nodes


def test_live_view_starts_with_totals_rows_and_a_sparkline(tmux: Tmux, cluster: Cluster) -> None:
    start(tmux, cluster.kubeconfig, "pods", "-A")
    screen = tmux.wait_for_text("web-1", "the pods to appear")
    assert f"CPU {POD_CPU_TOTAL}m   MEM {POD_MEMORY_TOTAL // MI}Mi" in screen
    assert header(screen).split() == ["NAMESPACE", "NAME", "CPUv", "MEMORY", "CPU", "5m"]
    assert rows(screen) == ["web-1", COREDNS]  # by CPU, busiest first
    # The newest time slice of the sparkline is filled; the older ones wait for samples.
    web = next(line for line in screen.splitlines() if " web-1 " in line)
    assert web.rstrip().endswith("350m       3Mi                █")


@pytest.mark.parametrize("width", [80, 120])
def test_columns_reach_the_pane_edge_at_its_width(cluster: Cluster, width: int) -> None:
    pane = Tmux(width)
    try:
        start(pane, cluster.kubeconfig, "pods", "-A")
        screen = pane.wait_for_text("web-1", "the pods to appear")
        # The history is the last column, ending one short of the edge curses cannot fill.
        assert header(screen).index("CPU 5m") == width - 1 - 16
        web = next(line for line in screen.splitlines() if " web-1 " in line)
        assert web.rstrip().index("█") == width - 2
    finally:
        pane.close()


# One session, one key after the other: (key, the header's arrow, the rows).
POD_SORTS = [
    ("m", "MEMORYv", [COREDNS, "web-1"]),
    ("m", "MEMORY^", ["web-1", COREDNS]),
    ("n", "NAMEv", [COREDNS, "web-1"]),
    ("n", "NAME^", ["web-1", COREDNS]),
    ("s", "NAMESPACEv", ["web-1", COREDNS]),  # default before kube-system
    ("s", "NAMESPACE^", [COREDNS, "web-1"]),
    ("c", "CPUv", ["web-1", COREDNS]),
    ("c", "CPU^", [COREDNS, "web-1"]),
]


def test_keys_sort_the_pods_by_each_column(tmux: Tmux, cluster: Cluster) -> None:
    start(tmux, cluster.kubeconfig, "pods", "-A")
    tmux.wait_for_text("web-1", "the pods to appear")
    for key, arrow, expected in POD_SORTS:
        tmux.send(key)
        # The header and the rows are drawn in one refresh, but a capture can fall
        # between them: wait (with the pane's deadline) for both, not the header alone.
        screen = tmux.wait_until(
            lambda s, a=arrow, e=expected: a in header(s) and rows(s) == e,
            f"{key}: {arrow} over the rows {expected}",
        )
        assert rows(screen) == expected, key


NODE_SORTS = [
    ("m", "MEMORYv", ["node-d", "node-b", "node-a"]),
    ("n", "NAMEv", ["node-a", "node-b", "node-d"]),
    ("n", "NAME^", ["node-d", "node-b", "node-a"]),
    ("c", "CPUv", ["node-d", "node-a", "node-b"]),
]


def test_keys_sort_the_nodes_and_totals_show_their_allocatable(
    tmux: Tmux, cluster: Cluster
) -> None:
    start(tmux, cluster.kubeconfig, "nodes")
    screen = tmux.wait_for_text("node-a")
    cpu, memory = NODE_ALLOCATABLE
    assert f"CPU {NODE_CPU_TOTAL}m of {cpu}m" in screen
    assert f"MEM {NODE_MEMORY_TOTAL // MI}Mi of {memory // MI}Mi" in screen
    assert header(screen).split() == ["NAME", "CPUv", "MEMORY", "CPU", "5m"]
    for key, arrow, expected in NODE_SORTS:
        tmux.send(key)
        # The header and the rows are drawn in one refresh, but a capture can fall
        # between them: wait (with the pane's deadline) for both, not the header alone.
        screen = tmux.wait_until(
            lambda s, a=arrow, e=expected: a in header(s) and rows(s) == e,
            f"{key}: {arrow} over the rows {expected}",
        )
        assert rows(screen) == expected, key


def test_filter_keeps_matching_names_and_esc_clears_it(tmux: Tmux, cluster: Cluster) -> None:
    start(tmux, cluster.kubeconfig, "pods", "-A")
    tmux.wait_for_text("web-1", "the pods to appear")
    tmux.send("/", "c", "o", "r", "e", "Enter")
    screen = tmux.wait_until(lambda s: "filter: core " in s and "web-1" not in s, "the filter")
    assert rows(screen) == [COREDNS]
    assert "1 of 2 shown" in screen
    tmux.send("Escape")
    screen = tmux.wait_until(lambda s: "web-1" in s, "Esc to clear the filter")
    assert "filter:" not in screen
    assert rows(screen) == ["web-1", COREDNS]
    # Esc while typing drops what was typed.
    tmux.send("/", "w", "e")
    tmux.wait_for_text("filter: we_")
    tmux.send("Escape")
    screen = tmux.wait_until(lambda s: "filter:" not in s, "Esc while typing")
    assert rows(screen) == ["web-1", COREDNS]


def test_w_is_watch_every_two_seconds_by_default(tmux: Tmux, cluster: Cluster) -> None:
    parser = build_parser("top")
    args = parser.parse_args(["top", "pods", "-w"])
    assert (args.watch, args.interval) == (True, 2.0)
    start(tmux, cluster.kubeconfig, "pods", "-A", watch=("-w",))
    screen = tmux.wait_for_text("web-1", "the pods to appear")
    assert "every 2s" in screen


def saved_tty(tmux: Tmux, path: Path) -> str:
    """`stty -g` run in the pane's shell: every terminal setting, in one line."""
    tmux.send(f"stty -g > {shlex.quote(str(path))}", "Enter")
    return wait_for(lambda: path.exists() and path.read_text().strip(), what=f"{path.name}")


@pytest.mark.parametrize("quit_key", ["q", "C-c"])
def test_quitting_leaves_the_terminal_as_it_was(
    tmux: Tmux, cluster: Cluster, tmp_path: Path, quit_key: str
) -> None:
    before = saved_tty(tmux, tmp_path / "before")
    assert tmux.display("#{cursor_flag} #{alternate_on}") == "1 0"
    start(tmux, cluster.kubeconfig, "pods", "-A")
    tmux.wait_for_text("web-1", "the pods to appear")
    # While it runs: the alternate screen, no cursor.
    assert tmux.display("#{cursor_flag} #{alternate_on}") == "0 1"
    tmux.send(quit_key)
    wait_for(lambda: tmux.display("#{alternate_on}") == "0", what="the alternate screen to end")
    assert saved_tty(tmux, tmp_path / "after") == before
    assert tmux.display("#{cursor_flag} #{alternate_on}") == "1 0"
    screen = tmux.screen()
    assert "Traceback" not in screen
    assert "CPU 5m" not in screen  # the shell's own screen is back


def test_server_gone_is_shown_and_retried_until_it_is_back(
    tmux: Tmux, restartable: Restartable
) -> None:
    restartable.start()
    start(tmux, restartable.kubeconfig, "pods", "-A")
    tmux.wait_for_text("web-1", "the pods to appear")
    restartable.stop()
    screen = tmux.wait_for_text("retrying every 0.5s", "the retry notice")
    assert f"127.0.0.1:{restartable.port}" in screen
    restartable.start()
    screen = tmux.wait_until(lambda s: "retrying" not in s, "the notice to go")
    assert rows(screen) == ["web-1", COREDNS]
    assert "Traceback" not in screen


def test_unexpected_answer_is_shown_and_retried(tmux: Tmux, restartable: Restartable) -> None:
    restartable.start(malformed_app())
    start(tmux, restartable.kubeconfig, "pods", "-A")
    tmux.wait_for_text(
        "retrying every 0.5s: the answer of /apis/metrics.k8s.io/v1beta1/pods is not a"
    )
    restartable.stop()
    restartable.start()
    screen = tmux.wait_for_text("web-1", "the pods once the answers are whole again")
    assert "retrying" not in screen
    assert "Traceback" not in screen
