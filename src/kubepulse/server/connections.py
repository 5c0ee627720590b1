"""Every listener's connections, bounded: how many, how long a request head may take,
how long an idle one is kept, and what is logged when clients misbehave.

Go's net/http, which kube-apiserver, metrics-server and the kubelet serve with, has
these bounds; aiohttp alone has none but an idle timeout. So each listener accepts
plain TCP itself and does the TLS handshake (loop.start_tls), which lets it count a
connection from its first byte, handshake included:

- at most `max_connections` open at once; one more is closed at once (counted, and
  logged once a minute), so the rest keep being served;
- the TLS handshake within `handshake_timeout`;
- each request head within `header_timeout` of its first byte, or of the connection
  (kube-apiserver's ReadHeaderTimeout, 32 s): a client that drips headers is cut;
- an idle keep-alive connection closed after `idle_timeout`;
- a malformed request is answered 400 by aiohttp and logged as one line at DEBUG, and
  counted, never as a traceback; a full descriptor table is one WARNING a minute.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
import ssl
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("kubepulse.serving")

READ_BUFFER = 16 * 1024
"""asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size):
5,000 connections would hold 1.25 GiB. A TLS record is at most 16 KiB."""


@dataclass(frozen=True)
class Limits:
    max_connections: int = 8192
    handshake_timeout: float = 10.0
    header_timeout: float = 32.0
    idle_timeout: float = 90.0


@dataclass
class Counts:
    """What every listener of the process has seen (kubepulse_http_* self-metrics)."""

    open: int = 0
    refused: int = 0
    malformed: int = 0
    header_timeouts: int = 0
    handshake_failures: int = 0
    _said: dict[str, float] = field(default_factory=dict)

    def once_a_minute(self, what: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._said.get(what, -60.0) >= 60.0:
            self._said[what] = now
            log.warning(message, *args)


COUNTS = Counts()

ProtocolFactory = Callable[[], asyncio.Protocol]


class Gate(asyncio.Protocol):
    """The raw TCP side of one connection: counts it, refuses it past the cap, does the
    TLS handshake, then hands the connection to the HTTP handler through a Relay."""

    def __init__(
        self, handler_factory: ProtocolFactory, ctx: ssl.SSLContext | None, limits: Limits
    ) -> None:
        self.handler_factory, self.ctx, self.limits = handler_factory, ctx, limits
        self.relay: Relay | None = None
        self.counted = False
        self.upgrading: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if COUNTS.open >= self.limits.max_connections:
            COUNTS.refused += 1
            COUNTS.once_a_minute(
                "refused",
                "%d connections open, the most allowed: closing new ones (%d so far); "
                "raise the limit or find the client that holds them",
                COUNTS.open,
                COUNTS.refused,
            )
            transport.abort()
            return
        COUNTS.open += 1
        self.counted = True
        if self.ctx is None:
            self.relay = Relay(self.handler_factory(), self.limits, self._done)
            self.relay.connection_made(transport)
            transport.set_protocol(self.relay)
        else:
            transport.pause_reading()  # the handshake's bytes are start_tls's
            self.upgrading = asyncio.get_running_loop().create_task(self._upgrade(transport))

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        relay = Relay(self.handler_factory(), self.limits, self._done)
        loop = asyncio.get_running_loop()
        try:
            assert self.ctx is not None
            secure = await loop.start_tls(
                transport,
                relay,
                self.ctx,
                server_side=True,
                ssl_handshake_timeout=self.limits.handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as err:
            # A port scan, a client that never said hello, a client certificate no CA
            # accepts: nothing to serve. Counted, logged at DEBUG.
            COUNTS.handshake_failures += 1
            log.debug("TLS handshake failed: %s", err)
            transport.abort()
            self._done()
            return
        if secure is None:  # the connection went away during the handshake
            self._done()
            return
        self.relay = relay
        relay.connection_made(secure)

    def connection_lost(self, exc: Exception | None) -> None:
        # Only before the handshake took the connection over (after it, the SSL layer
        # tells the relay): the peer left, or start_tls has not begun yet.
        if self.upgrading is not None and not self.upgrading.done():
            self.upgrading.cancel()
        self._done()

    def _done(self) -> None:
        if self.counted:
            self.counted = False
            COUNTS.open -= 1

    def data_received(self, data: bytes) -> None:  # pragma: no cover - start_tls owns it
        pass


class Relay(asyncio.Protocol):
    """Forwards one connection to aiohttp's handler, and holds its request heads to
    header_timeout (see the module docstring)."""

    def __init__(self, handler: asyncio.Protocol, limits: Limits, done: Callable[[], None]):
        self.handler, self.limits, self.done = handler, limits, done
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.handler.connection_made(transport)
        self._arm()  # the first request head is due within header_timeout

    def data_received(self, data: bytes) -> None:
        before = getattr(self.handler, "_request_count", None)
        self.handler.data_received(data)
        if getattr(self.handler, "_request_count", None) != before:
            self._disarm()  # a whole request head is in
        elif self._idle():
            self._arm()  # part of a request head while the handler waits for one

    def _idle(self) -> bool:
        waiter = getattr(self.handler, "_waiter", None)
        return waiter is not None and not waiter.done()

    def _arm(self) -> None:
        if self.deadline is None:
            loop = asyncio.get_running_loop()
            self.deadline = loop.call_later(self.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _too_slow(self) -> None:
        self.deadline = None
        if self.transport is not None and self._idle():
            COUNTS.header_timeouts += 1
            log.debug(
                "closing a connection whose request head took %gs", self.limits.header_timeout
            )
            self.transport.abort()

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.handler.connection_lost(exc)
        self.done()

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()


class RequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with malformed requests as one DEBUG line each."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            COUNTS.malformed += 1
            said = str(msg) % args if args else str(msg)
            line = f"{said}: {exc_info.code} {exc_info.message}"
            self.logger.debug("malformed request: %s", line.replace("\n", " ")[:200])
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kw)


def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's error handler: a full descriptor table is said once a minute,
    everything else as asyncio says it."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
        COUNTS.refused += 1
        COUNTS.once_a_minute(
            "accept",
            "cannot accept connections: %s (%d connections open); raise the limit on open "
            "files (ulimit -n) or lower the connections clients keep",
            exc.strerror or exc,
            COUNTS.open,
        )
        return
    loop.default_exception_handler(context)


_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def guard_loop() -> None:
    """Install on_loop_error and the small TLS read buffer, once per event loop."""
    loop = asyncio.get_running_loop()
    asyncio.sslproto.SSLProtocol.max_size = min(asyncio.sslproto.SSLProtocol.max_size, READ_BUFFER)
    if loop not in _LOOPS:
        _LOOPS.add(loop)
        loop.set_exception_handler(on_loop_error)


class GatedSite(web.BaseSite):
    """aiohttp's TCPSite with every connection through a Gate (module docstring)."""

    __slots__ = ("_bound_port", "_host", "_limits", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        ctx: ssl.SSLContext | None,
        limits: Limits,
    ) -> None:
        super().__init__(runner, ssl_context=ctx, backlog=1024)
        self._host, self._port, self._limits = host, port, limits
        self._bound_port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._bound_port}"

    @property
    def port(self) -> int:
        return self._bound_port

    async def start(self) -> None:
        await super().start()
        guard_loop()
        server = self._runner.server
        assert server is not None
        ctx, limits = self._ssl_context, self._limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: Gate(server, ctx, limits),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
        if self._server.sockets:
            self._bound_port = int(self._server.sockets[0].getsockname()[1])
