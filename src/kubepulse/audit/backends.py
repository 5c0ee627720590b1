"""Where events go, and when: --audit-*-mode blocking (each request waits for its events
to be written or sent) or batch (a queue of --audit-*-batch-buffer-size, emptied in
batches of up to --audit-*-batch-max-size at least every --audit-*-batch-max-wait, at
most --audit-*-batch-throttle-qps batches a second when throttled; a full queue drops
events, as k8s.io/apiserver/plugin/pkg/audit/buffered does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kubepulse.audit.event import legacy_line
from kubepulse.audit.logfile import LogFile

log = logging.getLogger("kubepulse.audit")

Event = dict[str, Any]
Deliver = Callable[[list[Event]], Awaitable[None]]


class Backend(Protocol):
    async def process(self, events: list[Event]) -> None: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class BatchOptions:
    buffer_size: int = 10000
    max_size: int = 1
    max_wait: float = 0.0
    throttle_enable: bool = False
    throttle_qps: float = 0.0
    throttle_burst: int = 0


class TokenBucket:
    """client-go's token bucket rate limiter: burst batches at once, then qps a second."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, max(burst, 1)
        self._tokens, self._at = float(self.burst), time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
        self._at = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self.qps)  # the rate limit itself
            self._tokens, self._at = 1.0, time.monotonic()
        self._tokens -= 1


class AuditFailure(Exception):
    """blocking-strict: a request whose events could not be recorded fails too."""


class Blocking:
    def __init__(self, deliver: Deliver, name: str, strict: bool = False) -> None:
        self.deliver, self.name, self.strict = deliver, name, strict

    async def process(self, events: list[Event]) -> None:
        try:
            await self.deliver(events)
        except Exception as err:
            log.error("audit %s: %d event(s) lost: %s", self.name, len(events), err)
            if self.strict:
                raise AuditFailure(f"audit {self.name}: {err}") from err

    async def close(self) -> None:
        return None


class Batching:
    def __init__(self, deliver: Deliver, name: str, options: BatchOptions) -> None:
        self.deliver, self.name, self.options = deliver, name, options
        self._queue: asyncio.Queue[Event] = asyncio.Queue(options.buffer_size)
        self._task: asyncio.Task[None] | None = None
        self._dropped_logged_at = 0.0
        self._bucket = (
            TokenBucket(options.throttle_qps, options.throttle_burst)
            if options.throttle_enable
            else None
        )

    async def process(self, events: list[Event]) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        for ev in events:
            try:
                self._queue.put_nowait(ev)
            except asyncio.QueueFull:
                now = time.monotonic()
                if now - self._dropped_logged_at > 60:  # once a minute, not per event
                    self._dropped_logged_at = now
                    log.error("audit %s: the buffer is full; events are dropped", self.name)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.options.max_wait
            while len(batch) < self.options.max_size:
                left = deadline - time.monotonic()
                try:
                    batch.append(
                        self._queue.get_nowait()
                        if left <= 0
                        else await asyncio.wait_for(self._queue.get(), left)
                    )
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            if self._bucket is not None:
                await self._bucket.take()
            await self._send(batch)

    async def _send(self, batch: list[Event]) -> None:
        try:
            await self.deliver(batch)
        except Exception as err:
            log.error("audit %s: %d event(s) lost: %s", self.name, len(batch), err)

    async def close(self) -> None:
        """What is queued goes out before the server stops."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left: list[Event] = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        for start in range(0, len(left), max(self.options.max_size, 1)):
            await self._send(left[start : start + self.options.max_size])


@dataclass(frozen=True)
class TruncateOptions:
    enabled: bool = False
    max_event_size: int = 102400
    max_batch_size: int = 10485760


TRUNCATED = "audit.k8s.io/truncated"


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def truncating(deliver: Deliver, name: str, options: TruncateOptions) -> Deliver:
    """--audit-*-truncate-*, as k8s.io/apiserver/plugin/pkg/audit/truncate: an event
    above max-event-size loses its request and response objects (and says so in an
    annotation), and is dropped if still too big; a batch above max-batch-size goes out
    in several."""
    if not options.enabled:
        return deliver

    def fitted(ev: Event) -> Event | None:
        if _size(ev) <= options.max_event_size:
            return ev
        slim = {k: v for k, v in ev.items() if k not in ("requestObject", "responseObject")}
        slim["annotations"] = {**ev.get("annotations", {}), TRUNCATED: "true"}
        if _size(slim) <= options.max_event_size:
            return slim
        log.error("audit %s: event %s dropped: too large even truncated", name, ev["auditID"])
        return None

    async def deliver_truncated(events: list[Event]) -> None:
        batch: list[Event] = []
        size = 0
        for ev in filter(None, map(fitted, events)):
            ev_size = _size(ev)
            if batch and size + ev_size > options.max_batch_size:
                await deliver(batch)
                batch, size = [], 0
            batch.append(ev)
            size += ev_size
        if batch:
            await deliver(batch)

    return deliver_truncated


def log_deliver(file: LogFile, legacy: bool) -> Deliver:
    async def deliver(events: list[Event]) -> None:
        lines = (
            legacy_line(ev) if legacy else json.dumps(ev, separators=(",", ":")) for ev in events
        )
        file.write("".join(line + "\n" for line in lines))

    return deliver


def backend(deliver: Deliver, name: str, mode: str, options: BatchOptions) -> Backend:
    if mode == "batch":
        return Batching(deliver, name, options)
    return Blocking(deliver, name, strict=mode == "blocking-strict")
