"""The current value of every node, pod, container and namespace series, for Prometheus.

The same numbers the metrics API serves (MetricsStore's rates), in the text exposition
format, so that any Prometheus-compatible system can keep the history instead of (or
besides) the embedded SQLite. No sample timestamps: Prometheus stamps each scrape, which
keeps its staleness handling working when a pod goes away.

Pods are the sum of their containers, as a metrics-server Table row is, and namespaces
the sum of their pods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from kubepulse.kube.inventory import Inventory
from kubepulse.store.rates import PodRates
from kubepulse.store.reading import UsageStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (kind, labels, help) in the order the families are rendered.
_FAMILIES = (
    ("node", ("node",), "of the node"),
    ("pod", ("namespace", "pod"), "of the pod (the sum of its containers)"),
    ("container", ("namespace", "pod", "container"), "of the container"),
    ("namespace", ("namespace",), "of all pods in the namespace"),
)


class Current(NamedTuple):
    kind: str
    labels: tuple[str, ...]
    cpu_nanocores: int
    memory_bytes: int


def current(store: UsageStore, inventory: Inventory) -> list[Current]:
    """Every servable series: nodes the inventory names, pods it names (or, when it names
    none, every pod scraped), their containers, and namespace totals."""
    found: list[Current] = []
    for node in sorted(inventory.nodes(), key=lambda n: n.name):
        r = store.node(node.name)
        if r is not None:
            found.append(Current("node", (node.name,), r.cpu_nanocores, r.working_set_bytes))
    pods: list[tuple[str, str, PodRates]] = []
    known = inventory.pods()
    if known:
        by_node: dict[str, dict[tuple[str, str], PodRates]] = {}
        for pod in known:
            served = by_node.get(pod.node_name)
            if served is None:
                served = by_node[pod.node_name] = dict(store.node_pods(pod.node_name).pod_rates())
            rates = served.get((pod.namespace, pod.name))
            if rates is not None:
                pods.append((pod.namespace, pod.name, rates))
    else:
        pods = [(ns, name, rates) for (ns, name), rates in store.pods().items()]
    pods.sort(key=lambda p: (p[0], p[1]))
    namespaces: dict[str, list[int]] = {}
    for ns, name, rates in pods:
        cpu = sum(c.cpu_nanocores for _, c in rates.containers)
        mem = sum(c.working_set_bytes for _, c in rates.containers)
        found.append(Current("pod", (ns, name), cpu, mem))
        found.extend(
            Current("container", (ns, name, cname), c.cpu_nanocores, c.working_set_bytes)
            for cname, c in rates.containers
        )
        total = namespaces.setdefault(ns, [0, 0])
        total[0] += cpu
        total[1] += mem
    found.extend(Current("namespace", (ns,), cpu, mem) for ns, (cpu, mem) in namespaces.items())
    return found


def metric_name(kind: str, resource: str) -> str:
    """kubepulse_<kind>_cpu_usage_nanocores or kubepulse_<kind>_memory_working_set_bytes."""
    suffix = "cpu_usage_nanocores" if resource == "cpu" else "memory_working_set_bytes"
    return f"kubepulse_{kind}_{suffix}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(store: UsageStore, inventory: Inventory) -> str:
    series = current(store, inventory)
    lines: list[str] = []
    for kind, label_names, what in _FAMILIES:
        rows = [s for s in series if s.kind == kind]
        for resource, help_text in (
            ("cpu", f"CPU usage {what} in nanocores, the rate the metrics API serves."),
            ("memory", f"Memory working set {what} in bytes."),
        ):
            name = metric_name(kind, resource)
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for s in rows:
                labels = ",".join(
                    f'{k}="{_escape(v)}"' for k, v in zip(label_names, s.labels, strict=True)
                )
                value = s.cpu_nanocores if resource == "cpu" else s.memory_bytes
                lines.append(f"{name}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


Handler = Callable[[web.Request], Awaitable[web.Response]]


def prometheus_handler(store: UsageStore, inventory: Inventory) -> Handler:
    """An aiohttp handler serving render(); mount it with `app.router.add_get(path, h)`."""

    async def handler(request: web.Request) -> web.Response:
        body = render(store, inventory).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    return handler
