"""Reading OOM and throttling counters out of /metrics/cadvisor (scrape/pressure.py)."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from kubepulse.kube.objects import Node, NodeAddress
from kubepulse.model import CgroupCounters, PressureReading
from kubepulse.scrape.client import ScrapeError
from kubepulse.scrape.decode import DecodeError
from kubepulse.scrape.pressure import PressureScraper, decode_pressure

# As a kubelet 1.30's cAdvisor writes them: more labels than the three, in name order,
# the pod's own cgroup with container="", a timestamp on every line, other families.
KUBELET_CADVISOR = b"""\
# HELP container_cpu_cfs_periods_total Number of elapsed enforcement period intervals.
# TYPE container_cpu_cfs_periods_total counter
container_cpu_cfs_periods_total{container="",id="/kubepods/burstable/pod1",image="",\
name="",namespace="default",pod="web-0"} 48231 1733600000000
container_cpu_cfs_periods_total{container="app",id="/kubepods/burstable/pod1/c1",\
image="nginx:1.27",name="c1",namespace="default",pod="web-0"} 48190 1733600000000
# HELP container_cpu_cfs_throttled_periods_total Number of throttled period intervals.
# TYPE container_cpu_cfs_throttled_periods_total counter
container_cpu_cfs_throttled_periods_total{container="app",id="/kubepods/burstable/pod1/c1",\
image="nginx:1.27",name="c1",namespace="default",pod="web-0"} 1.2531e+04 1733600000000
# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",cpu="total",id="/x",image="nginx:1.27",\
name="c1",namespace="default",pod="web-0"} 5012.3 1733600000000
# HELP container_oom_events_total Count of out of memory events observed for the container
# TYPE container_oom_events_total counter
container_oom_events_total{container="",id="/kubepods/burstable/pod1",image="",name="",\
namespace="default",pod="web-0"} 0 1733600000000
container_oom_events_total{container="POD",id="/kubepods/pod2/s",image="pause",name="s",\
namespace="kube-system",pod="dns-1"} 0 1733600000000
container_oom_events_total{container="app",id="/kubepods/burstable/pod1/c1",\
image="nginx:1.27",name="c1",namespace="default",pod="web-0"} 2 1733600000000
container_oom_events_total{container="coredns",id="/kubepods/pod2/c2",image="coredns",\
name="c2",namespace="kube-system",pod="dns-1"} 0 1733600000000
container_oom_events_total{id="/system.slice/docker.service",image="",name=""} 0
"""


def test_a_kubelets_answer_gives_each_containers_three_counters() -> None:
    assert decode_pressure(KUBELET_CADVISOR) == {
        ("default", "web-0", "app"): CgroupCounters(2, 48190, 12531),
        # No quota: no CFS lines, zero periods.
        ("kube-system", "dns-1", "coredns"): CgroupCounters(0, 0, 0),
    }


def test_labels_in_any_order_with_escapes_are_read() -> None:
    body = (
        b'container_oom_events_total{pod="a\\"b",namespace="ns",container="c"} 1\n'
        b'container_cpu_cfs_periods_total{namespace="ns",container="c",pod="a\\"b",} 10\n'
    )
    assert decode_pressure(body) == {("ns", 'a"b', "c"): CgroupCounters(1, 10, 0)}


@pytest.mark.parametrize(
    "line",
    [
        b'container_oom_events_total{container="c",namespace="n",pod="p"} many',
        b'container_oom_events_total{container="c",namespace="n",pod="p"}',
        b'container_oom_events_total{container="c,namespace="n",pod="p" 1',
    ],
)
def test_a_broken_line_is_refused(line: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_pressure(line + b"\n")


def test_values_that_cannot_be_counts_are_left_out() -> None:
    body = b"".join(
        b'container_oom_events_total{container="c",namespace="n",pod="p%d"} %s\n' % (i, v)
        for i, v in enumerate([b"-1", b"NaN", b"+Inf", b"3"])
    )
    assert decode_pressure(body) == {("n", "p3", "c"): CgroupCounters(3, 0, 0)}


def node(name: str) -> Node:
    return Node(name=name, addresses=(NodeAddress("InternalIP", "127.0.0.1"),))


async def test_each_node_is_read_and_a_failure_is_logged_once_until_it_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: dict[str, list[bytes | Exception]] = {
        "good": [KUBELET_CADVISOR] * 3,
        "bad": [
            ScrapeError("unauthorized", "403 Forbidden"),
            ScrapeError("unauthorized", "403 Forbidden"),
            KUBELET_CADVISOR,
        ],
    }

    async def read(n: Node) -> bytes:
        answer = answers[n.name].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    recorded: list[PressureReading] = []
    scraper = PressureScraper(read, lambda: [node("good"), node("bad")], recorded.append, 60)
    with caplog.at_level(logging.INFO, logger="kubepulse.scrape.pressure"):
        for _ in range(3):
            await scraper.read_all()
    assert [r.node for r in recorded] == ["good", "good", "good", "bad"]
    assert recorded[0].counters == decode_pressure(KUBELET_CADVISOR)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "cannot read node bad's OOM and throttling counters: 403 Forbidden",
        "reading node bad's OOM and throttling counters works again",
    ]
    assert scraper.errors == {}


async def test_the_loop_reads_again_every_interval() -> None:
    reads: list[float] = []
    enough = asyncio.Event()

    async def read(_n: Node) -> bytes:
        reads.append(asyncio.get_running_loop().time())
        if len(reads) == 3:
            enough.set()
        return b""

    scraper = PressureScraper(read, lambda: [node("a")], lambda _r: None, 0.05)
    task = asyncio.create_task(scraper.run())
    try:
        await asyncio.wait_for(enough.wait(), timeout=10)
    finally:
        task.cancel()
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(reads))
