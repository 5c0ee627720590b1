"""Usage polled from any cluster's metrics API: what `kubepulse dashboard` records.

Every interval the poller reads, with the kubeconfig's credentials:
- `GET /apis/metrics.k8s.io/v1beta1/nodes` and `/pods`: NodeMetrics and PodMetrics,
  whoever serves them (the upstream metrics-server or kubepulse). Their CPU is already
  a rate over `window` ("123456n" cores), memory the working set ("1024Ki");
- `GET /api/v1/nodes` and `/api/v1/pods`: allocatable, capacity, labels, requests and
  limits, read into the same Node and Pod model as every other inventory.

Usage goes into a RatedStore (store_usage) and, through the scrape manager's
Recorder (a HistoryRecorder, the dashboard's pod index), into the SQLite history, so the
dashboard shows what `kubepulse up` shows, and keeps days where
dashboard-metrics-scraper keeps 15 minutes.

Nothing stops the poller: a metrics API that answers 404 or 503 (no metrics-server, or
its APIService not Available: kubectl says "Metrics API not available"), a server that
cannot be reached, a bad answer: each is logged once when it starts or changes, and
the next poll tries again. While usage cannot be read the store holds none, so stale
numbers are never shown as current (metrics-server drops a node whose scrape failed).
"""

from __future__ import annotations

import asyncio
import logging

from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.metrics import MetricsReader, each, items, node_rate, pod_rates
from kubepulse.kube.objects import Node, ObjectError, Pod, node_from_object, pod_from_object
from kubepulse.scrape.manager import Recorder
from kubepulse.store.rated import RatedStore
from kubepulse.store.rates import PodRates, Rate

log = logging.getLogger(__name__)

# Finished pods run no containers, so no metrics API has usage for them.
UNFINISHED_PODS = "status.phase!=Succeeded,status.phase!=Failed"
# resourceVersion=0: served from the API server's watch cache, not a quorum read (what
# client-go's reflector asks for when it lists), so a poll every 15 s stays cheap.
LIST_OPTIONS = {"resourceVersion": "0"}

PodKey = tuple[str, str]


class PolledInventory:
    """The Inventory of the last successful list of nodes and pods."""

    def __init__(self) -> None:
        self._nodes: list[Node] = []
        self._pods: list[Pod] = []

    def nodes(self) -> list[Node]:
        return self._nodes

    def pods(self) -> list[Pod]:
        return self._pods

    def replace(self, nodes: list[Node], pods: list[Pod]) -> None:
        self._nodes, self._pods = nodes, pods


# ----- the poller

FAILURES = (ApiError, Unreachable, ObjectError)


def describe(err: Exception) -> str:
    if isinstance(err, ApiError):
        return f"{err.code} {err.reason}: {err.message}"
    return str(err)


def metrics_problem(err: Exception) -> str:
    """What a failed read of the metrics API means, in kubectl top's words when the API
    is not served: 404 (no APIService) or 503 (its backend is not Available)."""
    if isinstance(err, ApiError) and err.code in (404, 503):
        return f"Metrics API not available ({describe(err)})"
    if isinstance(err, Unreachable):
        return str(err)
    return f"cannot read the metrics API: {describe(err)}"


