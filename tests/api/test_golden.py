"""The API's answers for a fixed fleet, byte for byte, against answers kept in the repo.

A guard for changes that must not change behaviour (moving code between packages, one
rate rule instead of three): LIST, GET, Table and label/field selections of both
metrics kinds, the core API `up` serves, and `/metrics/usage`. Only creationTimestamp
(the time of the request, as metrics-server sets it) is masked.

To record new answers after an intended change: KUBEPULSE_WRITE_GOLDEN=1 pytest this file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import Authenticator, User
from kubepulse.api.exposition import prometheus_handler
from kubepulse.api.pod_list import RenderedPods
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import node_from_object, pod_from_object
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore
from tests.api.conftest import (
    AUTH,
    RESOLUTION,
    T1,
    TOKEN,
    FakeScraping,
    node_object,
    pod_object,
    self_metrics,
)

GOLDEN = Path(__file__).with_name("golden_answers.json")
NODES = 12
PODS_PER_NODE = 6
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
M = "/apis/metrics.k8s.io/v1beta1"
REQUESTS: list[tuple[str, dict[str, str]]] = [
    (f"{M}/nodes", {}),
    (f"{M}/nodes/node-03", {}),
    (f"{M}/nodes?labelSelector=zone%3Dz1", {}),
    (f"{M}/nodes", TABLE),
    (f"{M}/pods", {}),
    (f"{M}/pods", TABLE),
    (f"{M}/namespaces/team-1/pods", {}),
    (f"{M}/namespaces/team-2/pods/app-04-2", {}),
    (f"{M}/pods?labelSelector=tier%3Dweb", {}),
    (f"{M}/pods?fieldSelector=metadata.namespace%3Dteam-0", {}),
    (f"{M}/namespaces/team-1/pods?labelSelector=tier%21%3Dweb", TABLE),
    ("/api/v1/nodes", {}),
    ("/api/v1/namespaces/team-0/pods", {}),
    ("/api/v1/pods?labelSelector=tier%3Ddb", {}),
    ("/metrics/usage", {}),
]


def fleet() -> tuple[StaticInventory, MetricsStore]:
    """NODES nodes of PODS_PER_NODE pods of one or two containers, scraped twice, with
    values that differ everywhere (no two rates alike)."""
    nodes, pods = [], []
    store = MetricsStore(RESOLUTION)
    for n in range(NODES):
        name = f"node-{n:02d}"
        nodes.append(node_object(name, {"zone": f"z{n % 3}"}, f"127.0.1.{n + 1}"))
        for p in range(PODS_PER_NODE):
            containers = ["app", "proxy"] if p % 2 else ["app"]
            labels = {"tier": ("web", "db", "cache")[p % 3], "app": f"app-{n:02d}"}
            pods.append(pod_object(f"team-{p % 3}", f"app-{n:02d}-{p}", name, labels, containers))
    for second in (False, True):
        for n in range(NODES):
            name = f"node-{n:02d}"
            t = T1 - (0 if second else 15) + n * 0.001
            samples = []
            for p in range(PODS_PER_NODE):
                containers = ["app", "proxy"] if p % 2 else ["app"]
                samples.append(
                    PodSample(
                        f"team-{p % 3}",
                        f"app-{n:02d}-{p}",
                        f"uid-{n}-{p}",
                        T1 - 86_400,
                        tuple(
                            ContainerSample(
                                c,
                                T1 - 86_400,
                                Usage(
                                    t,
                                    (1 + n * 37 + p * 11 + i * 5) * 10**8 * (2 if second else 1),
                                    (3 + n * 13 + p * 7 + i) * 2**20,
                                ),
                            )
                            for i, c in enumerate(containers)
                        ),
                    )
                )
            usage = Usage(t, (n + 1) * 10**10 * (2 if second else 1), (n + 2) * 2**30)
            store.store(name, NodeSample(name, T1 - 864_000, usage), tuple(samples))
    inventory = StaticInventory(
        [node_from_object(o) for o in nodes], [pod_from_object(o) for o in pods]
    )
    return inventory, store


def masked(body: str) -> str:
    return re.sub(r'"creationTimestamp":"[^"]*"', '"creationTimestamp":"*"', body)


async def answers(aiohttp_client: Any) -> dict[str, Any]:
    inventory, store = fleet()
    parts = ServerParts(
        store=store,
        inventory=inventory,
        scraping=FakeScraping(),
        authenticator=Authenticator({TOKEN: User("admin", "1", ("system:masters",))}),
        registry=self_metrics(store).registry,
        serve_core_api=True,
        pod_list=RenderedPods(store),
    )
    app = make_app(parts)
    app.router.add_get("/metrics/usage", prometheus_handler(store, inventory))
    client = await aiohttp_client(app)
    found: dict[str, Any] = {}
    for path, headers in REQUESTS:
        response = await client.get(path, headers={**AUTH, **headers})
        key = f"{path} {headers.get('Accept', '')}".strip()
        found[key] = [response.status, masked(await response.text())]
    return found


async def test_the_api_answers_a_fixed_fleet_as_recorded(aiohttp_client: Any) -> None:
    found = await answers(aiohttp_client)
    if os.environ.get("KUBEPULSE_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    assert sorted(found) == sorted(recorded)
    for key, (status, body) in recorded.items():
        assert found[key][0] == status, key
        assert found[key][1] == body, key
