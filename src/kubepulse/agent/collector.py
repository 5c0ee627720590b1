"""Turn one look at cgroups and /proc into the shared model (NodeStats)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kubepulse.agent import cgroups
from kubepulse.agent.cgroups import Hierarchy
from kubepulse.agent.procfs import ProcFS
from kubepulse.agent.workloads import ContainerRef, Discovery, PodRef, RuntimeMetadata
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Resources, Usage

log = logging.getLogger(__name__)

# The kubelet's default hard eviction threshold, memory.available<100Mi, is taken out of
# allocatable (pkg/kubelet/cm/node_container_manager_linux.go, GetNodeAllocatableAbsolute).
DEFAULT_EVICTION_HARD_BYTES = 100 * 1024 * 1024


class Collector:
    """Reads the node, discovers workloads and reads each of them.

    One instance keeps the previous reading of every series so that it can report the
    CPU rate (usageNanoCores) the way cAdvisor does, from two readings.
    """

    def __init__(
        self,
        node_name: str,
        hierarchy: Hierarchy,
        proc: ProcFS,
        runtime: RuntimeMetadata | None = None,
        reserved: Resources | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_name = node_name
        self.h = hierarchy
        self.proc = proc
        self.discovery = Discovery(hierarchy, proc, runtime or RuntimeMetadata(), clock=clock)
        self.reserved = reserved or Resources()
        self.clock = clock
        self.skipped_reads = 0
        """Cgroup or process files that could not be read, since start. Never fatal."""
        self._previous: dict[str, tuple[int, float]] = {}
        self._current: dict[str, tuple[int, float]] = {}

    def collect(self) -> NodeStats:
        self._current = {}
        skipped_before = self.skipped_reads
        pods = tuple(p for ref in self.discovery.pods() if (p := self._pod(ref)) is not None)
        node = self._node(sum(p.process_count or 0 for p in pods))
        self._previous = self._current
        if skipped := self.skipped_reads - skipped_before:
            # The count is told in the log, not in /metrics/resource, whose families must
            # stay exactly the kubelet's; one line per reading, whatever the number.
            log.warning(
                "skipped %d unreadable or vanished workload files in this reading (%d since start)",
                skipped,
                self.skipped_reads,
            )
        return NodeStats(node=node, pods=pods)

    def _rate(self, key: str, usage: Usage) -> int | None:
        self._current[key] = (usage.cpu_usage_core_nanoseconds, usage.timestamp)
        previous = self._previous.get(key)
        if previous is None:
            return None
        cpu_ns, when = previous
        window = usage.timestamp - when
        delta = usage.cpu_usage_core_nanoseconds - cpu_ns
        if window <= 0 or delta < 0:
            return None
        return int(delta / window)

    def _node(self, process_count: int) -> NodeSample:
        usage = cgroups.read_usage(self.h, "", self.clock())
        meminfo = self.proc.meminfo()
        capacity = Resources(
            cpu_millicores=self.proc.cpu_count() * 1000, memory_bytes=meminfo["MemTotal"]
        )
        allocatable = Resources(
            cpu_millicores=max(
                0, (capacity.cpu_millicores or 0) - (self.reserved.cpu_millicores or 0)
            ),
            memory_bytes=max(
                0,
                (capacity.memory_bytes or 0)
                - (self.reserved.memory_bytes or 0)
                - DEFAULT_EVICTION_HARD_BYTES,
            ),
        )
        return NodeSample(
            name=self.node_name,
            start_time=self.proc.boot_time,
            usage=usage,
            cpu_usage_nanocores=self._rate("node", usage),
            capacity=capacity,
            allocatable=allocatable,
            max_pid=self.proc.max_pid(),
            process_count=process_count or None,
        )

    def _pod(self, ref: PodRef) -> PodSample | None:
        containers: list[ContainerSample] = []
        process_count = 0
        for container in ref.containers:
            key = f"{ref.uid}/{container.name}"
            try:
                usage, count = self._read(container)
            except (OSError, ValueError, KeyError) as err:
                # A workload that exits between two reads leaves files behind it that
                # vanish; skip it and count it, never fail the whole read.
                self.skipped_reads += 1
                log.debug("skipped %s: %s", key, err)
                continue
            process_count += count
            limits = (
                cgroups.read_limits(self.h, container.cgroup) if container.cgroup else Resources()
            )
            request = (
                cgroups.read_cpu_request(self.h, container.cgroup)
                if ref.kubepods and container.cgroup
                else None
            )
            containers.append(
                ContainerSample(
                    name=container.name,
                    start_time=container.start_time,
                    usage=usage,
                    cpu_usage_nanocores=self._rate(key, usage),
                    requests=Resources(cpu_millicores=request),
                    limits=limits,
                    counters=(
                        cgroups.read_counters(self.h, container.cgroup)
                        if container.cgroup
                        else None
                    ),
                )
            )
        if not containers:
            return None
        pod_usage = self._pod_usage(ref, containers)
        return PodSample(
            namespace=ref.namespace,
            name=ref.name,
            uid=ref.uid,
            start_time=ref.start_time,
            containers=tuple(containers),
            usage=pod_usage,
            cpu_usage_nanocores=self._rate(ref.uid, pod_usage),
            process_count=process_count,
        )

    def _pod_usage(self, ref: PodRef, containers: list[ContainerSample]) -> Usage:
        if ref.cgroup is not None:
            try:
                return cgroups.read_usage(self.h, ref.cgroup, self.clock())
            except (OSError, ValueError, KeyError):
                self.skipped_reads += 1
        cpu = sum(c.usage.cpu_usage_core_nanoseconds for c in containers)
        if ref.cpu_ns is not None:
            # A process tree's own counter: its containers' counters start from their
            # processes' past when they appear, so their sum is no counter of the pod.
            cpu = max(ref.cpu_ns, 1)
        return Usage(
            timestamp=max(c.usage.timestamp for c in containers),
            cpu_usage_core_nanoseconds=cpu,
            working_set_bytes=sum(c.usage.working_set_bytes for c in containers),
            usage_bytes=sum(c.usage.usage_bytes or 0 for c in containers),
            rss_bytes=sum(c.usage.rss_bytes or 0 for c in containers),
        )

    def _read(self, container: ContainerRef) -> tuple[Usage, int]:
        if container.cgroup is not None:
            usage = cgroups.read_usage(self.h, container.cgroup, self.clock())
            return usage, len(cgroups.read_pids(self.h, container.cgroup))
        rss = pss = 0
        alive = 0
        for pid in container.pids:
            try:
                process = self.proc.process(pid)
            except OSError:
                continue  # exited since discovery
            alive += 1
            rss += process.rss_bytes
            pss += self.proc.pss_bytes(pid) or process.rss_bytes
        if not alive:
            raise FileNotFoundError(f"processes {container.pids} exited")
        # /proc counts CPU in clock ticks, so a container that has run for less than one
        # tick reads 0, which metrics-server takes for a broken runtime and drops the
        # whole pod. The true value lies in [0, 1 tick): report at least 1 ns.
        usage = Usage(
            timestamp=container.cpu_read_at if container.cpu_read_at is not None else self.clock(),
            cpu_usage_core_nanoseconds=max(container.cpu_ns or 0, 1),
            working_set_bytes=pss,
            usage_bytes=rss,
            rss_bytes=rss,
        )
        return usage, alive
