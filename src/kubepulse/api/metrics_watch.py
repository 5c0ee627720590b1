"""Watch of NodeMetrics and PodMetrics: an event for each scrape as it is stored.

The scrape manager tells every recorder of each node it stored (scrape/manager.py);
this recorder turns that node's new usage into events for the watches open at that
moment: MODIFIED (ADDED the first time) for the node and each of its pods, DELETED for
a pod its scrape no longer has. Nothing is built while nobody watches.

Each watch has its own queue of events. One whose client does not read as fast as
scrapes are stored is closed once SLOW_CONSUMER_EVENTS wait for it while its connection
takes no more (its handler waits for the client to drain what was written), as the API
server's cacher closes a watcher whose buffer is full; its client watches again. Events
that wait only for the handler's turn on the event loop do not count: one loop turn
can store hundreds of scrapes (30 pods each), which a reading client takes at once.

No history is kept, so a watch from an older resourceVersion gets 410 Expired; with
none (or "0") it starts with an ADDED for every object stored, then a BOOKMARK marking
the initial events' end when bookmarks are allowed (WatchList, sendInitialEvents=true).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kubepulse.api.metrics import GROUP_VERSION, node_metrics, pod_metrics
from kubepulse.api.selectors import parse_field_selector, parse_label_selector
from kubepulse.api.watch import (
    BOOKMARK,
    BOOKMARK_INTERVAL,
    ERROR,
    LIVENESS_CHECK,
    bookmark,
    event_line,
    expired,
    watch_options,
)
from kubepulse.kube.feed import ADDED, DELETED, MODIFIED
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.objects import Node, Pod
from kubepulse.store.rates import PodKey
from kubepulse.store.reading import UsageStore
from kubepulse.timefmt import rfc3339

SLOW_CONSUMER_EVENTS = 1000
INITIAL_EVENTS_PER_WRITE = 4096
Event = tuple[str, dict[str, Any]]


@dataclass(eq=False)
class _Watch:
    pods: bool
    namespace: str | None
    chosen: Callable[[str, str, Mapping[str, str]], bool]
    """(namespace, name, labels) -> whether this watch wants the object."""
    events: deque[bytes] = field(default_factory=deque)
    """Event lines, each serialised once for every watch that takes it."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    blocked: bool = False
    transport: asyncio.Transport | None = None
    """Its handler waits for the client to take what was written (the send buffer is full)."""

    def put(self, event: bytes) -> None:
        if self.overflowed:
            return
        self.events.append(event)
        if self.blocked and len(self.events) > SLOW_CONSUMER_EVENTS:
            self.overflowed = True
            self.events.clear()
            # Its handler waits on a client that does not read: the connection is cut,
            # so that the wait ends and nothing more is held for it.
            if self.transport is not None:
                self.transport.abort()
        self.ready.set()

    async def write(self, response: web.StreamResponse, data: bytes) -> None:
        self.blocked = True
        try:
            await response.write(data)
        finally:
            self.blocked = False


