"""The processes the benchmarks start, wait for, read and stop: the kubelet simulator
(`python -m bench.sim.kubelets`) and `kubepulse server` as subprocesses, and what
several benchmarks need around them (a free port, the descriptor limit, CPU time)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil

STOP_TIMEOUT_S = 10.0
T = TypeVar("T")

_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)", re.MULTILINE)


class BenchError(Exception):
    """The benchmark could not run, or something answered other than expected."""


class Missed(BenchError):
    """A wait reached its deadline: `condition` says what did not happen in time.

    Every wait of a benchmark has a deadline and raises this when it passes, so that a
    run on a busy machine ends (exit 2) saying what it waited for, rather than hanging.
    """

    def __init__(self, condition: str, waited: float, detail: str = "") -> None:
        self.condition = condition
        self.waited = waited
        super().__init__(
            f"deadline missed: {condition} (waited {waited:.0f}s)"
            + (f"; {detail}" if detail else "")
        )


def simulator_deadline(nodes: int) -> float:
    """Seconds the simulator may take to start: certificates and templates per node."""
    return 60.0 + 0.05 * nodes


def raise_fd_limit() -> None:
    """5,000 kubelet connections need 5,000+ descriptors; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an operator would stop it; SIGKILL after STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(process: psutil.Process) -> float:
    """utime + stime of every thread of the process (its children not included)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def family(process: psutil.Process) -> list[psutil.Process]:
    """A process and its children (the server's: the one that parses the targets file
    at start)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return [process, *process.children(recursive=True)]
    return [process]


def family_sum(process: psutil.Process, measure: Callable[[psutil.Process], float]) -> float:
    """A measure summed over a process and its children (one may end meanwhile)."""
    total = 0.0
    for member in family(process):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += measure(member)
    return total


def add_kubelet_port_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubelet-port",
        type=int,
        default=None,
        help="the simulated kubelets' port (default 10250), when another run holds it",
    )


def run_bounded(main: Callable[[], Coroutine[Any, Any, T]], budget: float, what: str) -> T:
    """asyncio.run(main()) within `budget` seconds, else Missed naming `what`."""

    async def bounded() -> T:
        try:
            async with asyncio.timeout(budget):
                return await main()
        except TimeoutError:
            raise Missed(what, budget) from None

    return asyncio.run(bounded())


# -- the kubelet simulator --------------------------------------------------------------


@dataclass(frozen=True)
class Simulator:
    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    log_path: Path

    @property
    def control(self) -> str:
        return str(self.info["control"])


def start_simulator(
    nodes: int,
    workdir: Path,
    pod_objects: bool,
    targets_format: str,
    port: int | None = None,
    shape: str = "sim",
    deadline_s: float | None = None,
) -> Simulator:
    """The kubelet simulator, serving; `port` when another benchmark holds the default.

    Waits at most deadline_s (simulator_deadline() by default) for it to say READY."""
    log_path = workdir / "sim.log"
    args = [sys.executable, "-m", "bench.sim.kubelets", f"--nodes={nodes}", f"--shape={shape}"]
    if port is not None:
        args.append(f"--port={port}")
    args += [f"--workdir={workdir / 'sim'}", f"--targets-format={targets_format}"]
    if not pod_objects:
        args.append("--no-pod-objects")
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    # The simulator prints exactly one line, READY <json>, once it serves every node;
    # its own failure closes stdout. Read with a deadline: it may also hang.
    limit = simulator_deadline(nodes) if deadline_s is None else deadline_s
    try:
        line = read_line(process.stdout, limit).decode()
    except Missed as err:
        stop(process)
        raise Missed(
            f"the simulator of {nodes} nodes says READY", err.waited, log_tail(log_path)
        ) from None
    if not line.startswith("READY "):
        stop(process)
        raise BenchError(f"simulator did not start: {line!r}\n{log_tail(log_path)}")
    return Simulator(process, json.loads(line[len("READY ") :]), log_path)


def start_shaped_simulator(args: argparse.Namespace, workdir: Path) -> Simulator:
    """The simulator of args.nodes, args.shape on args.kubelet_port (JSON targets with
    Pod objects), said on stderr."""
    sim = start_simulator(
        args.nodes, workdir, True, "json", port=args.kubelet_port, shape=args.shape
    )
    print(
        f"simulator: {args.nodes} nodes, shape {sim.info.get('shape')}, answer "
        f"{sim.info.get('answer_bytes')} bytes",
        file=sys.stderr,
        flush=True,
    )
    return sim


