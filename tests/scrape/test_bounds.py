"""Values no machine can have are no data, and named, in every decoder's path."""

from __future__ import annotations

import json

import pytest

from kubepulse.agent.resource_metrics import render
from kubepulse.kube.objects import Node
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Resources, Usage
from kubepulse.scrape.bounds import ScrapeResult, within_node
from kubepulse.scrape.decode import decode_resource_metrics, decode_summary

T = 1_700_000_000.0


def body(web_memory: int, node_memory: int = 2**30) -> bytes:
    pods = tuple(
        PodSample(
            "shop",
            name,
            f"uid-{name}",
            T - 60,
            (ContainerSample("main", T - 60, Usage(T, 5 * 10**9, memory)),),
        )
        for name, memory in (("web-0", web_memory), ("db-0", 2**20))
    )
    return render(NodeStats(NodeSample("n", T - 600, Usage(T, 10**11, node_memory)), pods)).encode()


def general(text: bytes) -> bytes:
    """The same answer in a shape only the general path takes (a tab in a comment)."""
    return text.replace(b"# TYPE", b"#\tTYPE", 1)


WRAPPED = 2**64  # a working-set subtraction that went below zero, as an unsigned


@pytest.mark.parametrize("shape", [lambda b: b, general], ids=["fast-path", "general-path"])
@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"1.8446744073709552e+19", "1.84467e+19: above 9.22e+18 bytes"),
        (b"NaN", "not a number"),
        (b"+Inf", "infinite"),
        (b"-1", "negative (-1)"),
    ],
)
def test_an_impossible_container_value_drops_its_pod_and_is_named(
    shape: object, raw: bytes, why: str
) -> None:
    text = body(777).replace(b"} 777 ", b"} " + raw + b" ")
    rejected: list[str] = []

    node, pods = decode_resource_metrics(shape(text), "n", T, rejected)  # type: ignore[operator]

    assert node is not None
    assert [p.name for p in pods] == ["db-0"]
    series = 'container_memory_working_set_bytes{container="main",namespace="shop",pod="web-0"}'
    assert rejected == [f"{series}: {why}"]


def test_a_zero_is_no_data_but_nothing_to_name() -> None:
    rejected: list[str] = []
    _, pods = decode_resource_metrics(body(0), "n", T, rejected)
    assert [p.name for p in pods] == ["db-0"]
    assert rejected == []


def test_an_impossible_node_value_drops_the_node_and_is_named() -> None:
    rejected: list[str] = []
    node, pods = decode_resource_metrics(
        body(2**20).replace(b"1.073741824e+09", b"1e+300"), "n", T, rejected
    )
    assert node is None
    assert [p.name for p in pods] == ["db-0", "web-0"]
    assert rejected == ["node_memory_working_set_bytes: 1e+300: above 9.22e+18 bytes"]


def test_the_summary_api_names_them_too() -> None:
    summary = {
        "node": {
            "nodeName": "n",
            "cpu": {"time": "2023-11-14T22:13:20Z", "usageCoreNanoSeconds": 10**11},
            "memory": {"time": "2023-11-14T22:13:20Z", "workingSetBytes": 1e300},
        },
        "pods": [
            {
                "podRef": {"name": "web-0", "namespace": "shop", "uid": "u"},
                "containers": [
                    {
                        "name": "main",
                        "cpu": {"time": "2023-11-14T22:13:20Z", "usageCoreNanoSeconds": -5},
                        "memory": {"time": "2023-11-14T22:13:20Z", "workingSetBytes": 5},
                    }
                ],
            }
        ],
    }
    rejected: list[str] = []
    node, pods = decode_summary(json.dumps(summary).encode(), "n", rejected)
    assert node is None and pods == ()
    assert rejected == [
        "node workingSetBytes: 1e+300: above 9.22e+18 bytes",
        "pod shop/web-0 container main usageCoreNanoSeconds: negative (-5)",
    ]


def test_the_nodes_capacity_bounds_memory_and_the_cpu_its_cores_could_spend() -> None:
    node = Node("n", capacity=Resources(cpu_millicores=2000, memory_bytes=2**30))

    def pod(name: str, cpu_seconds: float, memory: int, age: float) -> PodSample:
        usage = Usage(T, round(cpu_seconds * 1e9), memory)
        return PodSample("shop", name, "u", T - age, (ContainerSample("main", T - age, usage),))

    result = ScrapeResult(
        NodeSample("n", T - 600, Usage(T, 10**11, 2**29)),
        (
            pod("fits", 100, 2**29, age=60),  # 100 s of CPU in 60 s on 2 cores: possible
            pod("too-big", 1, 5 * 2**30, age=60),  # 5 GiB on a 1 GiB node
            pod("too-busy", 200, 2**20, age=60),  # 200 s of CPU in 60 s on 2 cores
        ),
    )

    kept = within_node(node, result)

    assert [p.name for p in kept.pods] == ["fits"]
    assert kept.node is not None
    assert len(kept.rejected) == 2
    assert "too-big" in kept.rejected[0] and "above 4x the node's capacity" in kept.rejected[0]
    assert "too-busy" in kept.rejected[1]
    assert "more than 2 cores could spend in the 60s" in kept.rejected[1]
    assert within_node(Node("n"), result) == result  # no capacity known: only 2^63 holds
