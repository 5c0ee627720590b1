"""A minimal HTTP/1.1 client for scrapes: one GET at a time per kubelet, kept alive.

A scrape is the same small GET to the same kubelet every resolution, and at 5,000
nodes the general-purpose client (aiohttp's request objects, header multidicts,
tracing, stream readers) cost more CPU than decoding the answer. This client does only
what a scrape needs, as Go's net/http Transport does for metrics-server:

- one idle keep-alive connection per kubelet, dropped after 90 s idle
  (DefaultTransport IdleConnTimeout);
- a request that fails on a reused connection before any answer arrives is retried once
  on a new one (Transport.roundTrip retries idempotent requests, "nothing written");
- Content-Length, chunked (RFC 9112 section 7.1) and read-until-close bodies;
  `Content-Encoding: gzip` is undone as Go's transport does when it asked for gzip;
- a body over the limit is refused as soon as that is known, before and after gunzip.

Protocol (parsing) and machinery (sockets, pool) are kept apart: `ResponseParser` is
pure and fed bytes; `_Connection` feeds it from the event loop.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from dataclasses import dataclass
from typing import cast

__all__ = ["BodyTooLarge", "ConnectionPool", "HTTPResponse", "ProtocolError", "ResponseParser"]

IDLE_TIMEOUT_SECONDS = 90.0
_MAX_HEAD_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The peer did not speak HTTP/1.1 as we understand it."""


class BodyTooLarge(Exception):
    """The body (or its gunzipped form) exceeds the limit."""