def read_line(stream: Any, deadline_s: float) -> bytes:
    """One line from a child's pipe, or Missed after deadline_s (b"" at end of file)."""
    fd = stream.fileno()
    started = time.monotonic()
    data = b""
    while not data.endswith(b"\n"):
        left = deadline_s - (time.monotonic() - started)
        if left <= 0:
            raise Missed("a line from the child process", deadline_s)
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


# -- kubepulse server -------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    command: list[str]
    url: str
    ca_file: Path
    token: str
    log_path: Path


def server_command(sim: Simulator, workdir: Path, port: int, resolution: float) -> list[str]:
    executable = Path(sys.executable).parent / "kubepulse"
    if not executable.exists():
        raise BenchError(f"{executable} not found: run from the repository's virtualenv")
    return [
        str(executable),
        "server",
        f"--targets={sim.info['targets']}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={workdir / 'server-pki'}",
        f"--metric-resolution={resolution:g}s",
        f"--kubelet-certificate-authority={sim.info['ca']}",
        f"--kubelet-token-file={sim.info['token_file']}",
        f"--token-auth-file={workdir / 'tokens.csv'}",
        # The simulator's port, when not the kubelet's (another benchmark holds that).
        *([f"--kubelet-port={sim.info['port']}"] if sim.info.get("port", 10250) != 10250 else []),
    ]


def start_server(
    sim: Simulator, workdir: Path, resolution: float, extra: Sequence[str] = ()
) -> Server:
    token = os.urandom(16).hex()
    (workdir / "tokens.csv").write_text(f'{token},bench,bench,"system:masters"\n')
    port = free_port()
    command = [*server_command(sim, workdir, port, resolution), *extra]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    ca_file = workdir / "server-pki" / "ca.crt"
    return Server(process, command, f"https://127.0.0.1:{port}", ca_file, token, log_path)


async def wait_ready(server: Server, deadline_s: float) -> tuple[float, float]:
    """Poll /readyz; returns (seconds to first answer, seconds to 200) since start."""
    started = time.monotonic()
    first_answer: float | None = None
    last = "not tried"
    while time.monotonic() - started < deadline_s:
        if server.process.poll() is not None:
            raise BenchError(
                f"server exited with {server.process.returncode}:\n{log_tail(server.log_path)}"
            )
        if server.ca_file.exists():
            try:
                ctx = ssl.create_default_context(cafile=str(server.ca_file))
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(server.url + "/readyz", ssl=ctx) as resp,
                ):
                    await resp.read()
                    if first_answer is None:
                        first_answer = time.monotonic() - started
                    if resp.status == 200:
                        return first_answer, time.monotonic() - started
                    last = f"HTTP {resp.status}"
            except (OSError, ssl.SSLError, aiohttp.ClientError) as err:
                last = f"{type(err).__name__}: {err}"
        await asyncio.sleep(0.5)
    raise Missed(
        "the server answers /readyz with 200",
        deadline_s,
        f"last: {last}\n{log_tail(server.log_path)}",
    )


@dataclass(frozen=True)
class ServerMetrics:
    """What the server's own /metrics says about ticks, requests and storage."""

    tick_count: float
    tick_sum: float
    tick_buckets: dict[float, float]
    requests_ok: float
    requests_failed: float
    node_points: float
    container_points: float
    body_bytes: int


def parse_server_metrics(text: str, size: int) -> ServerMetrics:
    tick_count = tick_sum = ok = failed = nodes = containers = 0.0
    buckets: dict[float, float] = {}
    for name, labels, value in _SAMPLE_LINE.findall(text):
        labels = labels or ""
        number = float(value)
        if name == "kubepulse_manager_tick_duration_seconds_count":
            tick_count = number
        elif name == "kubepulse_manager_tick_duration_seconds_sum":
            tick_sum = number
        elif name == "kubepulse_manager_tick_duration_seconds_bucket":
            le = re.search(r'le="([^"]+)"', labels)
            if le:
                buckets[float(le.group(1))] = number
        elif name == "kubepulse_kubelet_request_total":
            if 'success="true"' in labels:
                ok = number
            elif 'success="false"' in labels:
                failed = number
        elif name == "kubepulse_storage_points":
            if 'type="node"' in labels:
                nodes = number
            elif 'type="container"' in labels:
                containers = number
    return ServerMetrics(tick_count, tick_sum, buckets, ok, failed, nodes, containers, size)
