"""The part of the kubelet's /metrics/cadvisor that says a container needed more than it
had: OOM kills and CFS throttling, under cAdvisor's names, HELP texts and labels
(container, namespace, pod; cAdvisor's metrics/prometheus.go). A Prometheus that
scrapes it gives `kubepulse recommend --prometheus-url` what flags a container.

cAdvisor writes the CFS families only for a container with a CPU quota (a
container without one has no periods): so do we, for one whose periods are counted.
"""

from __future__ import annotations

from collections.abc import Callable

from kubepulse.agent.resource_metrics import container_labels, go_float
from kubepulse.model import CgroupCounters, NodeStats

_FAMILIES: list[tuple[str, str, Callable[[CgroupCounters], int | None]]] = [
    (
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        lambda c: c.cpu_cfs_periods or None,
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        lambda c: c.cpu_cfs_throttled_periods if c.cpu_cfs_periods else None,
    ),
    (
        "container_oom_events_total",
        "Count of out of memory events observed for the container",
        lambda c: c.oom_events,
    ),
]


def render(stats: NodeStats) -> str:
    rows = sorted(
        (c.name, p.namespace, p.name, c.counters, round(c.usage.timestamp * 1000))
        for p in stats.pods
        for c in p.containers
        if c.counters is not None
    )
    lines: list[str] = []
    for name, help_text, value_of in _FAMILIES:
        series = [
            f"{name}{container_labels(container, ns, pod)} {go_float(value)} {ms}"
            for container, ns, pod, counters, ms in rows
            if (value := value_of(counters)) is not None
        ]
        if series:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", *series]
    lines.append("")
    return "\n".join(lines)
