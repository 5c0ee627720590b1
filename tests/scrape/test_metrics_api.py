"""The metrics API poller: NodeMetrics and PodMetrics into the store and the history, and
a cluster whose metrics API is missing, failing or down never stops it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kubepulse.api.status import status_response
from kubepulse.dashboard.pod_index import PodIndex, pod_index
from kubepulse.history.file import History
from kubepulse.history.recorder import HistoryRecorder
from kubepulse.kube.client import KubeClient
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.metrics import METRICS, node_rate, pod_rates
from kubepulse.kube.objects import ObjectError
from kubepulse.scrape.manager import Recorders
from kubepulse.scrape.metrics_api import UNFINISHED_PODS, MetricsApiPoller, PolledInventory
from kubepulse.store.rated import RatedStore
from kubepulse.store.rates import PodRates, Rate
from tests.api.conftest import COREDNS, KI, MI, NODE_OBJECTS, POD_OBJECTS, T1, T1_TEXT
from tests.fakeapi.fixtures import until
from tests.support import free_port


def node_metrics(name: str, cpu: str, memory: str, window: str = "15.003s") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": T1_TEXT},
        "timestamp": T1_TEXT,
        "window": window,
        "usage": {"cpu": cpu, "memory": memory},
    }


def pod_metrics(
    namespace: str, name: str, containers: dict[str, tuple[str, str]], window: str = "15s"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": T1_TEXT},
        "timestamp": T1_TEXT,
        "window": window,
        "containers": [
            {"name": c, "usage": {"cpu": cpu, "memory": memory}}
            for c, (cpu, memory) in containers.items()
        ],
    }


# ----- parsing, item by item


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        # metrics-server's documented example.
        (
            node_metrics("node-b", "487558164n", "732212Ki"),
            ("node-b", Rate(T1, 15.003, 487_558_164, 732_212 * KI)),
        ),
        (
            node_metrics("node-a", "250m", "1Gi", window="1m0.5s"),
            ("node-a", Rate(T1, 60.5, 250_000_000, 1024 * MI)),
        ),
        (node_metrics("big", "64", "0", window="30s"), ("big", Rate(T1, 30.0, 64 * 10**9, 0))),
        (node_metrics("micro", "1500u", "1k"), ("micro", Rate(T1, 15.003, 1_500_000, 1000))),
    ],
)
def test_node_metrics_become_a_rate(obj: dict[str, Any], expected: tuple[str, Rate]) -> None:
    assert node_rate(obj) == expected


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        ({"metadata": {}}, "a NodeMetrics has no metadata.name"),
        ("not an object", "a NodeMetrics has no metadata.name"),
        ({**node_metrics("n", "1", "1"), "usage": None}, "NodeMetrics n has no usage"),
        ({**node_metrics("n", "1", "1"), "usage": {"cpu": "1"}}, "NodeMetrics n has no memory"),
        (node_metrics("n", "12q", "1"), "NodeMetrics n: invalid quantity '12q'"),
        (
            {**node_metrics("n", "1", "1"), "timestamp": None},
            "NodeMetrics n: invalid RFC 3339 time 'None'",
        ),
        ({k: v for k, v in node_metrics("n", "1", "1").items() if k != "window"}, "has no window"),
        (node_metrics("n", "1", "1", window="soon"), "NodeMetrics n: invalid duration 'soon'"),
    ],
)
def test_node_metrics_that_cannot_be_read_say_why(obj: Any, error: str) -> None:
    with pytest.raises(ObjectError, match=error):
        node_rate(obj)


def test_pod_metrics_become_the_pods_rates_with_containers_by_name() -> None:
    obj = pod_metrics("default", "web-1", {"nginx": ("1m", "1Mi"), "log-shipper": ("2", "2Mi")})
    assert pod_rates(obj) == (
        ("default", "web-1"),
        PodRates(
            T1,
            15.0,
            (
                ("log-shipper", Rate(T1, 15.0, 2 * 10**9, 2 * MI)),
                ("nginx", Rate(T1, 15.0, 1_000_000, MI)),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        ({**pod_metrics("ns", "p", {}), "metadata": {}}, "a PodMetrics has no metadata.name"),
        (
            {**pod_metrics("ns", "p", {}), "containers": [{"usage": {}}]},
            "PodMetrics ns/p has a container without a name",
        ),
        (pod_metrics("ns", "p", {"c": ("x", "1")}), "PodMetrics ns/p container c: invalid"),
    ],
)
def test_pod_metrics_that_cannot_be_read_say_why(obj: Any, error: str) -> None:
    with pytest.raises(ObjectError, match=error):
        pod_rates(obj)


# ----- polling a cluster


@dataclass
class FakeCluster:
    """The four lists the poller reads, and switches to make each answer fail."""

    nodes: list[dict[str, Any]] = field(default_factory=lambda: list(NODE_OBJECTS))
    pods: list[dict[str, Any]] = field(default_factory=lambda: list(POD_OBJECTS))
    node_metrics: list[Any] = field(
        default_factory=lambda: [
            node_metrics("node-a", "500m", "1Mi"),
            node_metrics("node-b", "487558164n", "732212Ki"),
        ]
    )
    pod_metrics: list[Any] = field(
        default_factory=lambda: [
            pod_metrics("kube-system", COREDNS, {"coredns": ("9559563n", "22244Ki")}),
            pod_metrics(
                "default", "web-1", {"nginx": ("100m", "1Mi"), "log-shipper": ("2m", "2Mi")}
            ),
            # Started after the pods were listed: the core API does not know it yet.
            pod_metrics("default", "just-started", {"app": ("1m", "1Mi")}),
        ]
    )
    metrics_status: int = 200
    core_status: int = 200
    queries: dict[str, dict[str, str]] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/nodes", self._answer("nodes", lambda: self.nodes, False))
        app.router.add_get("/api/v1/pods", self._answer("pods", lambda: self.pods, False))
        app.router.add_get(
            f"{METRICS}/nodes", self._answer("node metrics", lambda: self.node_metrics, True)
        )
        app.router.add_get(
            f"{METRICS}/pods", self._answer("pod metrics", lambda: self.pod_metrics, True)
        )
        return app

    def _answer(
        self, what: str, items: Callable[[], list[Any]], metrics: bool
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            self.queries[what] = dict(request.query)
            code = self.metrics_status if metrics else self.core_status
            if code != 200:
                return status_response(code, f"{what} refused for the test")
            return web.json_response({"kind": "List", "items": items()})

        return handler


@dataclass
class Polling:
    cluster: FakeCluster
    poller: MetricsApiPoller
    store: RatedStore
    inventory: PolledInventory
    history: History


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "history.db")
    yield h
    h.close()


@pytest.fixture
async def polling(aiohttp_client: Any, history: History) -> AsyncIterator[Polling]:
    cluster = FakeCluster()
    client: TestClient[Any, Any] = await aiohttp_client(cluster.app())
    creds = Credentials(server=str(client.make_url("")).rstrip("/"), token="poller-token")
    store, inventory = RatedStore(15.0), PolledInventory()
    async with KubeClient(creds) as kube:
        # As `kubepulse dashboard` builds it: the history, and the dashboard's pod index.
        recorder = Recorders(HistoryRecorder(store, history), pod_index(store, inventory))
        poller = MetricsApiPoller(kube, store, inventory, 15.0, recorder)
        yield Polling(cluster, poller, store, inventory, history)


async def test_a_poll_fills_the_inventory_and_the_store(polling: Polling) -> None:
    assert await polling.poller.poll()
    assert polling.poller.problem == ""
    assert [n.name for n in polling.inventory.nodes()] == [
        n["metadata"]["name"] for n in NODE_OBJECTS
    ]
    assert {(p.namespace, p.name) for p in polling.inventory.pods()} == {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in POD_OBJECTS
    }
    store = polling.store
    assert store.node("node-a") == Rate(T1, 15.003, 500_000_000, MI)
    assert store.node("node-b") == Rate(T1, 15.003, 487_558_164, 732_212 * KI)
    assert store.node("node-c") is None
    # Each pod is kept under the node the core API places it on.
    assert store.pod("node-b", "default", "web-1") == PodRates(
        T1,
        15.0,
        (
            ("log-shipper", Rate(T1, 15.0, 2_000_000, 2 * MI)),
            ("nginx", Rate(T1, 15.0, 100_000_000, MI)),
        ),
    )
    assert store.pod("node-a", "kube-system", COREDNS) is not None
    assert store.pod("", "default", "just-started") is not None
    assert len(store.pods()) == 3


async def test_a_poll_prepares_the_dashboards_pod_index_only_while_it_is_watched(
    polling: Polling,
) -> None:
    index = pod_index(polling.store, polling.inventory)
    assert await polling.poller.poll()
    await index.prepared()
    assert index._view is None  # nobody looked: nothing was prepared
    before = index.view()  # a request reads it: the dashboard is watched now
    assert await polling.poller.poll()
    await index.prepared()
    after = index._view
    # Prepared after the poll: the next request finds it built and only reads it.
    assert after is not None and after is not before
    assert index.view(asked=False) is after
    # What it prepared is what an index built from scratch now reads.
    fresh = PodIndex(polling.store, polling.inventory).view(asked=False)
    assert after.usage == fresh.usage and len(after.usage) >= 2


async def test_pods_and_nodes_are_listed_from_the_watch_cache_without_finished_pods(
    polling: Polling,
) -> None:
    await polling.poller.poll()
    assert polling.cluster.queries["pods"] == {
        "resourceVersion": "0",
        "fieldSelector": UNFINISHED_PODS,
    }
    assert polling.cluster.queries["nodes"] == {"resourceVersion": "0"}


async def test_a_poll_is_recorded_in_the_history(polling: Polling) -> None:
    assert await polling.poller.poll()
    assert await asyncio.to_thread(polling.history.flush, 10)

    def query(kind: str, namespace: str, name: str, container: str = "") -> list[Any]:
        return polling.history.query(kind, namespace, name, container, T1 - 60, T1 + 60, 15)

    [node] = query("node", "", "node-b")
    # CPU is kept in microcores (history/chunks.py): 487,558,164 nanocores rounded.
    assert (node.cpu_nanocores, node.memory_bytes) == (487_558_000, 732_212 * KI)
    [pod] = query("pod", "default", "web-1")
    assert (pod.cpu_nanocores, pod.memory_bytes) == (102_000_000, 3 * MI)
    [container] = query("container", "default", "web-1", "nginx")
    assert container.cpu_nanocores == 100_000_000
    [namespace] = query("namespace", "default", "")
    assert namespace.cpu_nanocores == 103_000_000  # web-1 and just-started


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        (503, "Metrics API not available (503 ServiceUnavailable: "),
        (404, "Metrics API not available (404 NotFound: "),
        (500, "cannot read the metrics API: 500 InternalError: "),
        (403, "cannot read the metrics API: 403 Forbidden: "),
    ],
)
async def test_a_failing_metrics_api_empties_the_store_and_says_why(
    polling: Polling, code: int, problem: str
) -> None:
    assert await polling.poller.poll()
    polling.cluster.metrics_status = code
    assert not await polling.poller.poll()
    assert polling.poller.problem.startswith(problem)
    # No stale usage shown as current; what exists is still listed.
    assert polling.store.node_names() == set()
    assert polling.store.pods() == {}
    assert len(polling.inventory.nodes()) == len(NODE_OBJECTS)


async def test_a_failure_is_logged_once_and_its_end_once(
    polling: Polling, caplog: pytest.LogCaptureFixture
) -> None:
    polling.cluster.metrics_status = 503
    with caplog.at_level(logging.INFO, logger="kubepulse.scrape.metrics_api"):
        for _ in range(3):
            assert not await polling.poller.poll()
        polling.cluster.metrics_status = 200
        for _ in range(2):
            assert await polling.poller.poll()
    # The poller's own lines: a test before may have left the root logger at INFO, and
    # the fake API's access log reaches caplog too.
    messages = [r.getMessage() for r in caplog.records if r.name == "kubepulse.scrape.metrics_api"]
    assert len(messages) == 2, messages
    assert "Metrics API not available" in messages[0]
    assert messages[1].endswith("works again")
    assert "poller-token" not in caplog.text
    assert polling.store.node("node-a") is not None


async def test_a_failing_core_api_keeps_the_last_lists_and_still_stores_usage(
    polling: Polling,
) -> None:
    assert await polling.poller.poll()
    polling.cluster.core_status = 403
    polling.cluster.nodes = []
    assert await polling.poller.poll()
    assert polling.poller.problem.startswith("cannot list nodes and pods: 403 Forbidden")
    assert len(polling.inventory.nodes()) == len(NODE_OBJECTS)
    assert polling.store.node("node-a") is not None


async def test_objects_that_cannot_be_read_are_skipped_and_said(polling: Polling) -> None:
    polling.cluster.node_metrics.append(node_metrics("broken", "lots", "1Mi"))
    polling.cluster.nodes.append({"kind": "Node", "metadata": {}})
    assert await polling.poller.poll()
    assert polling.poller.problem.startswith("skipped 2 object(s) that cannot be read: ")
    assert polling.store.node_names() == {"node-a", "node-b"}
    assert len(polling.inventory.nodes()) == len(NODE_OBJECTS)


async def test_the_poller_keeps_running_while_the_server_is_down_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    store, inventory = RatedStore(0.05), PolledInventory()
    creds = Credentials(server=f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.INFO, logger="kubepulse.scrape.metrics_api"):
        async with KubeClient(creds, timeout=2.0) as kube:
            poller = MetricsApiPoller(kube, store, inventory, 0.05)
            task = asyncio.create_task(poller.run())
            runner: web.AppRunner | None = None
            try:
                await until(lambda: poller.polls >= 3, "three polls of a server that is down")
                assert not task.done()
                assert "was refused" in poller.problem
                assert poller.stored_polls == 0
                runner = web.AppRunner(FakeCluster().app())
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                await until(lambda: poller.stored_polls >= 1, "a poll once the server is up")
                await until(lambda: poller.problem == "", "the problem to clear")
                assert store.node("node-a") is not None
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                if runner is not None:
                    await runner.cleanup()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # however many polls failed
