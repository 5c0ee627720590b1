"""Helpers the tests share: free ports, waiting on conditions, running kubepulse."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

KUBEPULSE = [sys.executable, "-m", "kubepulse"]


def _kubectl_1_32() -> str:
    """The kubectl 1.32 binary the end-to-end tests compare against.

    Some installs put a dispatcher on PATH that picks a kubectl by the server's
    version; its pinned sibling kubectl.1.32 is taken where it exists, so the
    comparisons do not depend on what a test server says its version is.
    """
    found = shutil.which("kubectl")
    if found is None:
        return "kubectl"  # the tests that need it fail with "not found", loudly
    pinned = Path(os.path.realpath(found)).with_name("kubectl.1.32")
    return str(pinned) if pinned.exists() else found


KUBECTL = _kubectl_1_32()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """Poll condition until it returns something truthy, or fail after timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # the condition may fail until the thing is up
            last_error = err
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}: {last_error}")


@dataclass
class Running:
    proc: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_kubepulse(
    args: list[str], log_path: Path, command: Sequence[str] = KUBEPULSE
) -> Iterator[Running]:
    """Run `kubepulse ARGS` in the background; stop it with SIGTERM afterwards.

    `command` is how kubepulse is started: this checkout's, or the image's (tests/release).
    """
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*command, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = Running(proc, log_path)
    try:
        yield running
    finally:
        stop_process(proc)


def wait_serving(running: Running, port: int, command: str = "server") -> None:
    """Wait for `kubepulse COMMAND: https://127.0.0.1:PORT`; fail with its log if it exits."""

    def serving() -> bool:
        if running.proc.poll() is not None:
            raise AssertionError(f"{command} exited: {running.log()}")
        return f"kubepulse {command}: https://127.0.0.1:{port}" in running.log()

    wait_for(serving, what=f"kubepulse {command} to serve")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, and SIGKILL if it has not ended within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fill(disk: Path) -> Path:
    """Fill a (small, test-made) file system to its last byte; returns the file that
    holds it. Unbuffered writes, so that nothing is left to fail when it is closed."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@contextmanager
def small_disk(mount: Path, size: str = "20m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `mount` (root), owner-only, unmounted after."""
    mount.mkdir(exist_ok=True)
    options = f"size={size},mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def s_client(port: int, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *options],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )


def negotiated(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Protocol, cipher and peer CN of a handshake that succeeded; {} otherwise."""
    text = done.stdout + done.stderr
    if "CONNECTION ESTABLISHED" not in text:
        return {}
    found = dict(re.findall(r"^(Protocol version|Ciphersuite): (\S+)", text, re.M))
    cn = re.search(r"^Peer certificate: .*CN\s*=\s*([\w.-]+)", text, re.M)
    return {**found, "CN": cn.group(1) if cn else ""}
