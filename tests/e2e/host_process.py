"""A process tree of its own on this host, which `up` shows as a pod of namespace host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def detached(name: str, body: str) -> str:
    """Python code that detaches itself (double fork, new session) so that it is a
    top-level process tree whatever the tree that runs the tests is, prints its pid,
    names itself (its comm) so that its pod is NAME-<pid>, then runs `body`."""
    return (
        "import os, sys, time\n"
        "pid = os.fork()\n"
        "if pid:\n"
        "    print(pid, flush=True)\n"
        "    os._exit(0)\n"
        "os.setsid()\n"
        "with open('/proc/self/comm', 'w') as comm:\n"
        f"    comm.write({name!r})\n"
        "null = os.open(os.devnull, os.O_RDWR)\n"
        "for fd in (0, 1, 2):\n"
        "    os.dup2(null, fd)\n"
        f"{body}"
    )


def start(name: str, body: str = "while True:\n    time.sleep(3600)\n") -> int:
    code = detached(name, body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    return int(out.stdout.strip())


def stop(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextmanager
def host_process(name: str, body: str = "while True:\n    time.sleep(3600)\n") -> Iterator[int]:
    """The process's pid; its pod is f"{name}-{pid}"."""
    pid = start(name, body)
    try:
        yield pid
    finally:
        stop(pid)
