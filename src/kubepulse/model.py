"""The one model of nodes, pods and samples that every stage shares.

The agent fills it from cgroups and /proc, the scraper fills it from a kubelet's
answer, the store keeps it and the API serves it. Field names follow the kubelet
Summary API (k8s.io/kubelet/pkg/apis/stats/v1alpha1) in snake case.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Usage:
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


@dataclass(frozen=True, slots=True)
class Resources:
    """A CPU and memory amount: a request, a limit, a capacity or an allocatable."""

    cpu_millicores: int | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerSample:
    name: str
    start_time: float
    usage: Usage
    cpu_usage_nanocores: int | None = None
    """CPU rate over the last housekeeping window, when the reader has two readings."""
    requests: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True)
class PodSample:
    namespace: str
    name: str
    uid: str
    start_time: float
    containers: tuple[ContainerSample, ...]
    usage: Usage | None = None
    """The pod's own cgroup, when it has one; otherwise the sum of its containers."""
    cpu_usage_nanocores: int | None = None
    process_count: int | None = None


@dataclass(frozen=True, slots=True)
class NodeSample:
    name: str
    start_time: float
    usage: Usage
    cpu_usage_nanocores: int | None = None
    capacity: Resources = field(default_factory=Resources)
    allocatable: Resources = field(default_factory=Resources)
    max_pid: int | None = None
    process_count: int | None = None


@dataclass(frozen=True, slots=True)
class NodeStats:
    """Everything one read of one node yields: what a kubelet's Summary holds."""

    node: NodeSample
    pods: tuple[PodSample, ...]
