"""Watch: a list's changes as a stream of JSON events, as kube-apiserver serves them.

k8s.io/apiserver's endpoints/handlers/watch.go: one JSON WatchEvent per line
({"type": ..., "object": ...}) on a chunked response kept open until timeoutSeconds
(or the server's minimum request timeout). The versions follow the API concepts'
"Semantics for watch": no resourceVersion, or "0", starts with an ADDED for every
object there is; any other starts after that version, and one older than the changes
kept gets an ERROR event holding a 410 Expired Status, after which clients list again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from kubepulse.api.status import status
from kubepulse.kube.feed import ADDED, DELETED, MODIFIED, Change, Expired, Object, ObjectFeed

BOOKMARK, ERROR = "BOOKMARK", "ERROR"
MIN_REQUEST_TIMEOUT = 1800.0
"""kube-apiserver's --min-request-timeout: a watch without timeoutSeconds ends after it."""
BOOKMARK_INTERVAL = 60.0
"""The API server sends a bookmark to watches that allow them about once a minute."""
LIVENESS_CHECK = 5.0
"""How often a quiet watch looks whether its client is still there."""
INITIAL_EVENTS_END = "k8s.io/initial-events-end"

Render = Callable[[Object, bool], Object]
"""The object as the event carries it (a Table row for kubectl get -w); the flag says
whether this is the stream's first event (only that one carries column definitions)."""


class WatchError(ValueError):
    """A watch request's parameters are not valid (400)."""


_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool


def wants_watch(request: web.Request) -> bool:
    return request.query.get("watch", "") in _TRUE


@dataclass(frozen=True, slots=True)
class WatchOptions:
    resource_version: int | None
    """None: unset or "0", start from the current state."""
    bookmarks: bool
    send_initial_events: bool
    timeout: float


def watch_options(query: Mapping[str, str]) -> WatchOptions:
    raw_version = query.get("resourceVersion", "")
    try:
        version = int(raw_version) if raw_version not in ("", "0") else None
        timeout = float(query.get("timeoutSeconds", MIN_REQUEST_TIMEOUT))
    except ValueError as err:
        raise WatchError(f"invalid watch parameter: {err}") from None
    if timeout < 0 or (version is not None and version < 0):
        raise WatchError("resourceVersion and timeoutSeconds must not be negative")
    initial = query.get("sendInitialEvents")
    if initial in _TRUE and query.get("resourceVersionMatch") != "NotOlderThan":
        # ListOptions validation: sendInitialEvents needs resourceVersionMatch=NotOlderThan.
        raise WatchError("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
    return WatchOptions(
        resource_version=version,
        bookmarks=query.get("allowWatchBookmarks", "") in _TRUE,
        # Defaults to on for a watch from "" or "0", off otherwise (WatchList semantics).
        send_initial_events=initial in _TRUE if initial is not None else version is None,
        timeout=timeout or MIN_REQUEST_TIMEOUT,
    )


def event_line(kind: str, obj: Object) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def bookmark(kind: str, api_version: str, resource_version: int, end: bool = False) -> Object:
    """A BOOKMARK's object: the watched kind with nothing but its resourceVersion."""
    meta: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": kind, "apiVersion": api_version, "metadata": meta}


def expired(message: str) -> Object:
    body = status(410, message)
    body["reason"] = "Expired"  # apierrors.NewResourceExpired; 410 alone is "Gone"
    return body


def filtered(change: Change, chosen: Callable[[Object], bool]) -> tuple[str, Object] | None:
    """The event a selector-filtered watch sends for a change (cacher.go's filtering):
    an object that leaves the selection is DELETED for it, one that enters it ADDED."""
    now = chosen(change.object)
    if change.type != MODIFIED:
        return (change.type, change.object) if now else None
    before = change.previous is not None and chosen(change.previous)
    if now:
        return (MODIFIED if before else ADDED), change.object
    return (DELETED, change.object) if before else None


@dataclass
class Watched:
    """What one watch is of: a resource of the feed, its kind, which objects."""

    feed: ObjectFeed
    resource: str
    kind: str
    api_version: str
    chosen: Callable[[Object], bool]
    render: Render


async def serve_watch(request: web.Request, watched: Watched) -> web.StreamResponse:
    options = watch_options(request.query)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    stream = _Stream(request, response, watched)
    with contextlib.suppress(ConnectionError):
        await stream.run(options)
    return response


class _Stream:
    def __init__(self, request: web.Request, response: web.StreamResponse, w: Watched) -> None:
        self.request, self.response, self.w = request, response, w
        self.first = True

    async def send(self, kind: str, obj: Object) -> None:
        if kind in (ADDED, MODIFIED, DELETED):
            obj = self.w.render(obj, self.first)
            self.first = False
        await self.response.write(event_line(kind, obj))

    async def run(self, options: WatchOptions) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.timeout
        w = self.w
        if options.resource_version is None:
            version = w.feed.resource_version
            if options.send_initial_events:
                for obj in w.feed.objects(w.resource):
                    if w.chosen(obj):
                        await self.send(ADDED, obj)
            if options.bookmarks and options.send_initial_events:
                await self.send(BOOKMARK, bookmark(w.kind, w.api_version, version, end=True))
        else:
            version = options.resource_version
        last_bookmark = loop.time()
        while True:
            try:
                changes = w.feed.since(version)
            except Expired as err:
                await self.send(ERROR, expired(str(err)))
                return
            for change in changes:
                version = change.resource_version
                if change.resource == w.resource and (event := filtered(change, w.chosen)):
                    await self.send(*event)
            now = loop.time()
            if now >= deadline or w.feed.closed or self._gone():
                return
            if options.bookmarks and now - last_bookmark >= BOOKMARK_INTERVAL:
                version = max(version, w.feed.resource_version)
                await self.send(BOOKMARK, bookmark(w.kind, w.api_version, version))
                last_bookmark = now
            await w.feed.wait(min(deadline - now, LIVENESS_CHECK))

    def _gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()
