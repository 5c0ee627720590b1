"""Every listener's connections are bounded (server/connections.py): slow request heads,
silent and idle connections, too many connections, a full descriptor table, malformed
requests. Real sockets on loopback, real TLS, a real `kubepulse agent` where the
process matters (its log, its memory, its descriptor limit)."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from aiohttp import web

from kubepulse import pki
from kubepulse.server import serving
from kubepulse.server.connections import COUNTS, Limits
from tests.support import KUBEPULSE, free_port, wait_for


@contextlib.asynccontextmanager
async def served(tmp: Path, limits: Limits) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    ca = pki.new_ca("test")
    pki.issue(ca, "localhost", ips=[__import__("ipaddress").ip_address("127.0.0.1")]).write(
        tmp / "tls.crt", tmp / "tls.key"
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem().decode())

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner, port = await serving.start(app, "127.0.0.1", 0, server_ctx, limits)
    try:
        yield port, client_ctx
    finally:
        await runner.cleanup()


async def gone(reader: asyncio.StreamReader) -> bool:
    """Whether the server ended the connection without answering (FIN or RST)."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def answer_time(port: int, ctx: ssl.SSLContext) -> float:
    began = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert (await reader.read()).startswith(b"HTTP/1.1 200")
    writer.close()
    return time.monotonic() - began


async def test_slow_request_heads_are_cut_while_others_are_answered(tmp_path: Path) -> None:
    limits = Limits(header_timeout=1.5)
    async with served(tmp_path, limits) as (port, ctx):
        slow = []
        for _ in range(500):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            slow.append((reader, writer))
        began = time.monotonic()
        assert await answer_time(port, ctx) < 0.1
        # One more header line every half second does not buy time.
        for _ in range(2):
            await asyncio.sleep(0.5)  # the drip's own rhythm
            for _, writer in slow:
                writer.write(b"X-Drip: 1\r\n")
        closed = await asyncio.wait_for(
            asyncio.gather(*(gone(reader) for reader, _ in slow)), timeout=10
        )
        took = time.monotonic() - began
        assert all(closed)  # closed without an answer
        assert took < limits.header_timeout + 2.0
        assert await answer_time(port, ctx) < 0.1


async def test_a_connection_that_never_says_hello_is_closed(tmp_path: Path) -> None:
    async with served(tmp_path, Limits(handshake_timeout=1.0)) as (port, ctx):
        before = COUNTS.handshake_failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(gone(reader), timeout=5)
        writer.close()
        assert COUNTS.handshake_failures == before + 1
        assert await answer_time(port, ctx) < 0.1


async def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    async with served(tmp_path, Limits(idle_timeout=1.0)) as (port, ctx):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(2)  # "ok"
        began = time.monotonic()
        assert await asyncio.wait_for(gone(reader), timeout=10)
        assert 0.9 < time.monotonic() - began < 5


async def test_past_the_cap_new_connections_are_closed_and_the_rest_served(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, Limits(max_connections=20)) as (port, ctx):
        held = [await asyncio.open_connection("127.0.0.1", port, ssl=ctx) for _ in range(20)]
        refused = COUNTS.refused
        extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        closed = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in extra)), timeout=5)
        assert closed == [b""] * 5
        assert COUNTS.refused == refused + 5
        for _, writer in held[:10]:
            writer.close()
        await asyncio.sleep(0.2)  # the server notices the closes
        assert await answer_time(port, ctx) < 0.1


# -- a real agent: its log, its memory, its descriptor table ------------------------------


@contextlib.contextmanager
def agent(tmp: Path, *prefix: str, extra: tuple[str, ...] = ()) -> Iterator[tuple[int, Path]]:
    (tmp / "token").write_text("agent-token\n")
    port, log = free_port(), tmp / "agent.log"
    command = [
        *prefix,
        *KUBEPULSE,
        "-v", "0",
        "agent",
        "--address", "127.0.0.1",
        "--port", str(port),
        "--token-file", str(tmp / "token"),
        "--cert-dir", str(tmp / "pki"),
        "--housekeeping-interval", "1h",
        *extra,
    ]  # fmt: skip
    with log.open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("kubepulse agent:"), log.read_text()
        yield port, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def healthz(port: int) -> bytes:
    ctx = ssl._create_unverified_context()  # the agent's self-made CA: not the point here
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(100)


def agent_pid(port: int) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            assert conn.pid is not None
            return conn.pid
    raise AssertionError(f"nothing listens on {port}")


def test_memory_after_bursts_of_silent_connections_comes_back(tmp_path: Path) -> None:
    with agent(tmp_path, "prlimit", "--nofile=10000:10000") as (port, _):
        process = psutil.Process(agent_pid(port))
        for _ in range(5):
            assert healthz(port).startswith(b"HTTP/1.1 200")
        baseline = process.memory_info().rss
        for _ in range(3):
            burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(3000)]
            for s in burst:
                s.close()
            assert healthz(port).startswith(b"HTTP/1.1 200")
        wait_for(lambda: psutil.Process(process.pid).num_fds() < 50, 20, "the bursts' sockets")
        assert process.memory_info().rss <= baseline * 1.2


def test_a_full_descriptor_table_is_said_once_and_served_through(tmp_path: Path) -> None:
    with agent(tmp_path, "prlimit", "--nofile=64:64") as (port, log):
        held = []
        for _ in range(200):
            with contextlib.suppress(OSError):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        wait_for(lambda: "cannot accept connections" in log.read_text(), 20, "the warning")
        for s in held:
            s.close()
        wait_for(lambda: healthz(port).startswith(b"HTTP/1.1 200"), 30, "an answer again")
        text = log.read_text()
        assert log.stat().st_size < 100_000
        assert "Traceback" not in text
        assert text.count("cannot accept connections") == 1


def test_malformed_requests_are_one_debug_line_never_a_traceback(tmp_path: Path) -> None:
    with agent(tmp_path) as (port, log):
        ctx = ssl._create_unverified_context()
        for junk in (
            b"\x16\x03\x01garbage\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"\x00\x01\x02\r\n\r\n",
        ):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as s:
                s.sendall(junk)
                ready, _, _ = select.select([s], [], [], 10)
                assert ready
                answer = s.recv(100)
                assert answer == b"" or answer.split(b" ")[1].startswith(b"4"), answer
        assert healthz(port).startswith(b"HTTP/1.1 200")
        text = log.read_text()
        assert "Traceback" not in text and "ERROR" not in text, text
    assert pytest  # the module's markers come from tests/conftest.py
