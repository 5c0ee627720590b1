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


def pod_usage(
    pods: Mapping[PodKey, Containers],
    columns: Columns | None = None,
    rates: list[tuple[str, Rate]] | None = None,
) -> list[PodUsage]:
    """Every servable pod of one node, straight from its stored points; with `columns`,
    also every served container of those pods, appended in pod order (and with `rates`,
    each one's Rate).

    This is the rule (module docstring), in one loop: it runs for every container of
    every node after each scrape (the history) and for every pod a LIST serves.
    """
    found: list[PodUsage] = []
    into = columns if columns is not None else Columns()
    names, tss, cpus, mems = into.names, into.ts, into.cpu, into.mem
    # Containers read together share their timestamps: one window for a run of them.
    span, seconds = -1.0, 0.0
    for key, containers in pods.items():
        cpu_sum = mem_sum = served = 0
        earliest = math.inf
        for name, (last, prev) in containers.items():
            if prev is None:
                break  # every container needs two points
            last_ts, last_start, last_cpu, last_mem = last
            prev_ts, prev_start, prev_cpu, _ = prev
            if last_ts - prev_ts != span:
                span = last_ts - prev_ts
                seconds = window(span) if span > 0 else 0.0
            used = last_cpu - prev_cpu
            if last_start < prev_start or used < 0 or seconds <= 0:
                continue
            cpu = int(used / seconds)
            cpu_sum += cpu
            mem_sum += last_mem
            served += 1
            if last_ts < earliest:
                earliest = last_ts
            names.append(name)
            tss.append(last_ts)
            cpus.append(cpu)
            mems.append(last_mem)
            if rates is not None:
                rates.append((name, _new(Rate, (last_ts, seconds, cpu, last_mem))))
        else:
            if served:
                found.append((key, cpu_sum, mem_sum, earliest, served))
                if columns is None:
                    del names[:], tss[:], cpus[:], mems[:]
            continue
        if served:  # not servable after all: its containers go
            del names[-served:], tss[-served:], cpus[-served:], mems[-served:]
            if rates is not None:
                del rates[-served:]
    return found


def node_pod_rates(pods: Mapping[PodKey, Containers]) -> list[tuple[PodKey, PodRates]]:
    """pod_rates() of every servable pod of one node, in one pass of the rule."""
    served: list[tuple[str, Rate]] = []
    found: list[tuple[PodKey, PodRates]] = []
    at = 0
    for key, _, _, earliest, count in pod_usage(pods, Columns(), served):
        mine = served[at : at + count]
        at += count
        first = next(r for _, r in mine if r.timestamp == earliest)  # the first of ties
        mine.sort()  # by name: names are unique within a pod
        found.append((key, _new(PodRates, (earliest, first.window, tuple(mine)))))
    return found


_ONE_POD: PodKey = ("", "")


def pod_rates(containers: Containers) -> PodRates | None:
    """The rates the API serves for one pod, its containers by name; None when the pod
    is not servable."""
    found = node_pod_rates({_ONE_POD: containers})
    return found[0][1] if found else None
