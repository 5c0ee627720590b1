"""Objects with resource versions, and the window of recent changes watches read from.

This is what etcd and the API server's watch cache are to kube-apiserver, for the
objects `kubepulse up` builds itself: each time the objects of a resource are rebuilt,
`replace` records what was added, modified or deleted under one increasing resource
version, and wakes every watch. A watch keeps only the version it has sent up to, so
a thousand watches cost a thousand integers; one that falls behind the window gets
Expired, as a watch from a compacted revision does (the client lists again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
WINDOW = 1000
"""Changes kept for watches that resume from a resource version (the API server keeps
100 to 1,000 in its watch cache, by resource)."""

Object = Mapping[str, Any]
Key = tuple[str, str]  # (namespace, name)


class Expired(Exception):
    """The resource version asked for is older than the window (410 Expired)."""


@dataclass(frozen=True, slots=True)
class Change:
    type: str
    resource: str
    resource_version: int
    object: Object
    previous: Object | None
    """The object before a MODIFIED, so that a filtered watch can tell an object that
    left its selector (DELETED for it) from one that entered it (ADDED)."""


def key_of(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _versioned(obj: Object, resource_version: int) -> dict[str, Any]:
    meta = {**(obj.get("metadata") or {}), "resourceVersion": str(resource_version)}
    return {**obj, "metadata": meta}


class ObjectFeed:
    def __init__(self, window: int = WINDOW, start: int | None = None) -> None:
        # Versions start at the clock's milliseconds, so that a client still holding a
        # version from an earlier run of the process is behind (410), never ahead.
        self.resource_version = start if start is not None else int(time.time() * 1000)
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {}
        self._changes: deque[Change] = deque(maxlen=window)
        self._changed = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        """The server stops: every watch ends now instead of holding the shutdown."""
        self.closed = True
        self._changed.set()

    def objects(self, resource: str) -> list[dict[str, Any]]:
        return list(self._objects.get(resource, {}).values())

    def replace(
        self,
        resource: str,
        objects: Iterable[Object],
        same: Callable[[Object, Object], bool] = lambda a, b: a == b,
    ) -> list[Change]:
        """The resource now holds exactly `objects`; `same(old, new)` says when an
        object has not changed (without its resourceVersion)."""
        current = self._objects.setdefault(resource, {})
        fresh = {key_of(o): o for o in objects}
        changes: list[Change] = []
        for key, obj in fresh.items():
            old = current.get(key)
            if old is not None and same(_unversioned(old), _unversioned(obj)):
                continue
            self.resource_version += 1
            stored = current[key] = _versioned(obj, self.resource_version)
            kind = ADDED if old is None else MODIFIED
            changes.append(Change(kind, resource, self.resource_version, stored, old))
        for key in [k for k in current if k not in fresh]:
            self.resource_version += 1
            gone = _versioned(current.pop(key), self.resource_version)
            changes.append(Change(DELETED, resource, self.resource_version, gone, None))
        if changes:
            self._changes.extend(changes)
            self._changed.set()
            self._changed = asyncio.Event()
        return changes

    def since(self, resource_version: int) -> list[Change]:
        """Every change after `resource_version`, oldest first."""
        if resource_version >= self.resource_version:
            return []
        oldest = self._changes[0].resource_version if self._changes else self.resource_version
        if resource_version < oldest - 1:
            raise Expired(f"too old resource version: {resource_version} ({oldest - 1})")
        return [c for c in self._changes if c.resource_version > resource_version]

    async def wait(self, timeout: float) -> None:
        """Until the next change, or `timeout` seconds."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)


def _unversioned(obj: Object) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}