@dataclass(slots=True)
class HTTPResponse:
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its last value."""
    raw_body: bytes
    """As sent: gzipped when Content-Encoding says so (see body())."""
    keep_alive: bool
    limit: int

    def body(self) -> bytes:
        """The body, gunzipped if it came gzipped.

        Done here, by the task that reads the answer, not as the bytes arrive: when the
        event loop is busy, answers wait their turn at their wire size (a kubelet's is
        ~5 KiB gzipped, ~31 KiB plain), which bounds memory at thousands of nodes.
        """
        if self.headers.get("content-encoding", "").lower() == "gzip":
            return gunzip(self.raw_body, self.limit)
        return self.raw_body


class ResponseParser:
    """Incremental parser of one response; feed() returns True once it is complete.

    The body is kept as the pieces it came in (`parts`), joined once at the end: no
    buffer grown by appends and copied again, which at thousands of answers in flight
    left the heap fragmented. Chunk framing is taken off as the bytes arrive.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        """The head until it is complete; then, chunked, an unfinished size line or the
        trailers."""
        self.head: tuple[int, str, dict[str, str]] | None = None
        self.length: int | None = None  # Content-Length, if given
        self.chunked = False
        self.parts: list[bytes] = []
        self.received = 0
        """Body bytes in parts (chunked: payload only)."""
        self.payload_left = 0  # chunked: of the current chunk's payload
        self.crlf_left = 0  # chunked: of the CRLF after it
        self.trailers = False  # chunked: the last chunk came, the trailers follow
        self.done = False

    def feed(self, data: bytes) -> bool:
        if self.head is None:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD_BYTES:
                    raise ProtocolError("response header too long")
                return False
            self._parse_head(bytes(self.buffer[:end]))
            data = bytes(self.buffer[end + 4 :])
            self.buffer = bytearray()
        if self.chunked:
            self.done = self._feed_chunked(data)
        elif self.length is not None:
            need = self.length - self.received
            piece = data if len(data) <= need else data[:need]
            if piece:
                self.parts.append(piece)
                self.received += len(piece)
            self.done = self.received >= self.length
        else:
            if data:
                self.parts.append(data)
                self.received += len(data)
            if self.received > self.limit:
                raise BodyTooLarge
        return self.done

    def _feed_chunked(self, data: bytes) -> bool:
        """Take chunks (RFC 9112 section 7.1) off `data`; True once the body is whole.

        Payload is copied once (or kept as it came, when a read holds nothing else);
        the framing around it is read in place."""
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end or self.trailers:
            if self.trailers:
                # After the last chunk: trailer lines, if any, then an empty line.
                self.buffer += view[pos:]
                return self.buffer.find(b"\r\n\r\n") >= 0
            if self.payload_left:
                take = min(self.payload_left, end - pos)
                self.parts.append(data if take == end else bytes(view[pos : pos + take]))
                self.payload_left -= take
                self.crlf_left = 0 if self.payload_left else 2
                pos += take
                continue
            if self.crlf_left:
                take = min(self.crlf_left, end - pos)
                self.crlf_left -= take
                pos += take
                continue
            if self.buffer:  # a size line begun in an earlier read
                self.buffer += view[pos:]
                view = memoryview(bytes(self.buffer))
                data, pos, end = view.obj, 0, len(view)  # type: ignore[assignment]
                self.buffer = bytearray()
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                if end - pos > _MAX_HEAD_BYTES:
                    raise ProtocolError("chunk size line too long")
                self.buffer += view[pos:]
                return False
            size_text = bytes(view[pos:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"invalid chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise ProtocolError(f"invalid chunk size {size_text[:20]!r}")
            pos = line_end + 2
            if size == 0:
                # The last chunk; from its line's CRLF on, the trailers' end is looked for.
                self.trailers = True
                self.buffer += b"\r\n"
                continue
            self.received += size
            if self.received > self.limit:
                raise BodyTooLarge
            self.payload_left = size
        return False

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
            raise ProtocolError(f"malformed status line {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"malformed header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        self.head = (int(code), reason, headers)
        status = int(code)
        if status in (204, 304) or 100 <= status < 200:
            self.length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked = True
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise ProtocolError(f"invalid Content-Length {length[:40]!r}")
            self.length = int(length)
            if self.length > self.limit:
                raise BodyTooLarge
        self.keep_alive_default = version == "HTTP/1.1"

    def eof(self) -> bool:
        """The connection closed: True if that completes a read-until-close body."""
        if self.head is not None and not self.chunked and self.length is None:
            self.done = True
        return self.done

    def response(self) -> HTTPResponse:
        assert self.head is not None
        status, reason, headers = self.head
        body = b"".join(self.parts)
        connection = headers.get("connection", "").lower()
        keep_alive = (
            self.keep_alive_default
            and connection != "close"
            and (self.chunked or self.length is not None)
        )
        return HTTPResponse(status, reason, headers, body, keep_alive, self.limit)


def gunzip(body: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=31)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as err:
        raise ProtocolError(f"invalid gzip body: {err}") from None
    if len(out) > limit:
        raise BodyTooLarge
    return out


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[HTTPResponse] | None = None
        self.closed = False
        self.received = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not a check: uvloop's transports do not subclass asyncio's.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        parser, waiter = self.parser, self.waiter
        if parser is None or waiter is None or waiter.done():
            self._abort()  # bytes nobody asked for: the connection is unusable
            return
        try:
            if parser.feed(data):
                waiter.set_result(parser.response())
        except (ProtocolError, BodyTooLarge) as err:
            waiter.set_exception(err)
            self._abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        parser, waiter = self.parser, self.waiter
        if waiter is None or waiter.done():
            return
        try:
            if parser is not None and parser.eof():
                waiter.set_result(parser.response())
                return
        except (ProtocolError, BodyTooLarge) as err:
            waiter.set_exception(err)
            return
        waiter.set_exception(exc or ConnectionResetError("connection closed before the answer"))

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def request(self, data: bytes, limit: int) -> HTTPResponse:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.parser, self.waiter, self.received = ResponseParser(limit), loop.create_future(), False
        self.transport.write(data)
        try:
            return await self.waiter
        finally:
            self.parser = self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ConnectionPool:
    """One idle keep-alive connection per (host, port), TLS with one shared context."""

    def __init__(self, context: ssl.SSLContext | None, limit: int) -> None:
        self.context = context
        self.limit = limit
        self._idle: dict[tuple[str, int], _Connection] = {}
        self._closed = False

    async def get(self, host: str, port: int, request: bytes) -> HTTPResponse:
        """Send `request` (the whole HTTP/1.1 message) and return the answer.

        Connection errors (OSError, ssl.SSLError, socket.gaierror) are raised as they
        come from the event loop, for the caller to classify.
        """
        key = (host, port)
        conn = self._idle.pop(key, None)
        if conn is not None and (
            conn.closed or time.monotonic() - conn.idle_since > IDLE_TIMEOUT_SECONDS
        ):
            conn.close()
            conn = None
        if conn is not None:
            try:
                return self._release(key, conn, await conn.request(request, self.limit))
            except (ConnectionError, OSError):
                conn.close()
                if conn.received:
                    raise
                # The kubelet closed the idle connection as we reused it: retry once.
            except BaseException:
                conn.close()
                raise
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, host, port, ssl=self.context)
        try:
            return self._release(key, conn, await conn.request(request, self.limit))
        except BaseException:
            conn.close()
            raise

    def _release(
        self, key: tuple[str, int], conn: _Connection, response: HTTPResponse
    ) -> HTTPResponse:
        # A closed pool (replaced by one with a new client certificate) keeps nothing.
        if response.keep_alive and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            old = self._idle.pop(key, None)
            if old is not None:
                old.close()
            self._idle[key] = conn
        else:
            conn.close()
        return response

    def close(self) -> None:
        self._closed = True
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()
