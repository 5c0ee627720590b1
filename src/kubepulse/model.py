"""The one model of nodes, pods and samples that every stage shares.

The agent fills it from cgroups and /proc, the scraper fills it from a kubelet's
answer, the store keeps it and the API serves it. Field names follow the kubelet
Summary API (k8s.io/kubelet/pkg/apis/stats/v1alpha1) in snake case.

The types are named tuples, immutable like frozen dataclasses but three times cheaper
to build: the scraper makes one Usage and one ContainerSample per container per node
per resolution, which at 5,000 nodes is ~600,000 of each every 15 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Usage(NamedTuple):
    """One reading of CPU and memory for a node, pod or container."""

    timestamp: float
    """Seconds since the epoch at which the reading was taken."""
    cpu_usage_core_nanoseconds: int
    """Cumulative CPU time, in nanoseconds (cpuacct.usage, cpu.stat usage_usec x 1000)."""
    working_set_bytes: int
    """Memory usage minus inactive file pages: the kubelet's and cAdvisor's working set."""
    usage_bytes: int | None = None
    rss_bytes: int | None = None
    page_faults: int | None = None
    major_page_faults: int | None = None


class Resources(NamedTuple):
    """A CPU and memory amount: a request, a limit, a capacity or an allocatable."""

    cpu_millicores: int | None = None
    memory_bytes: int | None = None


_NONE = Resources()  # immutable, so one instance serves as every default


class CgroupCounters(NamedTuple):
    """A container's counts of having needed more than it had: the cgroup's OOM kills
    (memory.events oom_kill, memory.oom_control oom_kill on v1) and CFS periods, all and
    throttled (cpu.stat nr_periods and nr_throttled)."""

    oom_events: int
    cpu_cfs_periods: int
    cpu_cfs_throttled_periods: int


class PressureReading(NamedTuple):
    """One read of a node's CgroupCounters by container (namespace, pod, container), as
    scrape/pressure.py hands them to the history's writer."""

    node: str
    at: float
    """Epoch seconds."""
    counters: Mapping[tuple[str, str, str], CgroupCounters]


class ContainerSample(NamedTuple):
    name: str
    start_time: float
    usage: Usage
    cpu_usage_nanocores: int | None = None
    """CPU rate over the last housekeeping window, when the reader has two readings."""
    requests: Resources = _NONE
    limits: Resources = _NONE
    counters: CgroupCounters | None = None
    """None for a container that is no cgroup of its own (a process tree)."""


class PodSample(NamedTuple):
    namespace: str
    name: str
    uid: str
    start_time: float
    containers: tuple[ContainerSample, ...]
    usage: Usage | None = None
    """The pod's own cgroup, when it has one; otherwise the sum of its containers."""
    cpu_usage_nanocores: int | None = None
    process_count: int | None = None


class NodeSample(NamedTuple):
    name: str
    start_time: float
    usage: Usage
    cpu_usage_nanocores: int | None = None
    capacity: Resources = _NONE
    allocatable: Resources = _NONE
    max_pid: int | None = None
    process_count: int | None = None


class NodeStats(NamedTuple):
    """Everything one read of one node yields: what a kubelet's Summary holds."""

    node: NodeSample
    pods: tuple[PodSample, ...]
