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
from kubepulse.top import wide as top_wide
from kubepulse.top.printer import CpuMemory
from tests.api.conftest import NODE_OBJECTS, POD_OBJECTS, T1, filled_store, node_object
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


def test_wide_nodes_with_show_capacity_measure_and_name_capacity(batch_cluster: Cluster) -> None:
    text = top(batch_cluster, "nodes", "-o", "wide", "--show-capacity")
    rows = {line.split()[0]: line.split() for line in text.splitlines()}
    assert rows["NAME"][5:7] == ["CPU-CAP", "MEM-CAP"]
    # node-b: capacity 4 CPUs and 16374784Ki (15991Mi), not the 3800m allocatable.
    assert rows["node-b"][5:7] == ["4000m", "15991Mi"]


def test_wide_nodes_without_metrics_show_unknown_usage_and_what_is_scheduled(
    batch_cluster: Cluster,
) -> None:
    rows = {
        line.split()[0]: line.split()
        for line in top(batch_cluster, "nodes", "-o", "wide").splitlines()
    }
    # node-c has a Node object but no metrics; kubectl top nodes prints it as <unknown>.
    # It runs web-2 (Pending, not terminated: counted), 100m and 70Mi requested.
    unknown = ["<unknown>"] * 4
    assert rows["node-c"] == ["node-c", *unknown, "3800m", "14867Mi", "1", "100m", "70Mi"]
    assert list(rows) == ["NAME", "node-a", "node-b", "node-d", "node-c"]


def test_wide_containers_compare_each_container_with_its_own_spec(
    batch_cluster: Cluster,
) -> None:
    lines = top(batch_cluster, "pods", "-A", "-o", "wide", "--containers").splitlines()
    header = lines[0].split()
    assert header[:3] == ["NAMESPACE", "POD", "NAME"]
    rows = {
        (cells[1], cells[2]): dict(zip(header, cells, strict=True))
        for cells in (line.split() for line in lines[1:])
    }
    # web-1's containers request 100m and 70Mi each and limit memory to 170Mi: nginx
    # uses 100m and 1Mi, log-shipper 250m and 2Mi.
    nginx, shipper = rows["web-1", "nginx"], rows["web-1", "log-shipper"]
    assert [nginx[k] for k in ("%CPU/R", "%CPU/L", "%MEM/R", "%MEM/L")] == [
        "100%", "n/a", "1%", "0%",
    ]  # fmt: skip
    assert [shipper[k] for k in ("%CPU/R", "%CPU/L", "%MEM/R", "%MEM/L")] == [
        "250%", "n/a", "2%", "1%",
    ]  # fmt: skip
    # Restarts are each container's own: batch-1's nginx restarted 3 times.
    assert rows["batch-1", "nginx"]["RESTARTS"] == "3"
    assert rows["batch-1", "log-shipper"]["RESTARTS"] == "0"
    assert rows["batch-1", "nginx"]["NODE"] == "node-d"


@pytest.mark.parametrize("containers", [[], ["--containers"]], ids=["pods", "containers"])
def test_wide_sum_is_the_plain_tables_total_under_the_usage_columns(
    batch_cluster: Cluster, containers: list[str]
) -> None:
    lines = top(batch_cluster, "pods", "-A", "-o", "wide", "--sum", *containers).splitlines()
    plain = top(batch_cluster, "pods", "-A", "--sum").splitlines()
    assert lines[-2].split() == ["________", "________"]
    assert lines[-1].split() == plain[-1].split()
    cpu, memory = lines[-1].split()
    assert lines[-1].index(cpu) == lines[0].index("CPU(cores)")
    assert lines[-1].index(memory, len(cpu)) == lines[0].index("MEMORY(bytes)")


def container(name: str, requests: dict[str, str], **extra: object) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": requests}, **extra}


def spec_pod(
    node: str = "node-x",
    phase: str = "Running",
    containers: tuple[dict[str, str], ...] = (),
    init: tuple[dict[str, Any], ...] = (),
    overhead: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": node,
        "containers": [container(f"c{i}", r) for i, r in enumerate(containers)],
        "initContainers": list(init),
    }
    if overhead is not None:
        spec["overhead"] = overhead
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": spec,
        "status": {"phase": phase},
    }


