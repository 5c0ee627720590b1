"""`kubepulse top`: kubectl top for any cluster the kubeconfig names, plus -o and a live view.

The requests, checks and error texts follow kubectl 1.32 (pkg/cmd/top/top_node.go and
top_pod.go): discovery first ("Metrics API not available"), then the metrics, then the
nodes or pods for the cases kubectl looks them up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from kubepulse.api.selectors import SelectorError, parse_field_selector, parse_label_selector
from kubepulse.cli import top_printer, top_wide
from kubepulse.cli.errors import CommandError
from kubepulse.cli.usage import Given, unknown
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import ApiError, KubeClient, Unreachable

METRICS = "/apis/metrics.k8s.io/v1beta1"
ALIASES = {"node": "node", "nodes": "node", "no": "node", "pod": "pod", "pods": "pod", "po": "pod"}
METRICS_CREATION_DELAY = 120.0  # kubectl's metricsCreationDelay


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", metavar="node|pod", help="node (nodes, no) or pod (pods, po)")
    p.add_argument("name", nargs="*", help="one node or pod")
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--context", default=None)
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("-A", "--all-namespaces", action=Given, nargs=0, default=False)
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--field-selector", action=Given, default="")
    p.add_argument("--sort-by", default="")
    p.add_argument("--containers", action=Given, nargs=0, default=False)
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--sum", action=Given, nargs=0, default=False)
    p.add_argument("--show-capacity", action=Given, nargs=0, default=False)
    p.add_argument("--use-protocol-buffers", default="true", help=argparse.SUPPRESS)
    p.add_argument("-o", "--output", default="", choices=["", "json", "yaml", "wide"])
    p.add_argument("-w", "--watch", action="store_true", help="a live view, refreshed")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.set_defaults(run=run)


# The flags kubectl has for one form of top only (top_node.go, top_pod.go); given to
# the other form, kubectl refuses them as unknown.
ONLY_FOR = {
    "node": {"--show-capacity"},
    "pod": {"-A", "--all-namespaces", "--containers", "--field-selector", "--sum"},
}


def validate(args: argparse.Namespace) -> str:
    kind = ALIASES.get(args.resource)
    if kind is None:
        raise CommandError(f'unknown resource "{args.resource}": top shows node or pod')
    other = "pod" if kind == "node" else "node"
    if foreign := [f for f in getattr(args, "given", []) if f in ONLY_FOR[other]]:
        raise CommandError(unknown(foreign[0]))
    if len(args.name) > 1:
        raise CommandError(f"{kind} [NAME | -l label]")  # kubectl's words for extra names
    args.name = args.name[0] if args.name else ""
    if args.sort_by and args.sort_by not in ("cpu", "memory"):
        raise CommandError("--sort-by accepts only cpu or memory")
    if kind == "node" and args.name and args.selector:
        raise CommandError("only one of NAME or --selector can be provided")
    if kind == "pod" and args.name and (args.selector or args.field_selector):
        raise CommandError("only one of NAME or selector can be provided")
    if args.interval <= 0:
        raise CommandError("--interval must be greater than 0")
    # kubectl parses selectors before it sends anything (labels.Parse, fields.ParseSelector).
    try:
        parse_label_selector(args.selector)
        parse_field_selector(args.field_selector)
    except SelectorError as err:
        raise CommandError(str(err)) from err
    return kind


def server_error(err: ApiError) -> CommandError:
    """kubectl's wording for an error Status: Error from server (Reason): message."""
    if err.code == 401:
        return CommandError(
            f"You must be logged in to the server ({err.message or 'Unauthorized'})"
        )
    return CommandError(f"Error from server ({err.reason}): {err.message}", raw=True)


async def metrics_available(client: KubeClient) -> None:
    groups = await client.get("/apis")
    for group in groups.get("groups") or []:
        if group.get("name") == "metrics.k8s.io" and any(
            v.get("version") == "v1beta1" for v in group.get("versions") or []
        ):
            return
    raise CommandError("Metrics API not available")


async def node_data(client: KubeClient, args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    await metrics_available(client)
    if args.name:
        metrics = [await client.get(f"{METRICS}/nodes/{args.name}")]
    else:
        metrics = (await client.get(f"{METRICS}/nodes", {"labelSelector": args.selector}))["items"]
    if not metrics:
        raise CommandError("metrics not available yet")
    if args.name:
        nodes = [await client.get(f"/api/v1/nodes/{args.name}")]
    else:
        nodes = (await client.get("/api/v1/nodes", {"labelSelector": args.selector}))["items"]
    return metrics, nodes


def pods_path(namespace: str | None) -> str:
    return "/api/v1/pods" if namespace is None else f"/api/v1/namespaces/{namespace}/pods"


async def pod_metrics(client: KubeClient, args: argparse.Namespace, namespace: str) -> list[Any]:
    await metrics_available(client)
    ns_path = f"{METRICS}/pods" if args.all_namespaces else f"{METRICS}/namespaces/{namespace}/pods"
    if args.name:
        return [await client.get(f"{METRICS}/namespaces/{namespace}/pods/{args.name}")]
    query = {"labelSelector": args.selector, "fieldSelector": args.field_selector}
    items: list[Any] = (await client.get(ns_path, query))["items"]
    return items


def _age(created: str | None) -> float:
    if not created:
        return 0.0
    when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - when).total_seconds()


