"""A server application over a real store, filled as scrapes would fill it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import Authenticator, User
from kubepulse.api.metrics_watch import MetricsWatchers
from kubepulse.kube.feed import ObjectFeed
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import node_from_object, pod_from_object
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.selfmetrics import SelfMetrics
from kubepulse.store.points import MetricsStore

TOKEN = "0b7c1f0e5d3a4c2b9e8f7a6d5c4b3a21"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RESOLUTION = 15.0

# 2022-01-27T18:48:33Z, the timestamp of metrics-server's documented example.
T1 = 1_643_309_313.0
T1_TEXT = "2022-01-27T18:48:33Z"
CREATED = "2021-11-02T09:15:00Z"
COREDNS = "coredns-7db6d8ff4d-x2x9p"
KI = 1024
MI = 1024 * KI


def node_object(name: str, labels: Mapping[str, str], ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"0f8e2c6a-{name}",
            "resourceVersion": "48213",
            "creationTimestamp": CREATED,
            "labels": dict(labels),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": "4", "memory": "16374784Ki", "pods": "110"},
            "allocatable": {"cpu": "3800m", "memory": "15223808Ki", "pods": "110"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "kubeletVersion": "v1.32.2",
                "osImage": "Ubuntu 24.04.1 LTS",
                "kernelVersion": "6.8.0-51-generic",
                "containerRuntimeVersion": "containerd://1.7.24",
            },
        },
    }


def pod_object(
    namespace: str,
    name: str,
    node: str,
    labels: Mapping[str, str],
    containers: list[str],
    phase: str = "Running",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"6a1d-{name}",
            "creationTimestamp": CREATED,
            "labels": dict(labels),
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": c,
                    "image": f"registry.k8s.io/{c}:1.0",
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "70Mi"},
                        "limits": {"memory": "170Mi"},
                    },
                }
                for c in containers
            ],
        },
        "status": {
            "phase": phase,
            "podIP": "10.244.0.7",
            "startTime": CREATED,
            "containerStatuses": [
                {"name": c, "ready": phase == "Running", "restartCount": 0} for c in containers
            ],
        },
    }


ZONE = "topology.kubernetes.io/zone"
NODE_OBJECTS = [
    node_object(
        "node-a",
        {
            "kubernetes.io/hostname": "node-a",
            ZONE: "zone-a",
            "node-role.kubernetes.io/control-plane": "",
        },
        "127.0.0.2",
    ),
    node_object("node-b", {"kubernetes.io/hostname": "node-b", ZONE: "zone-b"}, "127.0.0.3"),
    # No metrics are stored for node-c.
    node_object("node-c", {"kubernetes.io/hostname": "node-c", ZONE: "zone-a"}, "127.0.0.4"),
    node_object("node-d", {}, "127.0.0.5"),
]
POD_OBJECTS = [
    pod_object(
        "kube-system",
        COREDNS,
        "node-a",
        {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"},
        ["coredns"],
    ),
    pod_object("default", "web-1", "node-b", {"app": "web"}, ["nginx", "log-shipper"]),
    # No metrics are stored for web-2.
    pod_object("default", "web-2", "node-c", {"app": "web"}, ["nginx"], phase="Pending"),
]


def inventory() -> StaticInventory:
    return StaticInventory(
        [node_from_object(n) for n in NODE_OBJECTS], [pod_from_object(p) for p in POD_OBJECTS]
    )


def _container(name: str, ts: float, cpu: int, ws: int) -> ContainerSample:
    return ContainerSample(name, T1 - 86_400, Usage(ts, cpu, ws))


def _pod(namespace: str, name: str, *containers: ContainerSample) -> PodSample:
    return PodSample(namespace, name, f"6a1d-{name}", T1 - 86_400, containers)


def _node(name: str, ts: float, cpu: int, ws: int) -> NodeSample:
    return NodeSample(name, T1 - 864_000, Usage(ts, cpu, ws))


def _scrape(store: MetricsStore, second: bool) -> None:
    """The first or the second scrape of node-a, node-b and node-d (never node-c)."""
    i = 1 if second else 0
    t = T1 if second else T1 - 15
    # node-a: 0.5 cores over 15 s, 1Mi working set.
    store.store(
        "node-a",
        _node("node-a", t, 7_500_000_000 * i, MI),
        (_pod("kube-system", COREDNS, _container("coredns", t, 143_393_445 * i, 22244 * KI)),),
    )
    # node-b: metrics-server's example 487558164n and 732212Ki.
    # web-1's log-shipper is scraped 1 s later and 2 s earlier: its 12 s window is the pod's.
    store.store(
        "node-b",
        _node("node-b", t, 10**12 + 7_313_372_460 * i, 732212 * KI),
        (
            _pod(
                "default",
                "web-1",
                _container("nginx", t, 1_500_000_000 * i, MI),
                _container(
                    "log-shipper", (T1 - 2) if second else (T1 - 14), 3_000_000_000 * i, 2 * MI
                ),
            ),
        ),
    )
    # node-d: two whole cores over a 30 s window, 1Gi.
    store.store(
        "node-d", _node("node-d", T1 if second else T1 - 30, 60_000_000_000 * i, 1024 * MI), ()
    )


def filled_store(scrapes: int = 2) -> MetricsStore:
    store = MetricsStore(RESOLUTION)
    for n in range(scrapes):
        _scrape(store, second=n == 1)
    return store


@dataclass
class FakeScraping:
    """The ScrapeStatus the probes read."""

    resolution: float = RESOLUTION
    last_tick_start: float | None = field(default_factory=time.time)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)

    def errors(self) -> Mapping[str, tuple[str, str]]:
        return self.failures


def self_metrics(store: MetricsStore) -> SelfMetrics:
    metrics = SelfMetrics(store, RESOLUTION)
    metrics.request_done("node-a", 0.012, True)
    metrics.request_done("node-c", 1.0, False)
    metrics.tick_done(0.2)
    return metrics


MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    async def make(
        *,
        store: MetricsStore | None = None,
        scraping: FakeScraping | None = None,
        serve_core_api: bool = False,
        node_selector: Callable[[Mapping[str, str]], bool] | None = None,
        pods_and_nodes: StaticInventory | None = None,
        feed: ObjectFeed | None = None,
        metrics_watch: MetricsWatchers | None = None,
    ) -> TestClient[Any, Any]:
        store = store if store is not None else filled_store()
        parts = ServerParts(
            store=store,
            inventory=pods_and_nodes or inventory(),
            scraping=scraping or FakeScraping(),
            authenticator=Authenticator({TOKEN: User("admin", "1", ("system:masters",))}),
            registry=self_metrics(store).registry,
            serve_core_api=serve_core_api,
            feed=feed,
            metrics_watch=metrics_watch,
        )
        if node_selector is not None:
            parts.node_selector = node_selector
        client: TestClient[Any, Any] = await aiohttp_client(make_app(parts))
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()


@pytest.fixture
async def core_client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client(serve_core_api=True)
