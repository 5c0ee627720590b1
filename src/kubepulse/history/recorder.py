"""What the history records from the store, and how: HistoryRecorder, on the event loop,
queues each stored node's points and the end of each cycle; Batcher, on the history's
writer thread, turns them into batches of rates (store.rates, the API's rule): a node,
its containers, its pods as their sums, and a cycle's namespace and cluster totals."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from kubepulse.history.writer import Batch, SeriesKey, batches_of
from kubepulse.store.rates import Columns, PodKey, Rate
from kubepulse.store.reading import NodePods, UsageStore


class NodeScrape(NamedTuple):
    """What HistoryRecorder queues for a stored node: its rate and its pods' points (a
    mapping the store replaces at the node's next scrape and never changes)."""

    name: str
    rate: Rate | None
    pods: NodePods


class Tick(NamedTuple):
    """The end of a scrape cycle: namespace totals are due; these nodes are gone."""

    dropped: tuple[str, ...]


_PodKeys = tuple[list[str], tuple[SeriesKey, ...], SeriesKey]


class Batcher:
    """Turns NodeScrapes and Ticks into batches, on the writer's thread: the rates of a
    node's containers, its pods as their sums, and a tick's namespace totals."""

    def __init__(self) -> None:
        # node -> namespace -> [cpu, memory, newest timestamp] of that node's pods
        self._namespaces: dict[str, dict[str, list[float]]] = {}
        # node -> its latest rate: the cluster's total is their sum, what the overview's
        # "CPU used" and "Memory used" show (nodes, not pods: the system's own use counts)
        self._nodes: dict[str, Rate] = {}
        # node -> pod -> (its served containers' names, their series keys, its own key):
        # the same tuples scrape after scrape, so the writer sees the same layout at once.
        self._keys: dict[str, dict[PodKey, _PodKeys]] = {}

    def node(self, scrape: NodeScrape) -> Batch:
        node_name, r = scrape.name, scrape.rate
        columns = Columns()
        usage = scrape.pods.usage(columns)
        keys: list[SeriesKey] = []
        ts: list[float] = []
        cpu: list[int] = []
        mem: list[int] = []
        if r is not None:
            self._nodes[node_name] = r
            keys.append(("node", "", node_name, ""))
            ts.append(r.timestamp)
            cpu.append(r.cpu_nanocores)
            mem.append(r.working_set_bytes)
        before, now = self._keys.get(node_name, {}), {}
        names, at = columns.names, 0
        pod_keys: list[SeriesKey] = []
        for key, _, _, _, count in usage:  # the pods' containers, then the pods
            served = names[at : at + count]
            at += count
            known = before.get(key)
            if known is None or known[0] != served:
                containers = tuple([("container", key[0], key[1], n) for n in served])
                known = (served, containers, ("pod", key[0], key[1], ""))
            now[key] = known
            keys += known[1]
            pod_keys.append(known[2])
        self._keys[node_name] = now
        keys += pod_keys
        ts += columns.ts
        cpu += columns.cpu
        mem += columns.mem
        totals: dict[str, list[float]] = {}
        for key, c, m, earliest, _ in usage:
            ts.append(earliest)
            cpu.append(c)
            mem.append(m)
            total = totals.get(key[0])
            if total is None:
                totals[key[0]] = [c, m, earliest]
            else:
                total[0] += c
                total[1] += m
                if earliest > total[2]:
                    total[2] = earliest
        self._namespaces[node_name] = totals
        return Batch(node_name, tuple(keys), ts, cpu, mem)

    def tick(self, tick: Tick) -> list[Batch]:
        for node in tick.dropped:
            self._namespaces.pop(node, None)
            self._keys.pop(node, None)
            self._nodes.pop(node, None)
        sums: dict[str, list[float]] = {}
        for per_node in self._namespaces.values():
            for ns, (cpu, mem, ts) in per_node.items():
                total = sums.setdefault(ns, [0, 0, 0.0])
                total[0] += cpu
                total[1] += mem
                total[2] = max(total[2], ts)
        rows = [
            ("namespace", ns, "", "", ts, int(cpu), int(mem)) for ns, (cpu, mem, ts) in sums.items()
        ]
        if self._nodes:
            rates = self._nodes.values()
            rows.append(
                (
                    "cluster",
                    "",
                    "",
                    "",
                    max(r.timestamp for r in rates),
                    sum(r.cpu_nanocores for r in rates),
                    sum(r.working_set_bytes for r in rates),
                )
            )
        return batches_of(rows, group="namespaces")


class _Sink(Protocol):
    def record_scrape(self, scrape: NodeScrape) -> bool: ...
    def record_tick(self, tick: Tick) -> bool: ...


class HistoryRecorder:
    """Feeds a History from a MetricsStore: the rates the metrics API serves.

    node_stored() records one node's rates (node, containers, and pods as the sum of
    their containers at their earliest container's time) right after the scrape manager
    stored the node, as one batch of the node's group. tick_done() records namespace
    totals once per tick, summed over the latest pods of every node, so that a
    namespace gets one point per tick instead of one per node.

    On the event loop both only queue what the store holds (the points the store will
    replace, never change): the rates are computed on the writer's thread, in the quiet
    after the scrape cycle, so that recording adds almost nothing to the scrapes' time.
    """

    def __init__(self, store: UsageStore, history: _Sink) -> None:
        self.store, self.history = store, history
        self._nodes: set[str] = set()

    def node_stored(self, node_name: str) -> None:
        """Record what the store now serves for the node."""
        self._nodes.add(node_name)
        store = self.store
        self.history.record_scrape(
            NodeScrape(node_name, store.node(node_name), store.node_pods(node_name))
        )

    def tick_done(self) -> None:
        """Record namespace totals; nodes the store dropped no longer count. Then the
        cycle is written."""
        dropped = tuple(n for n in self._nodes if self.store.generation(n) == 0)
        self._nodes.difference_update(dropped)
        self.history.record_tick(Tick(dropped))
