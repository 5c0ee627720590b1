"""Nodes and pods from the Kubernetes API, kept current by list-then-watch.

Each resource runs client-go's reflector loop (k8s.io/client-go/tools/cache/reflector.go):
list, then watch from the list's resourceVersion with allowWatchBookmarks=true, so the
server's BOOKMARK events move the resourceVersion on even when nothing changes. When the
server ends a watch (its timeoutSeconds), the next watch starts where the last one
stopped. Any failure - a 410 Expired resourceVersion, a dropped connection, an error
answer - is followed, after a jittered exponential backoff, by a full list again, which
replaces what was held: a change missed while disconnected (a deletion above all)
cannot linger. After a 410 the list asks for the newest state (resourceVersion ""), as
the reflector does once its last resourceVersion is unavailable.

Objects are kept as objects.py builds them (by default only the fields used).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.objects import ObjectError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """client-go's reflector waits 800 ms after a first failure, doubling to 30 s."""

    initial: float = 0.8
    maximum: float = 30.0
    # A watch that ran this long without failing counts as healthy: the next failure
    # starts from `initial` again (the reflector's backoff manager resets after 2 min).
    reset_after: float = 120.0


DEFAULT_BACKOFF = Backoff()


class Reflector(Generic[T]):
    """One resource's list and watch loop, and the objects it holds by key."""

    def __init__(
        self,
        client: KubeClient,
        path: str,
        parse: Callable[[Mapping[str, Any], bool], T],
        key: Callable[[T], tuple[str, str]],
        *,
        label_selector: str = "",
        field_selector: str = "",
        keep_raw: bool = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        watch_timeout: float = 300.0,
        on_object: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        """on_object: awaited with every object as listed and as ADDED or MODIFIED by the
        watch (a controller's event handler); its error ends the watch, and the list that
        follows hands it every object again."""
        self.client, self.path = client, path
        self.on_object = on_object
        self._parse: Callable[[Mapping[str, Any], bool], T] = parse
        self._key: Callable[[T], tuple[str, str]] = key
        self.selectors = {"labelSelector": label_selector, "fieldSelector": field_selector}
        self.keep_raw, self.backoff, self.watch_timeout = keep_raw, backoff, watch_timeout
        self.resource_version = ""
        self.lists = 0  # how many full lists were made, for tests and logs
        self.last_error = ""
        self.synced = asyncio.Event()
        self._items: dict[tuple[str, str], T] = {}
        self._snapshot: list[T] | None = None

    def items(self) -> list[T]:
        # Built once per change, not per call: the server asks on every scrape and request.
        if self._snapshot is None:
            self._snapshot = list(self._items.values())
        return self._snapshot

    async def list_once(self) -> None:
        """One list of the newest state (a quorum read), without watching after it."""
        await self._list(newest=True)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        delay, relist, newest = self.backoff.initial, True, False
        while True:
            started = loop.time()
            try:
                if relist:
                    await self._list(newest)
                    relist, newest = False, False
                await self._watch()
                continue  # the server ended the watch: watch again from where it stopped
            except ApiError as err:
                newest = err.code == 410  # our resourceVersion is gone: ask for the newest
                self._failed(f"{err.code} {err.reason}: {err.message}")
            except (Unreachable, ObjectError) as err:
                self._failed(str(err))
            except Exception as err:  # a long-running server keeps watching, whatever broke
                self._failed(f"{type(err).__name__}: {err}")
            relist = True
            if loop.time() - started >= self.backoff.reset_after:
                delay = self.backoff.initial
            # Jitter keeps many replicas from listing in step after an API server restart.
            await asyncio.sleep(delay * random.uniform(1.0, 1.5))
            delay = min(delay * 2, self.backoff.maximum)

    def _failed(self, error: str) -> None:
        if error != self.last_error:  # once per change, not once per retry
            log.warning("watching %s failed, listing again: %s", self.path, error)
        self.last_error = error

    async def _list(self, newest: bool) -> None:
        # resourceVersion "0" lets the API server answer from its watch cache, which is
        # what the reflector asks for first; "" is a quorum read of the newest state.
        params = {**self.selectors, "resourceVersion": "" if newest else "0"}
        body = await self.client.get(self.path, params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ObjectError(f"the list of {self.path} is not a Kubernetes list")
        fresh: dict[tuple[str, str], T] = {}
        for obj in body["items"]:
            if (item := self._read(obj)) is not None:
                fresh[self._key(item)] = item
        self._items, self._snapshot = fresh, None
        if self.on_object is not None:
            for obj in body["items"]:
                await self.on_object(obj)
        self.resource_version = str((body.get("metadata") or {}).get("resourceVersion", ""))
        self.lists += 1
        self.last_error = ""
        self.synced.set()

    async def _watch(self) -> None:
        params = {
            **self.selectors,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            # As the reflector does, the server ends the watch after this; a new one
            # then starts from the last resourceVersion seen, without a list.
            "timeoutSeconds": str(int(self.watch_timeout)),
        }
        loop = asyncio.get_running_loop()
        started, events = loop.time(), 0
        async for event in self.client.watch(self.path, params, self.watch_timeout + 30):
            events += 1
            kind, obj = event.get("type"), event.get("object")
            if not isinstance(obj, dict):
                continue
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if kind in ("ADDED", "MODIFIED"):
                if (item := self._read(obj)) is not None:
                    self._items[self._key(item)] = item
                    self._snapshot = None
                if self.on_object is not None:
                    await self.on_object(obj)
            elif kind == "DELETED":
                if (item := self._read(obj)) is not None:
                    self._items.pop(self._key(item), None)
                    self._snapshot = None
            elif kind != "BOOKMARK":
                continue
            if version:
                self.resource_version = str(version)
        if not events and loop.time() - started < 1.0:
            # The reflector's guard: a server (or proxy) that closes every watch at once
            # would otherwise be asked again in a tight loop.
            raise Unreachable("very short watch: the server closed it at once, without events")

    def _read(self, obj: Mapping[str, Any]) -> T | None:
        """One bad object is logged and skipped; it must not stop the others."""
        try:
            return self._parse(obj, self.keep_raw)
        except ObjectError as err:
            log.warning("skipping an object of %s: %s", self.path, err)
            return None