class MetricsApiPoller:
    def __init__(
        self,
        client: KubeClient,
        store: RatedStore,
        inventory: PolledInventory,
        interval: float,
        recorder: Recorder | None = None,
    ) -> None:
        self.client, self.store, self.inventory = client, store, inventory
        self.interval, self.recorder = interval, recorder
        self.problem = ""
        """What went wrong in the last poll ("" when nothing did)."""
        self.polls = 0
        self.stored_polls = 0
        """Polls whose usage was read and stored."""
        self.following = False
        """Whether usage comes by the metrics API's watch (scrape/metrics_api_watch.py)."""

    async def run(self) -> None:
        """Poll now and then every interval, until cancelled. A poll that takes longer
        than the interval is followed by the next at once; missed ticks are not made up."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.poll()
            except Exception as err:  # a long-running poller keeps polling, whatever broke
                self.report([f"poll failed: {type(err).__name__}: {err}"])
            next_at = max(next_at + self.interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def poll(self) -> bool:
        """One poll; True when usage was read and stored."""
        skipped: list[str] = []
        listed, measured = await asyncio.gather(
            self.list_objects(skipped), self._measure(skipped), return_exceptions=True
        )
        problems: list[str] = []
        if isinstance(listed, BaseException):
            listing = f"cannot list nodes and pods: {describe(_known(listed))}"
            if not isinstance(measured, Unreachable):  # else the one cause is said below
                problems.append(listing)
        else:
            self.inventory.replace(*listed)
        if isinstance(measured, BaseException):
            problems.append(metrics_problem(_known(measured)))
            self.store.retain(set())
        else:
            self.store_usage(*measured)
        if skipped:
            problems.append(f"skipped {len(skipped)} object(s) that cannot be read: {skipped[0]}")
        self.cycle_done()
        self.polls += 1
        self.report(problems)
        return not isinstance(measured, BaseException)

    async def list_objects(self, skipped: list[str]) -> tuple[list[Node], list[Pod]]:
        nodes, pods = await asyncio.gather(
            self.client.get("/api/v1/nodes", LIST_OPTIONS),
            self.client.get("/api/v1/pods", {**LIST_OPTIONS, "fieldSelector": UNFINISHED_PODS}),
        )
        return (
            each(
                items(nodes, "/api/v1/nodes"),
                lambda o: node_from_object(o, keep_raw=False),
                skipped,
            ),
            each(
                items(pods, "/api/v1/pods"), lambda o: pod_from_object(o, keep_raw=False), skipped
            ),
        )

    async def _measure(self, skipped: list[str]) -> tuple[dict[str, Rate], dict[PodKey, PodRates]]:
        reader = MetricsReader(self.client)
        nodes, pods = await asyncio.gather(reader.nodes(), reader.pods(None))
        return dict(each(nodes, node_rate, skipped)), dict(each(pods, pod_rates, skipped))

    def store_usage(self, node_rates: dict[str, Rate], pods: dict[PodKey, PodRates]) -> None:
        """Per node, as the store and history keep usage; a pod the core API did not list
        (created since) goes under node "" until the next list places it."""
        self.stored_polls += 1
        where = {(p.namespace, p.name): p.node_name for p in self.inventory.pods()}
        by_node: dict[str, dict[PodKey, PodRates]] = {name: {} for name in node_rates}
        for key, rates in pods.items():
            by_node.setdefault(where.get(key, ""), {})[key] = rates
        for name, node_pods in by_node.items():
            self.store.store_usage(name, node_rates.get(name), node_pods)
        self.store.retain(set(by_node))
        if self.recorder is not None:
            for name in by_node:
                self.recorder.node_stored(name)

    def cycle_done(self) -> None:
        """The history writes what was stored; the dashboard's pod index is prepared."""
        if self.recorder is not None:
            self.recorder.tick_done()

    def report(self, problems: list[str]) -> None:
        """Log once per change: a new problem as a warning, its end as info."""
        problem = "; ".join(problems)
        server = self.client.creds.server
        if problem and problem != self.problem:
            if self.following:
                log.warning(
                    "following the metrics watch of %s: %s; trying again every %gs",
                    server,
                    problem,
                    self.interval,
                )
            else:
                log.warning(
                    "polling %s: %s; polling goes on every %gs", server, problem, self.interval
                )
        elif not problem and self.problem:
            what = "following the metrics watch of" if self.following else "polling"
            log.info("%s %s works again", what, server)
        self.problem = problem


def _known(err: BaseException) -> Exception:
    """An expected failure as it is; anything else goes on up to run()."""
    if isinstance(err, FAILURES):
        return err
    raise err