class MetricsWatchers:
    """The scrape manager's recorder for metric watches, and their HTTP handler."""

    def __init__(
        self,
        store: UsageStore,
        inventory: Inventory,
        node_selector: Callable[[Mapping[str, str]], bool] = lambda _labels: True,
    ) -> None:
        self.store, self.inventory, self.node_selector = store, inventory, node_selector
        # As in feed.ObjectFeed: a version from an earlier run is behind, never ahead.
        self.resource_version = int(time.time() * 1000)
        self.watches: set[_Watch] = set()
        self.closed = False
        self._pods_of_node: dict[str, set[PodKey]] = {}
        self._nodes_sent: set[str] = set()
        self._pod_index: tuple[list[Pod], dict[PodKey, Pod]] = ([], {})
        self._node_index: tuple[list[Node], dict[str, Node]] = ([], {})

    # -- the scrape manager's Recorder ---------------------------------------------------
    def node_stored(self, node_name: str) -> None:
        self.resource_version += 1
        if not self.watches:
            return
        version = str(self.resource_version)
        if any(not w.pods for w in self.watches):
            event = self._node_event(node_name, version)
            if event is not None:
                self._send(False, event)
        if any(w.pods for w in self.watches):
            for event in self._pod_events(node_name, version):
                self._send(True, event)

    def tick_done(self) -> None:
        """A node the store dropped this cycle (its scrape failed, or it is no longer a
        target) is DELETED, with its pods, as metrics-server stops serving it then."""
        stored = self.store.node_names()
        gone_nodes = self._nodes_sent - stored
        gone_pods = [n for n in self._pods_of_node if n not in stored]
        if not (gone_nodes or gone_pods):
            return
        self.resource_version += 1
        version = str(self.resource_version)
        nodes = self._nodes()
        for name in sorted(gone_nodes):
            self._nodes_sent.discard(name)
            node = nodes.get(name)
            labels = node.labels if node else {}
            self._send(False, _deleted("NodeMetrics", "", name, labels, version))
        pods = self._pods()
        for node_name in gone_pods:
            for namespace, name in sorted(self._pods_of_node.pop(node_name)):
                self._send(True, _pod_deleted(pods, namespace, name, version))

    def close(self) -> None:
        """The server stops: every watch ends now instead of holding the shutdown."""
        self.closed = True
        for w in self.watches:
            w.ready.set()

    # -- events ---------------------------------------------------------------------------
    def _send(self, pods: bool, event: Event) -> None:
        meta = event[1]["metadata"]
        namespace, name, labels = meta.get("namespace", ""), meta["name"], meta.get("labels", {})
        line = b""
        for w in self.watches:
            if w.pods == pods and w.chosen(namespace, name, labels):
                line = line or event_line(*event)
                w.put(line)

    def _node_event(self, name: str, version: str) -> Event | None:
        rate = self.store.node(name)
        node = self._nodes().get(name)
        if rate is None or node is None or not self.node_selector(node.labels):
            return None
        obj = _versioned("NodeMetrics", node_metrics(node, rate, rfc3339(time.time())), version)
        kind = MODIFIED if name in self._nodes_sent else ADDED
        self._nodes_sent.add(name)
        return kind, obj

    def _pod_events(self, node_name: str, version: str) -> Iterator[Event]:
        pods = self._pods()
        created = rfc3339(time.time())
        before = self._pods_of_node.get(node_name)
        now: set[PodKey] = set()
        for key, rates in self.store.node_pods(node_name).pod_rates():
            pod = pods.get(key)
            if pod is None:
                if pods:  # as a LIST: only the pods the API server knows
                    continue
                pod = Pod(namespace=key[0], name=key[1])
            now.add(key)
            kind = MODIFIED if before is not None and key in before else ADDED
            yield kind, _versioned("PodMetrics", pod_metrics(pod, rates, created), version)
        for namespace, name in sorted((before or set()) - now):
            yield _pod_deleted(pods, namespace, name, version)
        self._pods_of_node[node_name] = now

    def _nodes(self) -> dict[str, Node]:
        nodes = self.inventory.nodes()
        if self._node_index[0] is not nodes:
            self._node_index = (nodes, {n.name: n for n in nodes})
        return self._node_index[1]

    def _pods(self) -> dict[PodKey, Pod]:
        pods = self.inventory.pods()
        if self._pod_index[0] is not pods:
            self._pod_index = (pods, {(p.namespace, p.name): p for p in pods})
        return self._pod_index[1]

    def _stored(self, pods: bool) -> Iterator[dict[str, Any]]:
        """Every object stored now, for a watch's initial events."""
        version = str(self.resource_version)
        for node_name in sorted(self.store.node_names()):
            if pods:
                for kind, obj in self._pod_events(node_name, version):
                    if kind != DELETED:
                        yield obj
            elif (event := self._node_event(node_name, version)) is not None:
                yield event[1]

    # -- HTTP ----------------------------------------------------------------------------
    async def serve(self, request: web.Request, pods: bool) -> web.StreamResponse:
        options = watch_options(request.query)
        labels = parse_label_selector(request.query.get("labelSelector", ""))
        fields_allowed = ("metadata.name", "metadata.namespace") if pods else ("metadata.name",)
        fields = parse_field_selector(request.query.get("fieldSelector", ""), fields_allowed)
        namespace = request.match_info.get("namespace")

        def chosen(ns: str, name: str, object_labels: Mapping[str, str]) -> bool:
            if namespace is not None and ns != namespace:
                return False
            return labels(object_labels) and fields(
                {"metadata.name": name, "metadata.namespace": ns}
            )

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        kind = "PodMetrics" if pods else "NodeMetrics"
        if options.resource_version not in (None, self.resource_version):
            await response.prepare(request)
            message = f"too old resource version: {options.resource_version}"
            await response.write(event_line(ERROR, expired(message)))
            return response
        # Watching from here on: what is stored while the head and the initial events
        # are written is queued for it, not lost.
        watch = _Watch(pods, namespace, chosen, transport=request.transport)
        self.watches.add(watch)
        try:
            await response.prepare(request)
            if options.resource_version is None and options.send_initial_events:
                # Taken whole before the first write: a scrape stored while they are
                # written is queued for this watch with a later version, and the
                # bookmark marks the version they were taken at.
                version = self.resource_version
                initial = [
                    event_line(ADDED, obj)
                    for obj in self._stored(pods)
                    if chosen(
                        obj["metadata"].get("namespace", ""),
                        obj["metadata"]["name"],
                        obj["metadata"].get("labels", {}),
                    )
                ]
                if options.bookmarks:
                    mark = bookmark(kind, GROUP_VERSION, version, end=True)
                    initial.append(event_line(BOOKMARK, mark))
                # Written as a LIST is, in chunks, and not under the slow-consumer rule:
                # while a client takes 150,000 initial events, the scrapes stored
                # meanwhile wait for it whatever their number.
                for i in range(0, len(initial), INITIAL_EVENTS_PER_WRITE):
                    await response.write(b"".join(initial[i : i + INITIAL_EVENTS_PER_WRITE]))
            await self._stream(request, response, watch, options.timeout, options.bookmarks)
        except ConnectionError:
            pass
        finally:
            self.watches.discard(watch)
            # What was sent is followed only while someone watches that kind.
            if not any(w.pods for w in self.watches):
                self._pods_of_node.clear()
            if not any(not w.pods for w in self.watches):
                self._nodes_sent.clear()
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        watch: _Watch,
        timeout: float,
        bookmarks: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_bookmark = loop.time()
        kind = "PodMetrics" if watch.pods else "NodeMetrics"
        while not self.closed:
            if watch.overflowed:
                return  # a slow consumer: closed, and its client watches again
            lines = b"".join(watch.events)
            watch.events.clear()
            watch.ready.clear()
            if lines:
                await watch.write(response, lines)
            now = loop.time()
            transport = request.transport
            if now >= deadline or transport is None or transport.is_closing():
                return
            if bookmarks and now - last_bookmark >= BOOKMARK_INTERVAL:
                mark = bookmark(kind, GROUP_VERSION, self.resource_version)
                await watch.write(response, event_line(BOOKMARK, mark))
                last_bookmark = now
            try:
                await asyncio.wait_for(watch.ready.wait(), min(deadline - now, LIVENESS_CHECK))
            except TimeoutError:
                continue


def _versioned(kind: str, item: dict[str, Any], version: str) -> dict[str, Any]:
    item["metadata"]["resourceVersion"] = version
    return {"kind": kind, "apiVersion": GROUP_VERSION, **item}


def _deleted(
    kind: str, namespace: str, name: str, labels: Mapping[str, str], version: str
) -> Event:
    """A DELETED event's object: the metadata by which watches choose it, no usage."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        # Kept so that a label-selected watch hears of its object's end.
        meta["labels"] = dict(labels)
    meta["resourceVersion"] = version
    return DELETED, {"kind": kind, "apiVersion": GROUP_VERSION, "metadata": meta}


def _pod_deleted(pods: Mapping[PodKey, Pod], namespace: str, name: str, version: str) -> Event:
    gone = pods.get((namespace, name))
    return _deleted("PodMetrics", namespace, name, gone.labels if gone else {}, version)
