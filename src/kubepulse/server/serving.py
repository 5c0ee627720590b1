"""Run aiohttp applications until SIGINT or SIGTERM, then stop them cleanly."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Callable

from aiohttp import web

from kubepulse.errors import Failure
from kubepulse.server.connections import GatedSite, Limits, RequestLog

DEFAULT_LIMITS = Limits()


class ListenError(Failure):
    """The address cannot be served on (taken, not ours, not allowed)."""


async def start(
    app: web.Application,
    host: str,
    port: int,
    ctx: ssl.SSLContext | None,
    limits: Limits = DEFAULT_LIMITS,
    reuse_port: bool = False,
) -> tuple[web.AppRunner, int]:
    """Start serving app, its connections bounded (connections.py); returns the runner
    and the port actually bound. reuse_port: SO_REUSEPORT, for processes sharing a port."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=limits.idle_timeout,
        logger=RequestLog(),
    )
    await runner.setup()
    site = GatedSite(runner, host, port, ctx, limits, reuse_port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise ListenError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    return runner, site.port


async def until_signalled(ready: Callable[[], None] | None = None) -> None:
    """Wait for SIGINT or SIGTERM. `ready` (say that we serve) runs once the handlers
    are in: whoever waits for that line may signal at once, and must not kill us."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"https://{shown}:{port}"
