"""The scrape client's HTTP/1.1: the parser fed bytes, and the pool against real servers."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from kubepulse.scrape.http import (
    BodyTooLarge,
    ConnectionPool,
    HTTPResponse,
    ProtocolError,
    ResponseParser,
)

BODY = b"node_cpu_usage_seconds_total 1 2\n" * 10


def parse(raw: bytes, limit: int = 1 << 20, step: int = 0) -> HTTPResponse | None:
    """Feed raw whole (step 0) or in pieces of `step` bytes; None if it never completes."""
    parser = ResponseParser(limit)
    pieces = [raw] if not step else [raw[i : i + step] for i in range(0, len(raw), step)]
    for piece in pieces:
        if parser.feed(piece):
            return parser.response()
    return parser.response() if parser.eof() else None


def chunked(body: bytes, size: int, trailer: bytes = b"") -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    return encoded + b"0\r\n" + trailer + b"\r\n"


HEAD = b"HTTP/1.1 200 OK\r\n"
GZIPPED = gzip.compress(BODY)


@pytest.mark.parametrize("step", [0, 1, 7])
@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        pytest.param(HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY, True, id="length"),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY, 50), True, id="chunked"
        ),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY, 64, b"X-T: 1\r\n"),
            True,
            id="chunked with trailer",
        ),
        pytest.param(
            HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(GZIPPED) + GZIPPED,
            True,
            id="gzip",
        ),
        pytest.param(
            HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"" + chunked(GZIPPED, 10),
            True,
            id="gzip chunked",
        ),
        pytest.param(HEAD + b"Connection: close\r\n\r\n" + BODY, False, id="until close"),
        pytest.param(
            b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY,
            False,
            id="HTTP/1.0",
        ),
    ],
)
def test_bodies_in_every_framing_come_out_whole(raw: bytes, keep_alive: bool, step: int) -> None:
    response = parse(raw, step=step)
    assert response is not None
    assert (response.status, response.body(), response.keep_alive) == (200, BODY, keep_alive)


def test_an_incomplete_body_is_not_complete() -> None:
    raw = HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:-1]
    parser = ResponseParser(1 << 20)
    assert not parser.feed(raw)
    assert not parser.eof()


def test_status_reason_and_headers() -> None:
    response = parse(b"HTTP/1.1 403 Forbidden\r\nX-A: b\r\nContent-Length: 2\r\n\r\nno")
    assert response is not None
    assert (response.status, response.reason, response.headers["x-a"]) == (403, "Forbidden", "b")
    assert response.body() == b"no"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(HEAD + b"Content-Length: 101\r\n\r\n", BodyTooLarge, id="length over"),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 101, 60),
            BodyTooLarge,
            id="chunks over",
        ),
        pytest.param(HEAD + b"\r\n" + b"x" * 101, BodyTooLarge, id="until close over"),
        pytest.param(
            HEAD
            + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(gzip.compress(b"x" * 500))
            + gzip.compress(b"x" * 500),
            BodyTooLarge,
            id="gunzipped over",
        ),
        pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", ProtocolError, id="not HTTP"),
        pytest.param(HEAD + b"no colon\r\n\r\n", ProtocolError, id="bad header"),
        pytest.param(HEAD + b"Content-Length: -1\r\n\r\n", ProtocolError, id="bad length"),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError, id="bad chunk size"
        ),
        pytest.param(
            HEAD + b"Content-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
            ProtocolError,
            id="bad gzip",
        ),
    ],
)
def test_bad_or_oversized_answers_are_refused(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        response = parse(raw, limit=100)
        if response is not None:
            response.body()  # a gzipped body is checked as it is unpacked


# --- the pool, against real servers on loopback -------------------------------------------


@asynccontextmanager
async def tcp_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[tuple[ConnectionPool, int]]:
    """A plain-TCP server on loopback and a pool to talk to it: (pool, port)."""
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    pool = ConnectionPool(None, 1 << 20)
    try:
        yield pool, srv.sockets[0].getsockname()[1]
    finally:
        pool.close()
        srv.close()
        await srv.wait_closed()


OK = HEAD + b"Content-Length: 2\r\n\r\nok"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_the_pool_reuses_one_connection_per_kubelet() -> None:
    peers: list[int] = []
    async with tcp_server(lambda r, w: _answer_forever(r, w, peers)) as (pool, port):
        for _ in range(3):
            assert (await pool.get("127.0.0.1", port, REQUEST)).body() == b"ok"
        assert len(peers) == 3 and len(set(peers)) == 1


async def _answer_forever(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peers: list[int], limit: int = 0
) -> None:
    served = 0
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            peers.append(writer.get_extra_info("peername")[1])
            writer.write(OK)
            await writer.drain()
            served += 1
            if limit and served >= limit:
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_a_connection_the_kubelet_closed_while_idle_is_replaced() -> None:
    # The server closes each connection after one answer, as a kubelet restarting or
    # timing out idle connections would; the next request must not fail for it.
    peers: list[int] = []
    async with tcp_server(lambda r, w: _answer_forever(r, w, peers, limit=1)) as (pool, port):
        for _ in range(3):
            assert (await pool.get("127.0.0.1", port, REQUEST)).body() == b"ok"
        assert len(set(peers)) == 3


async def test_connection_close_is_not_reused() -> None:
    peers: list[int] = []

    async def close_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        peers.append(writer.get_extra_info("peername")[1])
        writer.write(HEAD + b"Connection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # Keep it open: the client must not reuse it only because it is still open.
        await reader.read()
        writer.close()

    async with tcp_server(close_each) as (pool, port):
        for _ in range(2):
            assert (await pool.get("127.0.0.1", port, REQUEST)).body() == b"ok"
        assert len(set(peers)) == 2


async def test_a_connection_dropped_mid_answer_is_an_error_not_a_retry() -> None:
    calls: list[int] = []

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        calls.append(1)
        writer.write(HEAD + b"Content-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    async with tcp_server(half) as (pool, port):
        with pytest.raises(ConnectionError):
            await pool.get("127.0.0.1", port, REQUEST)
        assert calls == [1]
