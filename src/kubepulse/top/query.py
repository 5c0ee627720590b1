"""kubectl top's requests, checks and error texts (kubectl 1.32, pkg/cmd/top/top_node.go
and top_pod.go): discovery first ("Metrics API not available"), then the metrics, then
the nodes or pods for the cases kubectl looks them up; and what it prints."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubepulse.errors import Failure
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.kubeconfig import Overrides
from kubepulse.kube.metrics import MetricsReader
from kubepulse.kube.objects import ObjectError
from kubepulse.timefmt import go_duration, parse_rfc3339
from kubepulse.top import printer as top_printer
from kubepulse.top import wide as top_wide

METRICS_CREATION_DELAY = 120.0  # kubectl's metricsCreationDelay


class TopError(Failure):
    """What kubectl top says when it cannot show the table, in its words."""


@dataclass(frozen=True)
class TopRequest:
    """What `top` was asked: kubectl top's flags, checked (cli/top.py)."""

    kind: str
    """node or pod."""
    name: str = ""
    namespace: str | None = None
    """-n; None: the kubeconfig context's."""
    all_namespaces: bool = False
    selector: str = ""
    field_selector: str = ""
    sort_by: str = ""
    containers: bool = False
    no_headers: bool = False
    sum: bool = False
    show_capacity: bool = False
    output: str = ""
    watch: bool = False
    interval: float = 2.0
    kubeconfig: str | None = None
    context: str | None = None
    overrides: Overrides = field(default_factory=Overrides)
    """--cluster, --user, --server, --token, --as ... (kube/kubeconfig.py)."""


def server_error(err: ApiError) -> TopError:
    """kubectl's wording for an error Status: Error from server (Reason): message."""
    if err.code == 401:
        # kubectl meets a 401 first in its discovery, whose client words it so
        # (apimachinery's NewGenericServerResponse), whatever the Status says.
        return TopError(
            "You must be logged in to the server "
            "(the server has asked for the client to provide credentials)"
        )
    return TopError(f"Error from server ({err.reason}): {err.message}", raw=True)


async def metrics_available(client: KubeClient) -> MetricsReader:
    reader = MetricsReader(client)
    if not await reader.available():
        raise TopError("Metrics API not available")
    return reader


async def node_data(client: KubeClient, request: TopRequest) -> tuple[list[Any], list[Any]]:
    reader = await metrics_available(client)
    metrics = await reader.nodes(request.name, request.selector)
    if not metrics:
        raise TopError("metrics not available yet")
    if request.name:
        nodes = [await client.get(f"/api/v1/nodes/{request.name}")]
    else:
        nodes = (await client.get("/api/v1/nodes", {"labelSelector": request.selector}))["items"]
    return metrics, nodes


def pods_path(namespace: str | None) -> str:
    return "/api/v1/pods" if namespace is None else f"/api/v1/namespaces/{namespace}/pods"


async def pod_metrics(client: KubeClient, request: TopRequest, namespace: str) -> list[Any]:
    reader = await metrics_available(client)
    scope = None if request.all_namespaces and not request.name else namespace
    return await reader.pods(scope, request.name, request.selector, request.field_selector)


def _age(created: str | None) -> float:
    return time.time() - parse_rfc3339(created) if created else 0.0


async def explain_empty(client: KubeClient, request: TopRequest, namespace: str) -> None:
    """kubectl's verifyEmptyMetrics: say why the list came back empty."""
    if request.name:
        pods = [await client.get(f"/api/v1/namespaces/{namespace}/pods/{request.name}")]
    else:
        query = {"labelSelector": request.selector, "fieldSelector": request.field_selector}
        pods = (await client.get(pods_path(None if request.all_namespaces else namespace), query))[
            "items"
        ]
        if not pods:
            return
    for pod in pods:
        meta = pod.get("metadata") or {}
        age = _age(meta.get("creationTimestamp"))
        if age > METRICS_CREATION_DELAY:
            raise TopError(
                f"Metrics not available for pod {meta.get('namespace')}/{meta.get('name')}, "
                f"age: {go_age(age)}"
            )
    raise TopError("metrics not available yet")


def go_age(seconds: float) -> str:
    """time.Duration.String() of an age, as kubectl prints it in that error."""
    return go_duration(seconds)


def dump(obj: Any, output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=4) + "\n"
    return yaml.safe_dump(obj, sort_keys=False)


def as_list(kind: str, items: list[Any]) -> dict[str, Any]:
    return {"apiVersion": "metrics.k8s.io/v1beta1", "kind": kind, "metadata": {}, "items": items}


async def top_nodes(client: KubeClient, request: TopRequest) -> str:
    metrics, nodes = await node_data(client, request)
    if request.output in ("json", "yaml"):
        obj = metrics[0] if request.name else as_list("NodeMetricsList", metrics)
        return dump(obj, request.output)
    field = "capacity" if request.show_capacity else "allocatable"
    available: dict[str, Mapping[str, str]] = {
        n["metadata"]["name"]: (n.get("status") or {}).get(field) or {} for n in nodes
    }
    if request.output == "wide":
        pods = (await client.get("/api/v1/pods"))["items"]
        return top_wide.nodes(metrics, nodes, pods, request.no_headers, request.sort_by, field)
    return top_printer.nodes(metrics, available, request.no_headers, request.sort_by)


async def top_pods(client: KubeClient, request: TopRequest, namespace: str) -> tuple[str, str]:
    """The text for stdout and for stderr."""
    metrics = await pod_metrics(client, request, namespace)
    notice = ""
    if not metrics:
        await explain_empty(client, request, namespace)
        notice = (
            "No resources found\n"
            if request.all_namespaces
            else f"No resources found in {namespace} namespace.\n"
        )
    if request.output in ("json", "yaml"):
        obj = metrics[0] if request.name else as_list("PodMetricsList", metrics)
        return dump(obj, request.output), notice
    if request.output == "wide":
        query = {"labelSelector": request.selector, "fieldSelector": request.field_selector}
        pods = (await client.get(pods_path(None if request.all_namespaces else namespace), query))[
            "items"
        ]
        text = top_wide.pods(
            metrics,
            pods,
            request.all_namespaces,
            request.no_headers,
            request.sort_by,
            request.containers,
            request.sum,
        )
        return text, notice
    text = top_printer.pods(
        metrics,
        request.containers,
        request.all_namespaces,
        request.no_headers,
        request.sort_by,
        request.sum,
    )
    return text, notice


def credentials(request: TopRequest) -> kubeconfig.Credentials:
    try:
        return kubeconfig.load(
            request.kubeconfig, request.context, request.namespace, request.overrides
        )
    except kubeconfig.KubeconfigError as err:
        raise TopError(str(err)) from err


async def run(request: TopRequest) -> int:
    """Print the table (or the objects), as kubectl top; for the live view see live.py."""
    creds = credentials(request)
    try:
        async with KubeClient(creds) as client:
            if request.kind == "node":
                out, notice = await top_nodes(client, request), ""
            else:
                out, notice = await top_pods(client, request, creds.namespace)
    except ApiError as err:
        raise server_error(err) from err
    except Unreachable as err:
        raise TopError(str(err), raw=True) from err
    except ObjectError as err:
        raise TopError(str(err)) from err
    sys.stderr.write(notice)
    sys.stdout.write(out)
    return 0
