"""`kubepulse top -o wide`: usage against requests, limits and allocatable.

For pods: %CPU/R and %CPU/L are usage over the summed container requests and limits
(n/a where a container sets none), likewise for memory, with restarts and the node.
For nodes: allocatable, the number of pods and the pods' summed requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubepulse.cli import tabwriter
from kubepulse.cli.top_printer import (
    Usage,
    cpu_text,
    memory_text,
    milli,
    node_usage,
    percent,
    pod_usage,
    sort_by_usage,
    value,
)

NA = "n/a"


def _sum(pod: Mapping[str, Any], kind: str) -> tuple[int | None, int | None]:
    """Summed requests or limits of a pod's containers; None unless every container sets it."""
    cpu = memory = 0
    cpu_set = memory_set = True
    for c in (pod.get("spec") or {}).get("containers") or []:
        values = ((c.get("resources") or {}).get(kind)) or {}
        if "cpu" in values:
            cpu += milli(values["cpu"])
        else:
            cpu_set = False
        if "memory" in values:
            memory += value(values["memory"])
        else:
            memory_set = False
    return (cpu if cpu_set else None), (memory if memory_set else None)


def _pct(used: int, of: int | None) -> str:
    return percent(used, of) if of else NA


def _restarts(pod: Mapping[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


def pods(
    metrics: Sequence[Mapping[str, Any]],
    pod_objects: Sequence[Mapping[str, Any]],
    with_namespace: bool,
    no_headers: bool,
    sort_by: str,
) -> str:
    by_key = {
        ((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name")): p
        for p in pod_objects
    }
    rows = sorted(
        metrics, key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"])
    )
    sort_by_usage(rows, sort_by, pod_usage)
    header = [
        "NAME",
        "CPU(cores)",
        "%CPU/R",
        "%CPU/L",
        "MEMORY(bytes)",
        "%MEM/R",
        "%MEM/L",
        "RESTARTS",
        "NODE",
    ]
    lines = (
        []
        if no_headers
        else ["".join(f"{h}\t" for h in (["NAMESPACE"] if with_namespace else []) + header)]
    )
    for m in rows:
        meta = m["metadata"]
        pod = by_key.get((meta.get("namespace"), meta["name"]), {})
        used = pod_usage(m)
        req_cpu, req_mem = _sum(pod, "requests")
        lim_cpu, lim_mem = _sum(pod, "limits")
        cells = [
            *([meta.get("namespace", "")] if with_namespace else []),
            meta["name"],
            cpu_text(used),
            _pct(used.cpu_milli, req_cpu),
            _pct(used.cpu_milli, lim_cpu),
            memory_text(used),
            _pct(used.memory_bytes, req_mem),
            _pct(used.memory_bytes, lim_mem),
            _restarts(pod) if pod else NA,
            (pod.get("spec") or {}).get("nodeName") or NA if pod else NA,
        ]
        lines.append("".join(f"{c}\t" for c in cells))
    return tabwriter.render("\n".join(lines) + "\n")


def nodes(
    metrics: Sequence[Mapping[str, Any]],
    node_objects: Sequence[Mapping[str, Any]],
    pod_objects: Sequence[Mapping[str, Any]],
    no_headers: bool,
    sort_by: str,
    field: str,
) -> str:
    by_name = {n["metadata"]["name"]: n for n in node_objects}
    count: dict[str, int] = {}
    requested: dict[str, Usage] = {}
    for pod in pod_objects:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            continue
        count[node] = count.get(node, 0) + 1
        cpu, mem = _sum_any(pod)
        requested[node] = requested.get(node, Usage(0, 0)) + Usage(cpu, mem)
    rows = sorted(metrics, key=lambda m: m["metadata"]["name"])
    sort_by_usage(rows, sort_by, node_usage)
    header = [
        "NAME",
        "CPU(cores)",
        "CPU(%)",
        "MEMORY(bytes)",
        "MEMORY(%)",
        "CPU-ALLOC",
        "MEM-ALLOC",
        "PODS",
        "CPU-REQ",
        "MEM-REQ",
    ]
    lines = [] if no_headers else ["".join(f"{h}\t" for h in header)]
    for m in rows:
        name = m["metadata"]["name"]
        avail = ((by_name.get(name) or {}).get("status") or {}).get(field) or {}
        used = Usage.of(m["usage"])
        alloc = Usage(milli(avail.get("cpu", "0")), value(avail.get("memory", "0")))
        req = requested.get(name, Usage(0, 0))
        cells = [
            name,
            cpu_text(used),
            percent(used.cpu_milli, alloc.cpu_milli),
            memory_text(used),
            percent(used.memory_bytes, alloc.memory_bytes),
            cpu_text(alloc),
            memory_text(alloc),
            count.get(name, 0),
            cpu_text(req),
            memory_text(req),
        ]
        lines.append("".join(f"{c}\t" for c in cells))
    return tabwriter.render("\n".join(lines) + "\n")


def _sum_any(pod: Mapping[str, Any]) -> tuple[int, int]:
    """Summed requests of whatever containers set them (the scheduler's view)."""
    cpu = memory = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        values = ((c.get("resources") or {}).get("requests")) or {}
        cpu += milli(values["cpu"]) if "cpu" in values else 0
        memory += value(values["memory"]) if "memory" in values else 0
    return cpu, memory
