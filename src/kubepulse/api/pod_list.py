"""The PodMetricsList body, rendered per node once per scrape and joined per request.

A LIST of 150,000 pods cannot build and serialise 150,000 dicts each time. An item is
kept in parts: the pod's own part (name, namespace, labels), which changes only with the
Pod object, and the usage part (timestamp, window, containers), which changes only with
a scrape of the pod's node. Between them goes creationTimestamp, the time of each request
(metrics-server pkg/api/pod.go). The usage parts of a node are rendered together the
first time a LIST needs them after the node's scrape or, while clients are listing, as
soon as the scrape is stored (node_stored), so that a LIST after a cycle only joins.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache

import orjson

from kubepulse.kube.objects import Pod
from kubepulse.quantity import format_bytes, format_nanocores
from kubepulse.store.rates import PodKey, PodRates
from kubepulse.store.reading import NodePods, UsageStore
from kubepulse.timefmt import go_duration, rfc3339

_Usage = dict[PodKey, bytes]  # (namespace, name) -> usage part; absent: no data

LIST_HEAD = (
    b'{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":['
)
LIST_TAIL = b"]}"
_CREATED = b',"creationTimestamp":"'
_CONTAINER = '{"name":%s,"usage":{"cpu":"%s","memory":"%s"}}'
_USAGE = '%s","window":"%s","containers":[%s]}'


@lru_cache(maxsize=4096)
def _json_string(text: str) -> str:
    return orjson.dumps(text).decode()


def usage_part(rates: PodRates) -> bytes:
    """An item from the timestamp's value on: the same keys in the same order as
    metrics.pod_metrics() (timestamp, window, containers by name)."""
    containers = ",".join(
        _CONTAINER
        % (_json_string(name), format_nanocores(r.cpu_nanocores), format_bytes(r.working_set_bytes))
        for name, r in rates.containers
    )
    return (_USAGE % (rfc3339(rates.timestamp), go_duration(rates.window), containers)).encode()


def render_node(pods: NodePods) -> _Usage:
    """The usage part of every servable pod of one node (the store's rules decide which)."""
    return {key: usage_part(rates) for key, rates in pods.pod_rates()}


def pod_part(pod: Pod) -> tuple[bytes, bytes]:
    """An item up to creationTimestamp's value, and from after it to timestamp's value."""
    meta = orjson.dumps({"name": pod.name, "namespace": pod.namespace})
    head = b'{"metadata":' + meta[:-1] + _CREATED
    labels = b',"labels":' + orjson.dumps(dict(pod.labels)) if pod.labels else b""
    return head, b'"' + labels + b'},"timestamp":"'


class RenderedPods:
    """Rendered parts, kept while the Pod object and its node's store generation last."""

    def __init__(self, store: UsageStore, resolution: float | None = None) -> None:
        self.store = store
        self.resolution = resolution if resolution is not None else store.resolution
        # node name -> (store generation, usage parts of its pods)
        self._usage: dict[str, tuple[int, _Usage]] = {}
        # id(Pod) -> (the Pod, its two parts): the Pod is kept so the id stays its own.
        self._pods: dict[int, tuple[Pod, bytes, bytes]] = {}
        self._listed: dict[str, float] = {}  # node -> when a LIST last needed it
        self.renders = 0
        """Nodes rendered so far: once per node per scrape at most, however many LISTs."""

    def node_usage(self, node_name: str) -> _Usage:
        generation = self.store.generation(node_name)
        cached = self._usage.get(node_name)
        if cached is not None and cached[0] == generation:
            return cached[1]
        usage = render_node(self.store.node_pods(node_name))
        self.renders += 1
        self._usage[node_name] = (generation, usage)
        return usage

    def body(self, pods: Sequence[Pod], created: str, whole: bool) -> list[bytes]:
        """The PodMetricsList of `pods` (sorted), as chunks to write in order. whole:
        `pods` are all there are, so the parts of pods and nodes gone can be let go."""
        stamp = created.encode()
        chunks: list[bytes] = [LIST_HEAD]
        add = chunks.extend
        usage_of: dict[str, _Usage] = {}  # this LIST's nodes
        own = self._pods
        where: dict[PodKey, str] | None = None
        for pod in pods:
            key = (pod.namespace, pod.name)
            node = pod.node_name
            if not node:
                # A Pod object without a node (nodes-only targets): found in the store.
                where = where if where is not None else self._nodes_of_pods()
                node = where.get(key, "")
            usage = usage_of.get(node)
            if usage is None:
                usage = usage_of[node] = self.node_usage(node) if node else {}
            part = usage.get(key)
            if part is None:
                continue
            parts = own.get(id(pod))
            if parts is None or parts[0] is not pod:
                parts = own[id(pod)] = (pod, *pod_part(pod))
            add((parts[1], stamp, parts[2], part, b","))
        if len(chunks) > 1:
            chunks[-1] = LIST_TAIL
        else:
            chunks.append(LIST_TAIL)
        now = time.monotonic()
        self._listed.update(dict.fromkeys(usage_of, now))
        if whole:
            self._usage = {n: u for n, u in self._usage.items() if n in usage_of}
            live = {id(p) for p in pods}
            self._pods = {k: v for k, v in own.items() if k in live}
        return chunks

    def _nodes_of_pods(self) -> dict[PodKey, str]:
        return {key: node for node in self.store.node_names() for key in self.store.node_pods(node)}

    # -- after each scrape cycle (the manager's Recorder) ----------------------------------
    def node_stored(self, node_name: str) -> None:
        """While LISTs need this node (one in the last two resolutions did), render its
        usage parts as soon as its scrape is stored: at thousands of nodes a LIST made
        after a cycle, as an HPA makes once per resolution, arrives while the last
        answers are still being decoded, and then only joins."""
        if node_name in self._listed:
            self.node_usage(node_name)

    def tick_done(self) -> None:
        """Stop prerendering the nodes no LIST has needed for two resolutions."""
        recent = time.monotonic() - 2 * self.resolution
        self._listed = {n: t for n, t in self._listed.items() if t >= recent}
