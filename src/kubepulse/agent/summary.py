"""Render NodeStats as the kubelet's /stats/summary JSON.

Field names and omission rules are those of the Summary API types
(k8s.io/kubelet/pkg/apis/stats/v1alpha1/types.go): optional numbers are pointers with
omitempty there, so a value we do not know is left out rather than sent as zero.
"""

from __future__ import annotations

import json
from typing import Any

from kubepulse.model import ContainerSample, NodeStats, PodSample, Usage
from kubepulse.timefmt import rfc3339


def _cpu(usage: Usage, nanocores: int | None) -> dict[str, Any]:
    cpu: dict[str, Any] = {"time": rfc3339(usage.timestamp)}
    if nanocores is not None:
        cpu["usageNanoCores"] = nanocores
    cpu["usageCoreNanoSeconds"] = usage.cpu_usage_core_nanoseconds
    return cpu


def _memory(usage: Usage, limit: int | None) -> dict[str, Any]:
    memory: dict[str, Any] = {"time": rfc3339(usage.timestamp)}
    # availableBytes = limit - workingSet, omitted when there is no limit.
    if limit is not None:
        memory["availableBytes"] = max(0, limit - usage.working_set_bytes)
    if usage.usage_bytes is not None:
        memory["usageBytes"] = usage.usage_bytes
    memory["workingSetBytes"] = usage.working_set_bytes
    if usage.rss_bytes is not None:
        memory["rssBytes"] = usage.rss_bytes
    if usage.page_faults is not None:
        memory["pageFaults"] = usage.page_faults
    if usage.major_page_faults is not None:
        memory["majorPageFaults"] = usage.major_page_faults
    return memory


def _container(c: ContainerSample) -> dict[str, Any]:
    return {
        "name": c.name,
        "startTime": rfc3339(c.start_time),
        "cpu": _cpu(c.usage, c.cpu_usage_nanocores),
        "memory": _memory(c.usage, c.limits.memory_bytes),
    }


def _pod(p: PodSample, only_cpu_and_memory: bool) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
        "startTime": rfc3339(p.start_time),
        "containers": [_container(c) for c in p.containers],
    }
    if p.usage is not None:
        pod["cpu"] = _cpu(p.usage, p.cpu_usage_nanocores)
        pod["memory"] = _memory(p.usage, None)
    if not only_cpu_and_memory and p.process_count is not None:
        pod["process_stats"] = {"process_count": p.process_count}
    return pod


def summary(stats: NodeStats, only_cpu_and_memory: bool = False) -> dict[str, Any]:
    n = stats.node
    node: dict[str, Any] = {
        "nodeName": n.name,
        "startTime": rfc3339(n.start_time),
        "cpu": _cpu(n.usage, n.cpu_usage_nanocores),
        "memory": _memory(n.usage, n.capacity.memory_bytes),
    }
    if not only_cpu_and_memory and n.max_pid is not None:
        node["rlimit"] = {
            "time": rfc3339(n.usage.timestamp),
            "maxpid": n.max_pid,
            "curproc": n.process_count or 0,
        }
    return {"node": node, "pods": [_pod(p, only_cpu_and_memory) for p in stats.pods]}


def render(stats: NodeStats, only_cpu_and_memory: bool = False) -> str:
    return json.dumps(summary(stats, only_cpu_and_memory), separators=(",", ":"))