async def explain_empty(client: KubeClient, args: argparse.Namespace, namespace: str) -> None:
    """kubectl's verifyEmptyMetrics: say why the list came back empty."""
    if args.name:
        pods = [await client.get(f"/api/v1/namespaces/{namespace}/pods/{args.name}")]
    else:
        query = {"labelSelector": args.selector, "fieldSelector": args.field_selector}
        pods = (await client.get(pods_path(None if args.all_namespaces else namespace), query))[
            "items"
        ]
        if not pods:
            return
    for pod in pods:
        meta = pod.get("metadata") or {}
        age = _age(meta.get("creationTimestamp"))
        if age > METRICS_CREATION_DELAY:
            raise CommandError(
                f"Metrics not available for pod {meta.get('namespace')}/{meta.get('name')}, "
                f"age: {go_age(age)}"
            )
    raise CommandError("metrics not available yet")


def go_age(seconds: float) -> str:
    """time.Duration.String() of an age, as kubectl prints it in that error."""
    from kubepulse.timefmt import go_duration

    return go_duration(seconds)


def dump(obj: Any, output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=4) + "\n"
    return yaml.safe_dump(obj, sort_keys=False)


def as_list(kind: str, items: list[Any]) -> dict[str, Any]:
    return {"apiVersion": "metrics.k8s.io/v1beta1", "kind": kind, "metadata": {}, "items": items}


async def top_nodes(client: KubeClient, args: argparse.Namespace) -> str:
    metrics, nodes = await node_data(client, args)
    if args.output in ("json", "yaml"):
        obj = metrics[0] if args.name else as_list("NodeMetricsList", metrics)
        return dump(obj, args.output)
    field = "capacity" if args.show_capacity else "allocatable"
    available: dict[str, Mapping[str, str]] = {
        n["metadata"]["name"]: (n.get("status") or {}).get(field) or {} for n in nodes
    }
    if args.output == "wide":
        pods = (await client.get("/api/v1/pods"))["items"]
        return top_wide.nodes(metrics, nodes, pods, args.no_headers, args.sort_by, field)
    return top_printer.nodes(metrics, available, args.no_headers, args.sort_by)


async def top_pods(client: KubeClient, args: argparse.Namespace, namespace: str) -> tuple[str, str]:
    """The text for stdout and for stderr."""
    metrics = await pod_metrics(client, args, namespace)
    notice = ""
    if not metrics:
        await explain_empty(client, args, namespace)
        notice = (
            "No resources found\n"
            if args.all_namespaces
            else f"No resources found in {namespace} namespace.\n"
        )
    if args.output in ("json", "yaml"):
        obj = metrics[0] if args.name else as_list("PodMetricsList", metrics)
        return dump(obj, args.output), notice
    if args.output == "wide":
        query = {"labelSelector": args.selector, "fieldSelector": args.field_selector}
        pods = (await client.get(pods_path(None if args.all_namespaces else namespace), query))[
            "items"
        ]
        text = top_wide.pods(
            metrics,
            pods,
            args.all_namespaces,
            args.no_headers,
            args.sort_by,
            args.containers,
            args.sum,
        )
        return text, notice
    text = top_printer.pods(
        metrics, args.containers, args.all_namespaces, args.no_headers, args.sort_by, args.sum
    )
    return text, notice


async def run(args: argparse.Namespace) -> int:
    kind = validate(args)
    try:
        creds = kubeconfig.load(args.kubeconfig, args.context, args.namespace)
    except kubeconfig.KubeconfigError as err:
        raise CommandError(str(err)) from err
    if args.watch:
        from kubepulse.cli import live

        return await live.run(creds, kind, args)
    try:
        async with KubeClient(creds) as client:
            if kind == "node":
                out, notice = await top_nodes(client, args), ""
            else:
                out, notice = await top_pods(client, args, creds.namespace)
    except ApiError as err:
        raise server_error(err) from err
    except Unreachable as err:
        raise CommandError(str(err), raw=True) from err
    sys.stderr.write(notice)
    sys.stdout.write(out)
    return 0
