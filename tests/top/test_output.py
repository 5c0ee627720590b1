"""`kubepulse top -o json|yaml|wide`: the metrics objects, and usage against specs."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import node_from_object, pod_from_object
from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from tests.api.conftest import NODE_OBJECTS, POD_OBJECTS, T1, filled_store
from tests.support import KUBECTL, KUBEPULSE
from tests.top.conftest import Cluster, cluster_app, serve


def top(cluster: Cluster, *args: str) -> str:
    result = subprocess.run(
        [*KUBEPULSE, "top", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def raw(cluster: Cluster, path: str) -> dict[str, object]:
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "get", "--raw", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def served_fields(obj: Any) -> tuple[object, ...]:
    """What a metrics object or list says: kind, apiVersion and, for each item, its name,
    namespace, labels, timestamp, window and usage (or containers). creationTimestamp is
    the time of each request, so it is left out."""
    items = obj.get("items", [obj])
    return (
        obj["kind"],
        obj["apiVersion"],
        [
            (
                item["metadata"]["name"],
                item["metadata"].get("namespace"),
                item["metadata"].get("labels"),
                item["timestamp"],
                item["window"],
                item.get("usage"),
                item.get("containers"),
            )
            for item in items
        ],
    )


# kubepulse top's arguments, and the metrics API path that serves the same objects.
SERVED = [
    (["pods", "-A", "-o", "json"], "pods"),
    (["pods", "-o", "yaml"], "namespaces/default/pods"),
    (["pod", "web-1", "-o", "json"], "namespaces/default/pods/web-1"),
    (["nodes", "-o", "json"], "nodes"),
    (["node", "node-b", "-o", "yaml"], "nodes/node-b"),
]


@pytest.mark.parametrize(("args", "path"), SERVED, ids=[" ".join(a) for a, _ in SERVED])
def test_json_and_yaml_are_the_objects_the_metrics_api_serves(
    cluster: Cluster, args: list[str], path: str
) -> None:
    out = top(cluster, *args)
    got = json.loads(out) if "json" in args else yaml.safe_load(out)
    want = raw(cluster, f"/apis/metrics.k8s.io/v1beta1/{path}")
    assert want.get("items", [want]), "the metrics API serves nothing to compare with"
    assert served_fields(got) == served_fields(want)


@pytest.fixture(scope="module")
def batch_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The usual cluster plus a pod whose containers set no requests or limits."""
    batch = copy.deepcopy(POD_OBJECTS[1])
    batch["metadata"]["name"] = "batch-1"
    batch["spec"]["nodeName"] = "node-d"
    for c in batch["spec"]["containers"]:
        c.pop("resources")
    batch["status"]["containerStatuses"][0]["restartCount"] = 3
    store = filled_store()
    for i, t in enumerate((T1 - 30, T1)):
        sample = ContainerSample(
            "nginx", T1 - 86_400, Usage(t, 3_000_000_000 * i, 64 * 1024 * 1024)
        )
        other = ContainerSample("log-shipper", T1 - 86_400, Usage(t, 1, 1024 * 1024))
        node = NodeSample("node-d", T1 - 864_000, Usage(t, 60_000_000_000 * i, 1024**3))
        store.store(
            "node-d",
            node,
            (PodSample("default", "batch-1", "u", T1 - 86_400, (sample, other)),),
        )
    inventory = StaticInventory(
        [node_from_object(n) for n in NODE_OBJECTS],
        [pod_from_object(p) for p in [*POD_OBJECTS, batch]],
    )
    yield from serve(tmp_path_factory.mktemp("batch"), cluster_app(store, inventory))


def table(text: str) -> dict[str, dict[str, str]]:
    lines = text.splitlines()
    header = lines[0].split()
    return {line.split()[1]: dict(zip(header, line.split(), strict=True)) for line in lines[1:]}


def test_wide_pods_compare_usage_with_requests_and_limits(batch_cluster: Cluster) -> None:
    rows = table(top(batch_cluster, "pods", "-A", "-o", "wide"))
    # web-1: 350m of 2 x 100m requested, no CPU limit; 3Mi of 2 x 70Mi and 2 x 170Mi.
    assert rows["web-1"] == {
        "NAMESPACE": "default",
        "NAME": "web-1",
        "CPU(cores)": "350m",
        "%CPU/R": "175%",
        "%CPU/L": "n/a",
        "MEMORY(bytes)": "3Mi",
        "%MEM/R": "2%",
        "%MEM/L": "0%",
        "RESTARTS": "0",
        "NODE": "node-b",
    }
    # coredns: 10m of 100m, 21Mi of 70Mi requested and 170Mi limit.
    dns = rows["coredns-7db6d8ff4d-x2x9p"]
    assert (dns["%CPU/R"], dns["%MEM/R"], dns["%MEM/L"]) == ("10%", "31%", "12%")
    # No requests, no limits: nothing to compare with.
    batch = rows["batch-1"]
    assert (batch["CPU(cores)"], batch["%CPU/R"], batch["%CPU/L"]) == ("100m", "n/a", "n/a")
    assert (batch["%MEM/R"], batch["%MEM/L"], batch["RESTARTS"]) == ("n/a", "n/a", "3")


def test_wide_nodes_show_allocatable_pods_and_requests(batch_cluster: Cluster) -> None:
    rows = {
        line.split()[0]: line.split()
        for line in top(batch_cluster, "nodes", "-o", "wide").splitlines()
    }
    assert rows["NAME"] == [
        "NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)",
        "CPU-ALLOC", "MEM-ALLOC", "PODS", "CPU-REQ", "MEM-REQ",
    ]  # fmt: skip
    # node-b runs web-1 (2 containers x 100m, 70Mi requested) of 3800m allocatable.
    assert rows["node-b"][5:] == ["3800m", "14867Mi", "1", "200m", "140Mi"]
    # batch-1 asks for nothing, so node-d counts a pod but no requests.
    assert rows["node-d"][7:] == ["1", "0m", "0Mi"]
