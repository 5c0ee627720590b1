"""`kubepulse top -o wide`: usage against requests, limits and allocatable.

For pods (or, with --containers, each container): %CPU/R and %CPU/L are usage over the
summed container requests and limits (n/a unless every container sets one), likewise for
memory, with restarts and the node; --sum adds the usage totals as the plain table does.
For nodes: allocatable, and the pods and requests `kubectl describe node` counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubepulse.top import tabwriter
from kubepulse.top.printer import (
    NODE_COLUMNS,
    UNKNOWN,
    CpuMemory,
    container_rows,
    container_usage,
    cpu_text,
    memory_text,
    milli,
    node_rows,
    percent,
    pod_rows,
    pod_usage,
    tab_row,
    total_usage,
    value,
)

NA = "n/a"
POD_COLUMNS = ["NAME", "CPU(cores)", "%CPU/R", "%CPU/L", "MEMORY(bytes)", "%MEM/R", "%MEM/L"]
NODE_EXTRA = ["PODS", "CPU-REQ", "MEM-REQ"]
# --show-capacity measures against capacity, and the columns say which one it is.
NODE_AMOUNT = {"allocatable": ["CPU-ALLOC", "MEM-ALLOC"], "capacity": ["CPU-CAP", "MEM-CAP"]}
# kubectl describe node lists "Non-terminated Pods": status.phase!=Failed,Succeeded.
TERMINATED = ("Succeeded", "Failed")


def _sum(specs: Sequence[Mapping[str, Any]], kind: str) -> tuple[int | None, int | None]:
    """Summed requests or limits of containers; None unless every container sets it.
    A container without a CPU or memory limit has no upper bound but the node's
    (kubernetes.io "Assign CPU Resources": "If you do not specify a CPU limit"), so
    a pod with one such container has no limit as a whole."""
    cpu = memory = 0
    cpu_set = memory_set = True
    for c in specs:
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


def _usage_cells(used: CpuMemory, specs: Sequence[Mapping[str, Any]]) -> list[str]:
    req_cpu, req_mem = _sum(specs, "requests")
    lim_cpu, lim_mem = _sum(specs, "limits")
    return [
        cpu_text(used),
        _pct(used.cpu_milli, req_cpu),
        _pct(used.cpu_milli, lim_cpu),
        memory_text(used),
        _pct(used.memory_bytes, req_mem),
        _pct(used.memory_bytes, lim_mem),
    ]


def pods(
    metrics: Sequence[Mapping[str, Any]],
    pod_objects: Sequence[Mapping[str, Any]],
    with_namespace: bool,
    no_headers: bool,
    sort_by: str,
    containers: bool = False,
    total: bool = False,
) -> str:
    by_key = {
        ((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name")): p
        for p in pod_objects
    }
    prefix = ["NAMESPACE"] * with_namespace + ["POD"] * containers
    lines = [] if no_headers else [tab_row(*prefix, *POD_COLUMNS, "RESTARTS", "NODE")]
    for m in pod_rows(metrics, with_namespace, sort_by):
        meta = m["metadata"]
        pod = by_key.get((meta.get("namespace"), meta["name"])) or {}
        specs = (pod.get("spec") or {}).get("containers") or []
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        node = (pod.get("spec") or {}).get("nodeName") or NA
        ns = [meta.get("namespace", "")] * with_namespace
        rows = [([meta["name"]], pod_usage(m), specs, statuses)]
        if containers:
            rows = [
                (
                    [meta["name"], c["name"]],
                    container_usage(c),
                    [s for s in specs if s.get("name") == c["name"]],
                    [s for s in statuses if s.get("name") == c["name"]],
                )
                for c in container_rows(m, sort_by)
            ]
        for names, used, own, own_statuses in rows:
            restarts = sum(int(s.get("restartCount", 0)) for s in own_statuses) if pod else NA
            lines.append(tab_row(*ns, *names, *_usage_cells(used, own), restarts, node))
    if total:
        # The plain table's --sum: usage totals under the CPU and memory columns.
        summed = total_usage(metrics)
        blank = [""] * len(prefix)
        lines.append(tab_row(*blank, "", "________", "", "", "________"))
        lines.append(tab_row(*blank, "", cpu_text(summed), "", "", memory_text(summed)))
    return tabwriter.render("\n".join(lines) + "\n")


def pod_requests(pod: Mapping[str, Any]) -> CpuMemory:
    """What the scheduler and kubectl describe node count for a pod
    (k8s.io/component-helpers/resource.PodRequests): the containers' sum, or the largest
    init container if that is more, plus spec.overhead. A restartable init container (a
    sidecar) keeps running, so it adds to the sum and to every init container after it."""
    spec = pod.get("spec") or {}
    main = sum((_requests(c) for c in spec.get("containers") or []), CpuMemory(0, 0))
    sidecars = init = CpuMemory(0, 0)
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") == "Always":
            main, sidecars = main + _requests(c), sidecars + _requests(c)
            init = _max(init, sidecars)
        else:
            init = _max(init, _requests(c) + sidecars)
    return _max(main, init) + CpuMemory.of(spec.get("overhead") or {})


def _requests(container: Mapping[str, Any]) -> CpuMemory:
    return CpuMemory.of((container.get("resources") or {}).get("requests") or {})


def _max(a: CpuMemory, b: CpuMemory) -> CpuMemory:
    return CpuMemory(max(a.cpu_milli, b.cpu_milli), max(a.memory_bytes, b.memory_bytes))


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
    requested: dict[str, CpuMemory] = {}
    for pod in pod_objects:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in TERMINATED:
            continue
        count[node] = count.get(node, 0) + 1
        requested[node] = requested.get(node, CpuMemory(0, 0)) + pod_requests(pod)
    lines = [] if no_headers else [tab_row(*NODE_COLUMNS, *NODE_AMOUNT[field], *NODE_EXTRA)]
    for name, used in node_rows(metrics, by_name, sort_by):
        avail = ((by_name.get(name) or {}).get("status") or {}).get(field) or {}
        alloc = CpuMemory.of(avail)
        req = requested.get(name, CpuMemory(0, 0))
        usage: list[object] = [UNKNOWN] * 4
        if used is not None:
            usage = [cpu_text(used), percent(used.cpu_milli, alloc.cpu_milli)]
            usage += [memory_text(used), percent(used.memory_bytes, alloc.memory_bytes)]
        scheduled = [count.get(name, 0), cpu_text(req), memory_text(req)]
        lines.append(tab_row(name, *usage, cpu_text(alloc), memory_text(alloc), *scheduled))
    return tabwriter.render("\n".join(lines) + "\n")
