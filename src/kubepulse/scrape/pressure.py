"""Reading each node's OOM and CFS throttling counters for the history (opt-in).

`/metrics/resource` has no counters of a container needing more than it had; cAdvisor's
`/metrics/cadvisor` has them (container_oom_events_total and
container_cpu_cfs_(throttled_)periods_total, cadvisor metrics/prometheus.go), on the
same port and under the same authorization (nodes/metrics) as the resource metrics. A
kubepulse agent serves only those three families; a kubelet serves all of cAdvisor's,
megabytes on a busy node, hence an interval of its own (--history-pressure-interval)
and off by default in `server`. Only those three families' lines are parsed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from kubepulse.kube.objects import Node
from kubepulse.model import CgroupCounters, PressureReading
from kubepulse.scrape.client import ScrapeError
from kubepulse.scrape.decode import DecodeError, container_key

__all__ = ["PressureScraper", "decode_pressure"]

log = logging.getLogger(__name__)

ContainerKey = tuple[str, str, str]

_FAMILIES = (
    b"container_oom_events_total",
    b"container_cpu_cfs_periods_total",
    b"container_cpu_cfs_throttled_periods_total",
)
_FIELD = {name + b"{": i for i, name in enumerate(_FAMILIES)}
_PREFIXES = tuple(_FIELD)

# cAdvisor's series for a pod's own cgroup have container="" and, with dockershim,
# the sandbox's container="POD" (metrics-server skips both the same way).
_NOT_CONTAINERS = ("", "POD")


def decode_pressure(body: bytes) -> dict[ContainerKey, CgroupCounters]:
    """Each container's three counters (0 where cAdvisor wrote none: no CPU quota, no
    CFS lines), from a /metrics/cadvisor body."""
    found: dict[ContainerKey, list[int]] = {}
    for line in body.split(b"\n"):
        if not line.startswith(_PREFIXES):
            continue
        brace = line.find(b"{")
        close = line.rfind(b"}")
        if close < brace:
            raise DecodeError(f"unfinished label set in {line[:60]!r}")
        key = container_key(line[brace:close])
        if key is None or key[2] in _NOT_CONTAINERS:
            continue
        fields = line[close + 1 :].split()
        if not fields:
            raise DecodeError(f"no value in {line[:60]!r}")
        try:
            value = float(fields[0])
        except ValueError:
            raise DecodeError(f"invalid value in {line[:60]!r}") from None
        if not value >= 0 or value == float("inf"):
            continue  # a counter cannot be negative, NaN or infinite: not a reading
        counters = found.setdefault(key, [0, 0, 0])
        counters[_FIELD[line[: brace + 1]]] = int(value)
    return {key: CgroupCounters(*c) for key, c in found.items()}


class PressureScraper:
    """Every `interval`, reads each target node's counters and hands them on."""

    def __init__(
        self,
        read: Callable[[Node], Awaitable[bytes]],
        targets: Callable[[], list[Node]],
        record: Callable[[PressureReading], object],
        interval: float,
    ) -> None:
        """read: the client's cadvisor(); record: the history's record_pressure()."""
        self.read, self.targets, self.record = read, targets, record
        self.interval = interval
        self.errors: dict[str, str] = {}
        """Node -> why its counters could not be read, logged once per change."""

    async def run(self) -> None:
        next_read = time.monotonic()
        while True:
            await self.read_all()
            next_read = max(next_read + self.interval, time.monotonic())
            await asyncio.sleep(next_read - time.monotonic())

    async def read_all(self) -> None:
        nodes = self.targets()
        await asyncio.gather(*(self._read_one(n) for n in nodes))
        for gone in self.errors.keys() - {n.name for n in nodes}:
            del self.errors[gone]

    async def _read_one(self, node: Node) -> None:
        at = time.time()
        try:
            body = await self.read(node)
            counters = decode_pressure(body)
        except (ScrapeError, DecodeError) as err:
            why = str(err)
            if self.errors.get(node.name) != why:
                log.warning("cannot read node %s's OOM and throttling counters: %s", node.name, why)
            self.errors[node.name] = why
            return
        if node.name in self.errors:
            del self.errors[node.name]
            log.info("reading node %s's OOM and throttling counters works again", node.name)
        self.record(PressureReading(node.name, at, counters))
