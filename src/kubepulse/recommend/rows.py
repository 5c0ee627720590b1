"""A table row: one container of one workload, what it has now and what it should have.

The strategy's numbers (Recommendation) become the values to set here, where what the
container has now is known: vpa keeps each limit's ratio to its request (the VPA
updater's rule, pkg/utils/vpa/limit_and_request_scaling.go); a container the kernel
killed for memory (lastState.terminated.reason OOMKilled, or OOM events counted) is
never given less memory than it has, nor a CPU-throttled one less CPU (pressure.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubepulse.kube.objects import ContainerSpec
from kubepulse.recommend.owners import Workload
from kubepulse.recommend.pressure import NONE, Pressure
from kubepulse.recommend.settings import Recommendation, Strategy

GIB = float(1 << 30)


@dataclass(frozen=True, slots=True)
class Values:
    """Requests and limits: millicores and bytes, None where unset."""

    cpu_request: int | None
    cpu_limit: int | None
    memory_request: int | None
    memory_limit: int | None


@dataclass(frozen=True, slots=True)
class ContainerRow:
    workload: Workload
    container: str
    pods: int
    """Pods whose history was pooled."""
    replicas: int
    """Pods running now (what the namespace totals multiply by)."""
    current: Values | None
    """None when not known (no cluster, or no pod of it running)."""
    recommendation: Recommendation
    recommended: Values | None
    """None: not enough data."""
    oom_killed: bool = False
    pressure: Pressure = NONE
    """OOM events and CPU throttling counted over the window, where the source has them."""

    @property
    def cpu_throttled(self) -> bool:
        return self.pressure.cpu_throttled

    @property
    def cpu_change(self) -> int | None:
        return _change(self.current, self.recommended, "cpu_request")

    @property
    def memory_change(self) -> int | None:
        return _change(self.current, self.recommended, "memory_request")

    @property
    def size_of_change(self) -> float:
        """What rows are sorted by: the larger of the changes in cores and in GiB (a
        core and a GiB cost about the same), the whole recommendation when what is set
        now is not known."""
        if self.recommended is None:
            return -1.0
        cpu = self.cpu_change
        memory = self.memory_change
        if cpu is None:
            cpu = self.recommended.cpu_request or 0
        if memory is None:
            memory = self.recommended.memory_request or 0
        return change_size(cpu, memory)


def change_size(cpu_millicores: int, memory_bytes: int) -> float:
    """A change's size, to sort by: the larger of its cores and its GiB (a core and a
    GiB cost about the same)."""
    return max(abs(cpu_millicores) / 1000, abs(memory_bytes) / GIB)


def _change(current: Values | None, recommended: Values | None, name: str) -> int | None:
    if current is None or recommended is None:
        return None
    new = getattr(recommended, name)
    if new is None:
        return None
    return int(new - (getattr(current, name) or 0))


def current_values(spec: ContainerSpec) -> Values:
    # A limit without a request: the API server defaults the request to the limit.
    cpu_request = spec.requests.cpu_millicores
    memory_request = spec.requests.memory_bytes
    return Values(
        cpu_request if cpu_request is not None else spec.limits.cpu_millicores,
        spec.limits.cpu_millicores,
        memory_request if memory_request is not None else spec.limits.memory_bytes,
        spec.limits.memory_bytes,
    )


def _scaled_limit(limit: int | None, request: int | None, new_request: int) -> int | None:
    if limit is None:
        return None
    if not request:
        return new_request
    return math.ceil(limit * new_request / request)


def recommended_values(
    rec: Recommendation,
    strategy: Strategy,
    current: Values | None,
    oom_killed: bool,
    cpu_throttled: bool = False,
) -> Values | None:
    if rec.cpu_request_millicores is None or rec.memory_request_bytes is None:
        return None
    cpu, memory = rec.cpu_request_millicores, rec.memory_request_bytes
    if strategy == "vpa":
        now = current or Values(None, None, None, None)
        cpu_limit = _scaled_limit(now.cpu_limit, now.cpu_request, cpu)
        memory_limit = _scaled_limit(now.memory_limit, now.memory_request, memory)
    else:
        cpu_limit, memory_limit = rec.cpu_limit_millicores, rec.memory_limit_bytes
    if oom_killed and current is not None:
        memory = max(memory, current.memory_request or 0)
        if memory_limit is not None:
            memory_limit = max(memory_limit, current.memory_limit or 0, memory)
    if cpu_throttled and current is not None:
        cpu = max(cpu, current.cpu_request or 0)
        if cpu_limit is not None:
            cpu_limit = max(cpu_limit, current.cpu_limit or 0, cpu)
    return Values(cpu, cpu_limit, memory, memory_limit)
