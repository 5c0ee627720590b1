"""The live view's bytes on a terminal: after the first frame, a refresh rewrites only
what changed and never clears the screen, which is what makes it free of flicker."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

from tests.support import KUBEPULSE
from tests.top.conftest import Cluster

CLEAR = (b"\x1b[2J", b"\x1b[H\x1b[J", b"\x1b[J")  # erase display, home + erase below
# The cursor sent to row 1, where the title's clock ticks (or home, for a full redraw).
TITLE_ROW = (b"\x1b[1;", b"\x1b[H")


class Terminal:
    """A pseudo-terminal of 80 x 24 running one command, its output kept as bytes."""

    def __init__(self, argv: list[str]) -> None:
        self.main, side = pty.openpty()
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        self.proc = subprocess.Popen(
            argv, stdin=side, stdout=side, stderr=side, env=env, start_new_session=True
        )
        os.close(side)
        self.output = b""

    def read_until(self, done: object, timeout: float = 20.0) -> bytes:
        """Read until done(output) holds, or fail at the deadline."""
        deadline = time.monotonic() + timeout
        while not done(self.output):  # type: ignore[operator]
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; the terminal shows {self.output[-400:]!r}"
            ready, _, _ = select.select([self.main], [], [], left)
            if ready:
                try:
                    self.output += os.read(self.main, 65536)
                except OSError:  # the command has gone and the terminal with it
                    break
        return self.output

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        os.close(self.main)


def test_refreshes_rewrite_only_what_changed(cluster: Cluster) -> None:
    argv = [*KUBEPULSE, "top", "pods", "-A", "--watch", "--interval", "0.3"]
    term = Terminal([*argv, "--kubeconfig", str(cluster.kubeconfig)])
    try:
        term.read_until(lambda out: b"web-1" in out)
        first = len(term.output)
        # Wait for the title's clock to tick three times: several refreshes.
        term.read_until(lambda out: sum(out[first:].count(at) for at in TITLE_ROW) >= 3)
        refreshes = term.output[first:]
        for sequence in CLEAR:
            assert sequence not in refreshes, f"a refresh cleared the screen with {sequence!r}"
        # Every refresh redraws the clock and little else: far less than a frame each.
        assert len(refreshes) < first, (len(refreshes), first)
        os.write(term.main, b"q")
        assert term.proc.wait(20) == 0
    finally:
        term.close()
