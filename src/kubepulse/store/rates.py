"""The rate rule, once: what the metrics API serves from two stored points.

metrics-server's rules (pkg/storage/{node,pod}.go, pkg/api):
- a node or container's CPU rate is the rise of its cumulative CPU over the window
  between its two points, the window rounded to whole milliseconds (kubelet timestamps
  are whole milliseconds);
- a start time or a counter that went back, or a window that is not positive, means no
  rate for that node or container;
- a pod is served only when every container has two points; containers without a rate
  are left out, and a pod with none left is not served; the pod's timestamp and window
  are those of its container with the earliest timestamp.

Every reader of rates goes through here: the API (pod(), pods(), the rendered pod
list), the exposition for Prometheus, the history's recorder and the dashboard's digest.
`pod_rates` builds the rates the API serves; `pod_usage` gives a node's pods as sums
(and optionally every served container in columns) without building them, for the
readers that run after every scrape of every node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from kubepulse.model import Usage


class Point(NamedTuple):
    timestamp: float
    start_time: float
    cpu_usage_core_nanoseconds: int
    working_set_bytes: int


class Rate(NamedTuple):
    """What the API serves for one node or container (a tuple: made by the thousand)."""

    timestamp: float
    window: float
    cpu_nanocores: int
    working_set_bytes: int


class PodRates(NamedTuple):
    timestamp: float
    window: float
    containers: tuple[tuple[str, Rate], ...]


# Containers of one pod: name -> (last, prev)
Containers = Mapping[str, tuple[Point, Point | None]]
PodKey = tuple[str, str]

# NamedTuples without their Python-level __new__: these are made by the hundred thousand.
_new = tuple.__new__


def point(usage: Usage, start_time: float) -> Point:
    return _new(
        Point,
        (usage.timestamp, start_time, usage.cpu_usage_core_nanoseconds, usage.working_set_bytes),
    )


def window(seconds: float) -> float:
    """round(seconds, 3) of a positive number, without going through a decimal string
    (as round() with digits does) unless it is near a tie.

    When seconds x 1000 is within a quarter of the whole number n, round() gives the
    double nearest n / 1000, and so does the division. Between two kubelet timestamps
    (whole milliseconds, ~2e-7 s apart as doubles near 1.7e9) it always is.
    """
    ms = seconds * 1000.0
    whole = int(ms + 0.5)
    if -0.25 < ms - whole < 0.25:
        return whole / 1000
    return round(seconds, 3)


def rate(last: Point, prev: Point) -> Rate | None:
    """The rate between two points of one node or container, or None (module docstring)."""
    used = last.cpu_usage_core_nanoseconds - prev.cpu_usage_core_nanoseconds
    span = last.timestamp - prev.timestamp
    seconds = window(span) if span > 0 else 0.0
    if last.start_time < prev.start_time or used < 0 or seconds <= 0:
        return None
    return _new(Rate, (last.timestamp, seconds, int(used / seconds), last.working_set_bytes))


class Columns:
    """Served containers of a node as columns, in the order they were read."""

    __slots__ = ("cpu", "mem", "names", "ts")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ts: list[float] = []
        self.cpu: list[int] = []
        self.mem: list[int] = []


PodUsage = tuple[PodKey, int, int, float, int]
"""(pod, nanocores, bytes, earliest timestamp, containers) of a servable pod: its served
containers' sums, as its PodMetrics serves them, at the time of the earliest of them
(PodRates.timestamp), and how many they are."""


def pod_usage(pods: Mapping[PodKey, Containers], columns: Columns | None = None) -> list[PodUsage]:
    """Every servable pod of one node, straight from its stored points; with `columns`,
    also every served container of those pods, appended in pod order."""
    found: list[PodUsage] = []
    into = columns if columns is not None else Columns()
    names, tss, cpus, mems = into.names, into.ts, into.cpu, into.mem
    for key, containers in pods.items():
        at = len(names)
        earliest = _served(containers, names, tss, cpus, mems)
        served = len(names) - at
        if earliest is None:
            continue
        found.append((key, sum(cpus[at:]), sum(mems[at:]), earliest, served))
        if columns is None:
            del names[:], tss[:], cpus[:], mems[:]
    return found


def pod_rates(containers: Containers) -> PodRates | None:
    """The rates the API serves for one pod, its containers by name; None when the pod
    is not servable."""
    names: list[str] = []
    tss: list[float] = []
    cpus: list[int] = []
    mems: list[int] = []
    windows: list[float] = []
    if _served(containers, names, tss, cpus, mems, windows) is None:
        return None
    first = min(range(len(tss)), key=tss.__getitem__)  # the earliest; the first of ties
    served = sorted(  # by name: names are unique within a pod
        (name, _new(Rate, (ts, w, cpu, mem)))
        for name, ts, w, cpu, mem in zip(names, tss, windows, cpus, mems, strict=True)
    )
    return PodRates(tss[first], windows[first], tuple(served))


def _served(
    containers: Containers,
    names: list[str],
    tss: list[float],
    cpus: list[int],
    mems: list[int],
    windows: list[float] | None = None,
) -> float | None:
    """Append one pod's served containers to the columns; return the earliest timestamp
    among them, or None (and append nothing) when the pod is not servable."""
    at = len(names)
    earliest = math.inf
    # Containers read together share their timestamps: one window for a run of them.
    span, seconds = -1.0, 0.0
    for name, (last, prev) in containers.items():
        if prev is None:
            del names[at:], tss[at:], cpus[at:], mems[at:]  # every container needs two
            if windows is not None:
                del windows[at:]
            return None
        last_ts, last_start, last_cpu, last_mem = last
        prev_ts, prev_start, prev_cpu, _ = prev
        if last_ts - prev_ts != span:
            span = last_ts - prev_ts
            seconds = window(span) if span > 0 else 0.0
        used = last_cpu - prev_cpu
        if last_start < prev_start or used < 0 or seconds <= 0:
            continue
        names.append(name)
        tss.append(last_ts)
        cpus.append(int(used / seconds))
        mems.append(last_mem)
        if windows is not None:
            windows.append(seconds)
        if last_ts < earliest:
            earliest = last_ts
    return None if len(names) == at else earliest
