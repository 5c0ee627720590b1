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
import socket
import ssl
import threading
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

_THREAD = threading.local()


def _shared_read_buffer() -> memoryview:
    view: memoryview | None = getattr(_THREAD, "tls_read_buffer", None)
    if view is None:
        view = _THREAD.tls_read_buffer = memoryview(bytearray(READ_BUFFER))
    return view


_init_ssl_protocol = asyncio.sslproto.SSLProtocol.__init__


def _ssl_protocol_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _init_ssl_protocol(self, *args, **kwargs)
    view = _shared_read_buffer()
    self._ssl_buffer, self._ssl_buffer_view = view.obj, view


def _ssl_protocol_get_buffer(self: Any, n: int) -> memoryview:
    return self._ssl_buffer_view  # type: ignore[no-any-return]


def share_tls_read_buffers() -> None:
    """One TLS read buffer per thread instead of one per connection.

    asyncio's SSLProtocol reads the socket into its own buffer (get_buffer) and copies
    what came in into the connection's incoming BIO at once (buffer_updated), before the
    event loop does anything else: the buffer never holds data between two calls. So the
    connections of one event loop can share one, as they share its thread; with a
    keep-alive connection per node, that is READ_BUFFER (16 KiB) less per node. asyncio
    itself calls nothing else on it (Python 3.11-3.13 sslproto).
    """
    asyncio.sslproto.SSLProtocol.max_size = min(asyncio.sslproto.SSLProtocol.max_size, READ_BUFFER)
    asyncio.sslproto.SSLProtocol.__init__ = _ssl_protocol_init  # type: ignore[method-assign]
    asyncio.sslproto.SSLProtocol.get_buffer = _ssl_protocol_get_buffer  # type: ignore[method-assign]


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
    """Every listener's connections now."""
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


class Listener:
    """One listening socket whose connections it accepts itself (module docstring): it
    counts them from the first byte, refuses them past the cap, waits for a TLS client
    to say hello before spending anything on TLS, and gives the rest to aiohttp."""

    def __init__(
        self,
        sock: socket.socket,
        handler_factory: ProtocolFactory,
        ctx: ssl.SSLContext | None,
        limits: Limits,
    ) -> None:
        self.sock, self.handler_factory, self.ctx, self.limits = sock, handler_factory, ctx, limits
        self.sockets = [sock]
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.retry: asyncio.TimerHandle | None = None
        self.closed = False
        self.open = 0
        """This listener's connections now, counted from accept() to the last byte."""
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(1024):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                # Out of descriptors (EMFILE, ENFILE) or memory: stop accepting for a
                # second, as asyncio does, and say so once a minute, not once a try.
                COUNTS.refused += 1
                COUNTS.once_a_minute(
                    "accept",
                    "cannot accept connections: %s (%d connections open); raise the limit on "
                    "open files (ulimit -n) or lower the connections clients keep",
                    err.strerror or err,
                    COUNTS.open,
                )
                self.loop.remove_reader(self.sock.fileno())
                self.retry = self.loop.call_later(1.0, self._resume)
                return
            if self.open >= self.limits.max_connections:
                COUNTS.refused += 1
                COUNTS.once_a_minute(
                    "refused",
                    "%d connections open on %s, the most allowed: closing new ones (%d so "
                    "far); raise --max-connections or find the client that holds them",
                    self.open,
                    self.sock.getsockname(),
                    COUNTS.refused,
                )
                conn.close()
                continue
            self._opened()
            conn.setblocking(False)
            if self.ctx is None:
                self._start(conn)
            else:
                # Nothing of TLS (tens of KiB a connection) until the client says hello:
                # a connection that never does costs a socket, and is closed in time.
                fd = conn.fileno()
                timer = self.loop.call_later(self.limits.handshake_timeout, self._silent, fd)
                self.waiting[fd] = (conn, timer)
                self.loop.add_reader(fd, self._hello, fd)

    def _opened(self) -> None:
        self.open += 1
        COUNTS.open += 1

    def _closed(self) -> None:
        self.open -= 1
        COUNTS.open -= 1

    def _resume(self) -> None:
        self.retry = None
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def _hello(self, fd: int) -> None:
        conn, timer = self.waiting.pop(fd)
        timer.cancel()
        self.loop.remove_reader(fd)
        try:
            said = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            said = b"?"  # readable but nothing yet: let the handshake wait for it
        except OSError:
            said = b""
        if not said:  # it left without a word: no TLS to set up for it
            conn.close()
            self._closed()
            return
        self._start(conn)

    def _silent(self, fd: int) -> None:
        conn, _ = self.waiting.pop(fd)
        self.loop.remove_reader(fd)
        COUNTS.handshake_failures += 1
        log.debug("closing a connection that sent nothing in %gs", self.limits.handshake_timeout)
        conn.close()
        self._closed()

    def _start(self, conn: socket.socket) -> None:
        task = self.loop.create_task(self._serve(conn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        relay = Relay(self.handler_factory(), self.limits, self._closed)
        try:
            await self.loop.connect_accepted_socket(
                lambda: relay,
                sock=conn,
                ssl=self.ctx,
                ssl_handshake_timeout=self.limits.handshake_timeout if self.ctx else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as err:
            # A port scan, a client that gave up, a client certificate no CA accepts:
            # nothing to serve. Counted, and logged at DEBUG.
            COUNTS.handshake_failures += 1
            self._closed()
            log.debug("TLS handshake failed: %s", err)
            conn.close()
        except asyncio.CancelledError:
            self._closed()
            conn.close()
            raise

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.retry is not None:
            self.retry.cancel()
        else:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for fd, (conn, timer) in list(self.waiting.items()):
            timer.cancel()
            self.loop.remove_reader(fd)
            conn.close()
            self._closed()
        self.waiting.clear()
        for task in self.tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


class Relay(asyncio.Protocol):
    """Forwards one connection to aiohttp's handler, and holds its request heads to
    header_timeout (see the module docstring)."""

    def __init__(
        self, handler: asyncio.Protocol, limits: Limits, closed: Callable[[], None]
    ) -> None:
        self.handler, self.limits, self.closed = handler, limits, closed
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
        self.closed()

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

    __slots__ = ("_bound_port", "_host", "_limits", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        ctx: ssl.SSLContext | None,
        limits: Limits,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ctx, backlog=1024)
        self._host, self._port, self._limits = host, port, limits
        self._reuse_port = reuse_port
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
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # create_server sets SO_REUSEADDR, as Go's listeners do (what metrics-server's
        # --permit-address-sharing asks for); SO_REUSEPORT only when asked.
        sock = socket.create_server(
            (self._host, self._port),
            family=family,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
        listener = Listener(sock, server, self._ssl_context, self._limits)
        self._server = listener  # type: ignore[assignment]  # what BaseSite.stop() closes
        self._bound_port = int(sock.getsockname()[1])