SIDECAR = container("proxy", {"cpu": "50m", "memory": "50Mi"}, restartPolicy="Always")
# A pod's request as the scheduler and kubectl describe node count it
# (k8s.io/component-helpers/resource.PodRequests), in millicores and MiB.
POD_REQUESTS = {
    "containers add up": (
        spec_pod(containers=({"cpu": "100m", "memory": "70Mi"}, {"cpu": "200m"})),
        300,
        70,
    ),
    "no requests": (spec_pod(containers=({},)), 0, 0),
    "a larger init container wins, resource by resource": (
        spec_pod(
            containers=({"cpu": "100m", "memory": "64Mi"},),
            init=(container("migrate", {"cpu": "500m", "memory": "32Mi"}),),
        ),
        500,
        64,
    ),
    "overhead is added": (
        spec_pod(
            containers=({"cpu": "100m", "memory": "64Mi"},),
            overhead={"cpu": "250m", "memory": "120Mi"},
        ),
        350,
        184,
    ),
    "overhead is added to the init containers' maximum": (
        spec_pod(
            containers=({"cpu": "100m"},),
            init=(container("i", {"cpu": "1"}),),
            overhead={"cpu": "50m"},
        ),
        1050,
        0,
    ),
    # A sidecar runs beside the containers and beside every init container after it.
    "a sidecar adds to the containers and to later init containers": (
        spec_pod(
            containers=({"cpu": "100m", "memory": "100Mi"},),
            init=(SIDECAR, container("migrate", {"cpu": "200m", "memory": "10Mi"})),
        ),
        250,
        150,
    ),
}


@pytest.mark.parametrize(("pod", "cpu", "mib"), POD_REQUESTS.values(), ids=POD_REQUESTS)
def test_a_pods_request_follows_the_schedulers_rule(
    pod: dict[str, Any], cpu: int, mib: int
) -> None:
    assert top_wide.pod_requests(pod) == CpuMemory(cpu, mib * 1024 * 1024)


def test_wide_nodes_count_only_pods_that_have_not_terminated() -> None:
    one_core = {"cpu": "1", "memory": "1Gi"}
    pods = [
        spec_pod(phase=phase, containers=(one_core,))
        for phase in ("Running", "Pending", "Succeeded", "Failed", "Unknown")
    ] + [spec_pod(node="node-y", containers=(one_core,)), spec_pod(node="", containers=(one_core,))]
    nodes = [node_object("node-x", {}, "10.0.0.1")]
    metrics = [{"metadata": {"name": "node-x"}, "usage": {"cpu": "1", "memory": "1Gi"}}]
    text = top_wide.nodes(metrics, nodes, pods, True, "", "allocatable")
    assert text.split()[7:] == ["3", "3000m", "3072Mi"]


def metrics_of(*usages: tuple[str, str]) -> dict[str, Any]:
    containers = [
        {"name": f"c{i}", "usage": {"cpu": c, "memory": m}} for i, (c, m) in enumerate(usages)
    ]
    return {"metadata": {"name": "p", "namespace": "default"}, "containers": containers}


def with_resources(*resources: dict[str, dict[str, str]]) -> dict[str, Any]:
    pod = spec_pod()
    pod["spec"]["containers"] = [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]
    return pod


# A limit (or request) is the pod's only where every container sets it: a container
# without a CPU limit may use all the node's CPU, so the pod as a whole has no limit.
PARTIAL = {
    "every container limits CPU": (
        [{"limits": {"cpu": "200m"}}, {"limits": {"cpu": "200m"}}],
        {"%CPU/L": "50%", "%CPU/R": "n/a"},
    ),
    "one container limits CPU, the other does not": (
        [{"limits": {"cpu": "200m"}}, {}],
        {"%CPU/L": "n/a", "%CPU/R": "n/a"},
    ),
    "one container requests memory, the other does not": (
        [{"requests": {"memory": "100Mi"}}, {"limits": {"memory": "1Gi"}}],
        {"%MEM/R": "n/a", "%MEM/L": "n/a"},
    ),
    "every container requests memory": (
        [{"requests": {"memory": "100Mi"}}, {"requests": {"memory": "100Mi"}}],
        {"%MEM/R": "50%"},
    ),
}


@pytest.mark.parametrize(("resources", "want"), PARTIAL.values(), ids=PARTIAL)
def test_wide_pod_percentages_need_every_container_to_set_the_value(
    resources: list[dict[str, dict[str, str]]], want: dict[str, str]
) -> None:
    text = top_wide.pods(
        [metrics_of(("100m", "50Mi"), ("100m", "50Mi"))],
        [with_resources(*resources)],
        False,
        False,
        "",
    )
    header, row = (line.split() for line in text.splitlines())
    cells = dict(zip(header, row, strict=True))
    assert {k: cells[k] for k in want} == want
