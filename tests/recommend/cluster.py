"""A shop namespace in the fake API: a Deployment (two ReplicaSets, one of them old),
a StatefulSet whose pod was OOM-killed, and a bare pod; with histories for live pods
and pods that have ended."""

from __future__ import annotations

import copy
from typing import Any

from kubepulse.history.writer import Row
from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.recommend.support import MIB, container_rows

NS = "shop"
WEB_NOW = "web-5d7c9b8f6d"
WEB_OLD = "web-6f8d7c6b5a"

# pod -> (CPU millicores of each point, memory peak): four pods of web (two live, one
# ended of the current ReplicaSet, one of the old), two of db (db-1 ended), a bare pod.
USAGE: dict[str, tuple[list[float], int]] = {
    f"{WEB_NOW}-abcde": ([100 + i % 40 for i in range(150)], 300 * MIB),
    f"{WEB_NOW}-fghij": ([150 + i % 60 for i in range(150)], 280 * MIB),
    f"{WEB_NOW}-zzzzz": ([90 + i % 10 for i in range(150)], 410 * MIB),
    f"{WEB_OLD}-qqqqq": ([60 + i % 5 for i in range(150)], 200 * MIB),
    "db-0": ([40 + i % 3 for i in range(150)], 100 * MIB),
    "db-1": ([45 + i % 3 for i in range(150)], 120 * MIB),
    "debug": ([5 for _ in range(150)], 20 * MIB),
}
CONTAINER = {"db-0": "postgres", "db-1": "postgres"}


def history_rows() -> list[Row]:
    rows: list[Row] = []
    for pod, (cpu, memory) in USAGE.items():
        rows += container_rows(NS, pod, CONTAINER.get(pod, "app"), cpu, [memory] * len(cpu))
    return rows


def _owned(obj: dict[str, Any], owner: dict[str, Any], generate: str | None) -> dict[str, Any]:
    obj["metadata"]["ownerReferences"] = [objects.owner_reference(owner)]
    if generate:
        obj["metadata"]["generateName"] = generate
    return obj


def shop(fake: FakeKubeAPI) -> dict[str, Any]:
    """The objects in the fake; returns the Deployment (for kubectl patch --local)."""
    deployment = fake.put("deployments", objects.deployment(NS, "web", 2))
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    fake.put("deployments", deployment)
    fake.put("replicasets", objects.replicaset_for(deployment, WEB_NOW.removeprefix("web-")))
    current = fake.get("replicasets", WEB_NOW, NS)
    fake.put("replicasets", objects.replicaset_for(deployment, WEB_OLD.removeprefix("web-")))
    assert current is not None
    resources = ({"cpu": "500m", "memory": "512Mi"}, {"cpu": "1", "memory": "512Mi"})
    for name in (f"{WEB_NOW}-abcde", f"{WEB_NOW}-fghij"):
        pod = objects.pod(
            NS, name, "worker-1", labels={"app": "web"}, containers=[("app", *resources)]
        )
        fake.put("pods", _owned(pod, current, f"{WEB_NOW}-"))
    statefulset = fake.put(
        "statefulsets",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": NS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "postgres", "image": "pg"}]},
                },
            },
        },
    )
    db = objects.pod(
        NS,
        "db-0",
        "worker-1",
        labels={"app": "db"},
        containers=[("postgres", {"cpu": "100m", "memory": "1Gi"}, {"memory": "1Gi"})],
    )
    db["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "OOMKilled", "exitCode": 137}
    }
    fake.put("pods", _owned(db, statefulset, None))
    fake.put("pods", objects.pod(NS, "debug", "worker-1", labels={"app": "debug"}))
    return copy.deepcopy(deployment)
