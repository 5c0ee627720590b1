"""Values a kubelet can send but no machine can have, kept out of the store.

metrics-server takes a kubelet's numbers as they come, except that NaN, infinities and
negatives count as no data (decode.go converts with uint64()). A kubelet (or an agent,
or something posing as one) can also send numbers that are finite and positive but
impossible: 1.8446744073709552e+19 bytes of memory is what a working-set subtraction
that wrapped around gives. Stored, such a number is served as a 20-digit quantity,
overflows the 64-bit integers of JSON encoders and SQLite, and so takes down views and
the history of every node. So a sample is no data, and its node's scrape error names
it, when:

- it is not finite, or negative;
- it is memory above 2^63 bytes, or above 4x the node's capacity when the node says;
- it is a CPU counter above 2^63 ns, or one that the node's cores could not have
  reached since the container started (cores x its age, with 5% and 1 s of slack for
  clocks and rounding).

A container with such a value makes its pod go, as a container without data does in
metrics-server; a node's own value makes the node's sample go. Everything else the
kubelet sent is kept.
"""

from __future__ import annotations

from typing import NamedTuple

from kubepulse.kube.objects import Node
from kubepulse.model import NodeSample, PodSample

MAX_BYTES = 2.0**63
MAX_CPU_SECONDS = 2.0**63 / 1e9
MEMORY_OVER_CAPACITY = 4
CPU_SLACK = 1.05
CPU_SLACK_SECONDS = 1.0


class ScrapeResult(NamedTuple):
    """What a scrape gives: the node (None if incomplete), its complete pods, and the
    series left out because their values cannot be real, one line each."""

    node: NodeSample | None
    pods: tuple[PodSample, ...]
    rejected: tuple[str, ...] = ()


def why_not(value: float, limit: float, unit: str) -> str | None:
    """Why a raw sample value is no data, or None if it is data (or simply zero)."""
    if value != value:
        return "not a number"
    if value < 0:
        return f"negative ({value:g})"
    if value == float("inf"):
        return "infinite"
    if value >= limit:
        return f"{value:g}: above {limit:.3g} {unit}"
    return None


def within_node(node: Node, result: ScrapeResult) -> ScrapeResult:
    """The result without values the node's capacity makes impossible (module
    docstring); the values the decoder refused are already out, and named."""
    capacity = node.capacity
    max_memory = MAX_BYTES
    if capacity.memory_bytes:
        max_memory = min(MAX_BYTES, MEMORY_OVER_CAPACITY * capacity.memory_bytes)
    cores = (capacity.cpu_millicores or 0) / 1000
    rejected = list(result.rejected)
    sample = result.node
    if sample is not None and sample.usage.working_set_bytes > max_memory:
        rejected.append(
            f"node_memory_working_set_bytes {sample.usage.working_set_bytes}: "
            f"above {MEMORY_OVER_CAPACITY}x the node's capacity"
        )
        sample = None
    kept: list[PodSample] = []
    for pod in result.pods:
        why = _impossible(pod, max_memory, cores)
        if why is None:
            kept.append(pod)
        else:
            rejected.append(why)
    if len(kept) == len(result.pods) and sample is result.node:
        return result
    return ScrapeResult(sample, tuple(kept), tuple(rejected))


def _impossible(pod: PodSample, max_memory: float, cores: float) -> str | None:
    for c in pod.containers:
        u = c.usage
        where = f'{{container="{c.name}",namespace="{pod.namespace}",pod="{pod.name}"}}'
        if u.working_set_bytes > max_memory:
            return (
                f"container_memory_working_set_bytes{where} {u.working_set_bytes}: "
                f"above {MEMORY_OVER_CAPACITY}x the node's capacity"
            )
        if cores and c.start_time:
            age = u.timestamp - c.start_time
            seconds = u.cpu_usage_core_nanoseconds / 1e9
            if seconds > cores * max(age, 0.0) * CPU_SLACK + CPU_SLACK_SECONDS:
                return (
                    f"container_cpu_usage_seconds_total{where} {seconds:g}: more than "
                    f"{cores:g} cores could spend in the {max(age, 0.0):.0f}s since it started"
                )
    return None
