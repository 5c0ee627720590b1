"""Decoding kubelet payloads: metrics-server's decode_test.go cases and property tests."""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from kubepulse.agent import resource_metrics, summary
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Usage
from kubepulse.scrape import decode as decoder
from kubepulse.scrape.decode import DecodeError, decode_resource_metrics, decode_summary

# The "Normal" case of metrics-server's pkg/scraper/client/resource/decode_test.go, as
# quoted in the reference notes, section 1.4 (coredns on a kind node, Oct 2021).
NORMAL = b"""
# HELP container_cpu_usage_seconds_total [ALPHA] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.710169 1633253812125
# HELP container_memory_working_set_bytes [ALPHA] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.253376e+07 1633253812125
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.633252712e+9 1633253812125
# HELP node_cpu_usage_seconds_total [ALPHA] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 357.35491 1633253809720
# HELP node_memory_working_set_bytes [ALPHA] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.616273408e+09 1633253809720
# HELP pod_cpu_usage_seconds_total [ALPHA] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.67812 1633253803935
# HELP pod_memory_working_set_bytes [ALPHA] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.2627968e+07 1633253803935
# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
"""  # noqa: E501 (verbatim from decode_test.go)

COREDNS = '{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"}'
CPU = "container_cpu_usage_seconds_total" + COREDNS
MEMORY = "container_memory_working_set_bytes" + COREDNS
START = "container_start_time_seconds" + COREDNS


def utc(*fields: int, ms: int = 0) -> float:
    return calendar.timegm((*fields, 0, 0, 0)) + ms / 1000


NODE_TIME = utc(2021, 10, 3, 9, 36, 49, ms=720)
CONTAINER_TIME = utc(2021, 10, 3, 9, 36, 52, ms=125)
COREDNS_START = utc(2021, 10, 3, 9, 18, 32)
DEFAULT_TIME = utc(2077, 7, 7, 7, 7, 7)


def decode(
    text: str | bytes, default_time: float = 0.0
) -> tuple[NodeSample | None, tuple[PodSample, ...]]:
    body = text.encode() if isinstance(text, str) else text
    return decode_resource_metrics(body, "node1", default_time)


def usage(node_or_container: NodeSample | ContainerSample) -> tuple[float, int, int]:
    u = node_or_container.usage
    return u.timestamp, u.cpu_usage_core_nanoseconds, u.working_set_bytes


def containers(pods: Iterable[PodSample]) -> dict[tuple[str, str, str], ContainerSample]:
    return {(p.namespace, p.name, c.name): c for p in pods for c in p.containers}


# --- metrics-server's decode_test.go --------------------------------------------------


def test_normal_payload_decodes_to_the_reference_numbers() -> None:
    node, pods = decode(NORMAL)
    assert node is not None
    assert node.name == "node1"
    assert usage(node) == (NODE_TIME, 357_354_910_000, 1_616_273_408)
    assert len(pods) == 1
    (pod,) = pods
    assert (pod.namespace, pod.name, pod.uid, pod.start_time) == (
        "kube-system",
        "coredns-558bd4d5db-4dpjz",
        "",
        0.0,
    )
    (container,) = pod.containers
    assert container.name == "coredns"
    assert container.start_time == COREDNS_START
    assert usage(container) == (CONTAINER_TIME, 4_710_169_000, 12_533_760)


def test_missing_timestamps_use_the_default_time() -> None:
    node, pods = decode(
        f"""
{CPU} 4.710169
{MEMORY} 1.253376e+07
{START} 1.633252712e+9
node_cpu_usage_seconds_total 357.35491
node_memory_working_set_bytes 1.616273408e+09
""",
        default_time=DEFAULT_TIME,
    )
    assert node is not None and usage(node) == (DEFAULT_TIME, 357_354_910_000, 1_616_273_408)
    (container,) = containers(pods).values()
    assert usage(container) == (DEFAULT_TIME, 4_710_169_000, 12_533_760)
    assert container.start_time == COREDNS_START


def test_pods_without_node() -> None:
    node, pods = decode(f"{CPU} 4.710169 1633253812125\n{MEMORY} 1.253376e+07 1633253812125\n")
    assert node is None
    assert list(containers(pods)) == [("kube-system", "coredns-558bd4d5db-4dpjz", "coredns")]


def test_node_without_pods() -> None:
    node, pods = decode(
        "node_cpu_usage_seconds_total 357.35491 1633253809720\n"
        "node_memory_working_set_bytes 1.616273408e+09 1633253809720\n"
    )
    assert node is not None and usage(node) == (NODE_TIME, 357_354_910_000, 1_616_273_408)
    assert pods == ()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("node_memory_working_set_bytes 1.616273408e+09 1633253809720", id="no cpu"),
        pytest.param(
            "node_cpu_usage_seconds_total 0 1633253809720\n"
            "node_memory_working_set_bytes 1.616273408e+09 1633253809720",
            id="zero cpu",
        ),
        pytest.param("node_cpu_usage_seconds_total 357.35491 1633253809720", id="no memory"),
        pytest.param(
            "node_cpu_usage_seconds_total 357.35491 1633253809720\n"
            "node_memory_working_set_bytes 0 1633253809720",
            id="zero memory",
        ),
        pytest.param(
            "node_cpu_usage_seconds_total 357.35491 0\n"
            "node_memory_working_set_bytes 1.616273408e+09 0",
            id="zero timestamp",
        ),
        pytest.param(
            "node_cpu_usage_seconds_total NaN 1633253809720\n"
            "node_memory_working_set_bytes 1.616273408e+09 1633253809720",
            id="NaN cpu",
        ),
        pytest.param(
            "node_cpu_usage_seconds_total 357.35491 1633253809720\n"
            "node_memory_working_set_bytes +Inf 1633253809720",
            id="infinite memory",
        ),
        pytest.param(
            "node_cpu_usage_seconds_total -357.35491 1633253809720\n"
            "node_memory_working_set_bytes 1.616273408e+09 1633253809720",
            id="negative cpu",
        ),
    ],
)
def test_incomplete_node_is_dropped(text: str) -> None:
    assert decode(text) == (None, ())


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"{MEMORY} 1.253376e+07 1633253812125", id="no cpu"),
        pytest.param(f"{CPU} 0 1633253812125\n{MEMORY} 1.253376e+07 1633253812125", id="zero cpu"),
        pytest.param(f"{CPU} 4.710169 1633253812125", id="no memory"),
        pytest.param(f"{CPU} 4.710169 1633253812125\n{MEMORY} 0 1633253812125", id="zero memory"),
        pytest.param(f"{START} 1.633252712e+9", id="only a start time"),
        pytest.param(f"{CPU} NaN 1633253812125\n{MEMORY} 1.253376e+07 1633253812125", id="NaN"),
    ],
)
def test_incomplete_container_is_dropped(text: str) -> None:
    assert decode(text) == (None, ())


def test_pod_with_one_incomplete_container_is_dropped_whole() -> None:
    def series(pod: str, container: str, cpu: str, memory: str) -> str:
        labels = f'{{container="{container}",namespace="ns",pod="{pod}"}}'
        return (
            f"container_cpu_usage_seconds_total{labels} {cpu} 1633253812125\n"
            f"container_memory_working_set_bytes{labels} {memory} 1633253812125\n"
        )

    _, pods = decode(
        series("broken", "app", "1.5", "1000")
        + series("broken", "sidecar", "0", "1000")
        + series("fine", "app", "1.5", "1000")
        + series("fine", "sidecar", "2.5", "2000")
    )
    assert [p.name for p in pods] == ["fine"]
    assert [c.name for c in pods[0].containers] == ["app", "sidecar"]
    assert [c.usage.cpu_usage_core_nanoseconds for c in pods[0].containers] == [
        1_500_000_000,
        2_500_000_000,
    ]


def test_negative_timestamp_is_an_error() -> None:
    # decode_test.go "Containing an incorrect timestamp": Prometheus' parser fails.
    with pytest.raises(DecodeError, match="line 4: invalid timestamp"):
        decode(
            """
# HELP container_start_time_seconds [ALPHA] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="metrics-server",namespace="kubernetes-dashboard",pod="kubernetes-dashboard-metrics-server-77db45cdf4-fppzx"} -6.7953645788713455e+09 -62135596800000
container_start_time_seconds{container="metrics-server",namespace="kubernetes-dashboard",pod="kubernetes-dashboard-metrics-server-77db45cdf4-tpx4v"} 1.6509742024191372e+09 1650974202419
"""  # noqa: E501
        )


# --- labels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param('{pod="p",namespace="ns",container="c"}', id="other order"),
        pytest.param(
            '{id="/kubepods/x",image="registry/app:1",namespace="ns",pod="p",container="c"}',
            id="extra labels",
        ),
        pytest.param('{ container = "c" , namespace="ns",pod="p", }', id="spaces, trailing comma"),
        pytest.param(
            '{xpod="wrong",container="c",xnamespace="no",namespace="ns",pod="p"}', id="xpod"
        ),
        pytest.param('{a="container=\\"x\\",",container="c",namespace="ns",pod="p"}', id="tricky"),
    ],
)
def test_label_sets(labels: str) -> None:
    _, pods = decode(
        f"container_cpu_usage_seconds_total{labels} 1 1633253812125\n"
        f"container_memory_working_set_bytes{labels} 2 1633253812125\n"
    )
    assert list(containers(pods)) == [("ns", "p", "c")]


def test_escaped_label_values() -> None:
    labels = r'{container="say \"hi\"",namespace="back\\slash}",pod="two\nlines, {x=\"y\"}"}'
    _, pods = decode(
        f"container_cpu_usage_seconds_total{labels} 1 1633253812125\n"
        f"container_memory_working_set_bytes{labels} 2 1633253812125\n"
        f"container_start_time_seconds{labels} 1.5e+09\n"
    )
    (pod,) = pods
    assert pod.namespace == "back\\slash}"
    assert pod.name == 'two\nlines, {x="y"}'
    assert pod.containers[0].name == 'say "hi"'
    assert pod.containers[0].start_time == 1.5e9


def test_series_without_container_labels_are_ignored() -> None:
    assert decode(
        'container_cpu_usage_seconds_total{namespace="ns",pod="p"} 1 1633253812125\n'
        'container_memory_working_set_bytes{namespace="ns",pod="p"} 2 1633253812125\n'
        "container_cpu_usage_seconds_total 1 1633253812125\n"
    ) == (None, ())


def test_comments_and_other_series_are_skipped() -> None:
    text = NORMAL.decode() + (
        '# a free-form comment with { and } and "quotes\n'
        "# EOF\n"
        "node_swap_usage_bytes 1.5e+06 1633253809720\n"
        'container_swap_usage_bytes{container="coredns",namespace="kube-system",pod="x"} 7 1\n'
        'container_cpu_usage_seconds_total_extra{container="c",namespace="ns",pod="p"} 0 1\n'
        "node_cpu_usage_seconds_total_extra 0 1\n"
        'resource_scrape_error{weird="la} bel"} 0\n'
        "process_start_time_seconds 1.6e+09\n"
        'go_gc_duration_seconds{quantile="0.5"} NaN\n'
        'http_requests_total{code="200"} +Inf 1633253809720\n'
        "\n\n"
    )
    assert decode(text) == decode(NORMAL)


def test_crlf_and_leading_whitespace_are_tolerated() -> None:
    text = "\r\n".join("  " + line for line in NORMAL.decode().splitlines())
    assert decode(text) == decode(NORMAL)


def test_go_float_spellings() -> None:
    node, _ = decode(
        "node_cpu_usage_seconds_total 3.5735491e+02 1633253809720\n"
        "node_memory_working_set_bytes 1616273408 1633253809720\n"
        'some_gauge{x="1"} -Inf\n'
        "other_gauge +1.5E-3\n"
    )
    assert node is not None and usage(node) == (NODE_TIME, 357_354_910_000, 1_616_273_408)


def test_tabs_between_fields() -> None:
    node, pods = decode(
        "node_cpu_usage_seconds_total\t357.35491\t1633253809720\n"
        "node_memory_working_set_bytes \t1.616273408e+09  1633253809720\n"
        f"{CPU}\t4.710169\t1633253812125\n{MEMORY}\t1.253376e+07\n"
    )
    assert node is not None and usage(node) == (NODE_TIME, 357_354_910_000, 1_616_273_408)
    assert len(pods) == 1


def test_last_sample_of_a_series_wins() -> None:
    node, _ = decode(
        "node_cpu_usage_seconds_total 1 1633253809720\n"
        "node_memory_working_set_bytes 5 1633253809720\n"
        "node_cpu_usage_seconds_total 2 1633253809720\n"
    )
    assert node is not None and node.usage.cpu_usage_core_nanoseconds == 2_000_000_000


def test_pods_and_containers_are_sorted() -> None:
    lines = []
    for pod, container in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "x")]:
        labels = f'{{container="{container}",namespace="ns",pod="{pod}"}}'
        lines += [
            f"container_cpu_usage_seconds_total{labels} 1 1",
            f"container_memory_working_set_bytes{labels} 1 1",
        ]
    _, pods = decode("\n".join(lines))
    assert [(p.name, [c.name for c in p.containers]) for p in pods] == [
        ("a", ["x", "y"]),
        ("b", ["a", "z"]),
    ]


def test_empty_body_has_no_metrics() -> None:
    assert decode(b"") == (None, ())
    assert decode(b"# only comments\n\n") == (None, ())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"<html><body>Bad Gateway</body></html>", "line 1: not Prometheus", id="HTML"),
        pytest.param(b'{"node": {"nodeName": "n"}}', "line 1: not Prometheus", id="JSON"),
        pytest.param(b"404 page not found\n", "line 1: not Prometheus", id="text"),
        pytest.param(
            b"Forbidden (user=system:anonymous, verb=get, resource=nodes)",
            "not Prometheus",
            id="forbidden text",
        ),
        pytest.param(b"node_cpu_usage_seconds_total\n", "no value|expected a value", id="no value"),
        pytest.param(b"node_cpu_usage_seconds_total one 1\n", "invalid value", id="bad value"),
        pytest.param(b"node_cpu_usage_seconds_total 1 2 3\n", "expected a value", id="3 fields"),
        pytest.param(b"node_cpu_usage_seconds_total 1 1.5\n", "invalid timestamp", id="float ts"),
        pytest.param(
            b'\n\ncontainer_cpu_usage_seconds_total{container="c" 1 1\n',
            "line 3: unterminated label set",
            id="no closing brace",
        ),
        pytest.param(
            b'container_cpu_usage_seconds_total{container="c,pod="p"} 1 1\n',
            "invalid label set",
            id="unbalanced quotes",
        ),
        pytest.param(
            b"container_cpu_usage_seconds_total{container=c} 1 1\n",
            "invalid label set",
            id="unquoted value",
        ),
        pytest.param(
            b'container_cpu_usage_seconds_total{container="\xff",namespace="n",pod="p"} 1 1\n',
            "not UTF-8",
            id="not UTF-8",
        ),
        pytest.param(b'pod_cpu_usage_seconds_total{pod="p"} x 1\n', "not Prometheus", id="other"),
    ],
)
def test_garbage_is_a_decode_error(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(body)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


# --- property: the kubepulse agent's rendering, with prometheus_client as the oracle ----

label_text = st.text(
    alphabet=st.one_of(
        st.sampled_from('abz09-._"\\\n{}=, '),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    min_size=1,
    max_size=12,
)
usage_values = st.fixed_dictionaries(
    {
        # Whole milliseconds, as the kubelet's timestamps are.
        "timestamp": st.integers(1_000_000, 4_000_000_000_000).map(lambda ms: ms / 1000),
        "cpu": st.one_of(st.just(0), st.integers(1, 10**15)),
        "memory": st.one_of(st.just(0), st.integers(1, 2**50)),
    }
)


def _usage(values: dict[str, Any]) -> Usage:
    return Usage(values["timestamp"], values["cpu"], values["memory"])


@st.composite
def node_stats(draw: st.DrawFn) -> NodeStats:
    pod_keys = draw(st.lists(st.tuples(label_text, label_text), max_size=6, unique=True))
    pods = []
    for namespace, name in pod_keys:
        names = draw(st.lists(label_text, min_size=1, max_size=3, unique=True))
        pod_containers = tuple(
            ContainerSample(
                name=c,
                start_time=draw(st.integers(0, 2_000_000_000)) + draw(st.sampled_from([0, 0.5])),
                usage=_usage(draw(usage_values)),
            )
            for c in names
        )
        pod_usage = draw(st.one_of(st.none(), usage_values.map(_usage)))
        pods.append(PodSample(namespace, name, "uid", 0.0, pod_containers, usage=pod_usage))
    node = NodeSample("node1", 0.0, _usage(draw(usage_values)))
    return NodeStats(node, tuple(pods))


def _oracle(text: str) -> tuple[tuple[float, int, int] | None, dict[Any, Any]]:
    """What metrics-server's rules make of the samples prometheus_client parses."""
    node: dict[str, Any] = {}
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name.startswith("node_"):
                node[sample.name] = sample
            elif sample.name.startswith("container_"):
                key = (labels["namespace"], labels["pod"], labels["container"])
                found.setdefault(key, {})[sample.name] = sample
    expected_node = None
    cpu, memory = (
        node.get("node_cpu_usage_seconds_total"),
        node.get("node_memory_working_set_bytes"),
    )
    if cpu and memory and cpu.value > 0 and memory.value > 0 and cpu.timestamp:
        expected_node = (cpu.timestamp, round(cpu.value * 1e9), round(memory.value))
    pods: dict[tuple[str, str], dict[str, Any] | None] = {}
    for (namespace, pod, name), series in found.items():
        cpu, memory = (
            series.get("container_cpu_usage_seconds_total"),
            series.get("container_memory_working_set_bytes"),
        )
        start = series.get("container_start_time_seconds")
        have = pods.setdefault((namespace, pod), {})
        if have is None:
            continue
        if not cpu or not memory or cpu.value <= 0 or memory.value <= 0:
            pods[(namespace, pod)] = None
            continue
        have[name] = (
            (cpu.timestamp, round(cpu.value * 1e9), round(memory.value)),
            start.value if start else 0.0,
        )
    return expected_node, {k: v for k, v in pods.items() if v}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(node_stats())
def test_decoding_agrees_with_prometheus_client(stats: NodeStats) -> None:
    text = resource_metrics.render(stats)
    node, pods = decode_resource_metrics(text.encode(), "node1", default_time=0.0)
    expected_node, expected_pods = _oracle(text)

    assert (usage(node) if node else None) == expected_node
    got = {
        (p.namespace, p.name): {c.name: (usage(c), c.start_time) for c in p.containers}
        for p in pods
    }
    assert got == expected_pods
    # And against the source: complete containers come back exactly as they went in.
    for pod in pods:
        for container in pod.containers:
            source = next(
                c
                for p in stats.pods
                if (p.namespace, p.name) == (pod.namespace, pod.name)
                for c in p.containers
                if c.name == container.name
            )
            # The agent renders round(seconds * 1000) ms, as the kubelet does.
            rendered_ms = round(source.usage.timestamp * 1000) / 1000
            assert usage(container) == (
                rendered_ms,
                source.usage.cpu_usage_core_nanoseconds,
                source.usage.working_set_bytes,
            )
            assert container.start_time == source.start_time


# --- /stats/summary ---------------------------------------------------------------------

# Trimmed from metrics-server v0.5.2 types_test.go, as in the reference notes, section 4.
SUMMARY = b"""{"node":{"nodeName":"e2e-v1.17.0-control-plane","startTime":"2020-03-31T18:00:54Z",
  "cpu":{"time":"2020-04-16T20:25:28Z","usageNanoCores":476553087,"usageCoreNanoSeconds":519978197128},
  "memory":{"time":"2020-04-16T20:25:28Z","availableBytes":15211810816,"usageBytes":1719095296,
            "workingSetBytes":1417551872,"rssBytes":848789504,"pageFaults":73326,"majorPageFaults":726}},
 "pods":[{"podRef":{"name":"all-fields","namespace":"default","uid":"96636a87-47f5-4970-a15e-6e7901925c90"},
  "startTime":"2020-04-16T20:11:06Z",
  "containers":[{"name":"container","startTime":"2020-04-16T20:17:46Z",
    "cpu":{"time":"2020-04-16T20:25:30Z","usageNanoCores":29713960,"usageCoreNanoSeconds":29328792},
    "memory":{"time":"2020-04-16T20:25:30Z","workingSetBytes":1449984}}],
  "cpu":{"time":"2020-04-16T20:25:24Z","usageNanoCores":123,"usageCoreNanoSeconds":54096725},
  "memory":{"time":"2020-04-16T20:25:24Z","usageBytes":2641920,"workingSetBytes":2641920,"rssBytes":0}}]}"""


def test_summary_reference_example() -> None:
    node, pods = decode_summary(SUMMARY, "node1")
    assert node is not None
    assert node.name == "node1"
    assert node.start_time == utc(2020, 3, 31, 18, 0, 54)
    assert usage(node) == (utc(2020, 4, 16, 20, 25, 28), 519_978_197_128, 1_417_551_872)
    (pod,) = pods
    assert (pod.namespace, pod.name, pod.uid) == (
        "default",
        "all-fields",
        "96636a87-47f5-4970-a15e-6e7901925c90",
    )
    assert pod.start_time == utc(2020, 4, 16, 20, 11, 6)
    (container,) = pod.containers
    assert container.name == "container"
    assert container.start_time == utc(2020, 4, 16, 20, 17, 46)
    assert usage(container) == (utc(2020, 4, 16, 20, 25, 30), 29_328_792, 1_449_984)


def _summary_with(**changes: Any) -> bytes:
    doc = json.loads(SUMMARY)
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "change",
    [
        {"node__cpu": None},
        {"node__memory": None},
        {"node__cpu__usageCoreNanoSeconds": 0},
        {"node__cpu__usageCoreNanoSeconds": None},
        {"node__memory__workingSetBytes": 0},
        {"node__cpu__time": None},
    ],
)
def test_summary_incomplete_node_is_dropped(change: dict[str, Any]) -> None:
    node, pods = decode_summary(_summary_with(**change), "node1")
    assert node is None
    assert len(pods) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"pods__0__containers__0__cpu": None},
        {"pods__0__containers__0__cpu__usageCoreNanoSeconds": 0},
        {"pods__0__containers__0__memory__workingSetBytes": 0},
        {"pods__0__containers__0__memory": None},
        {"pods__0__containers": []},
    ],
)
def test_summary_incomplete_pod_is_dropped(change: dict[str, Any]) -> None:
    node, pods = decode_summary(_summary_with(**change), "node1")
    assert node is not None
    assert pods == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-04-16T20:25:28Z", utc(2020, 4, 16, 20, 25, 28)),
        ("2020-04-16T20:25:28.123456789Z", utc(2020, 4, 16, 20, 25, 28) + 0.123456789),
        ("2020-04-16T22:25:28.5+02:00", utc(2020, 4, 16, 20, 25, 28, ms=500)),
        ("2020-04-16T18:25:28-02:00", utc(2020, 4, 16, 20, 25, 28)),
    ],
)
def test_summary_times(text: str, expected: float) -> None:
    node, _ = decode_summary(_summary_with(node__cpu__time=text), "node1")
    assert node is not None
    assert math.isclose(node.usage.timestamp, expected, abs_tol=1e-6)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html></html>", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[]", "no node"),
        (b'{"pods": []}', "no node"),
        (b'{"node": {}, "pods": {}}', "pods is not a list"),
        (b'{"node": {}, "pods": [1]}', "pod is not an object"),
        (b'{"node": {"cpu": 5, "memory": {}}}', "cpu is not an object"),
        (_summary_with(node__cpu__time="yesterday"), "invalid time"),
    ],
)
def test_summary_garbage_is_a_decode_error(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_summary(body, "node1")


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(node_stats())
def test_summary_round_trip(stats: NodeStats) -> None:
    # The agent writes whole-second times (metav1.Time), so compare at that precision.
    node, pods = decode_summary(summary.render(stats, only_cpu_and_memory=True).encode(), "n")

    def seconds(u: Usage) -> tuple[float, int, int]:
        return float(math.floor(u.timestamp)), u.cpu_usage_core_nanoseconds, u.working_set_bytes

    source = stats.node.usage
    if source.cpu_usage_core_nanoseconds and source.working_set_bytes:
        assert node is not None and usage(node) == seconds(source)
    else:
        assert node is None
    expected = {
        (p.namespace, p.name): {c.name: seconds(c.usage) for c in p.containers}
        for p in stats.pods
        if all(
            c.usage.cpu_usage_core_nanoseconds and c.usage.working_set_bytes for c in p.containers
        )
    }
    assert {
        (p.namespace, p.name): {c.name: usage(c) for c in p.containers} for p in pods
    } == expected


# --- the fast path ------------------------------------------------------------------------


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(node_stats())
def test_fast_path_takes_kubelet_bodies_and_agrees_with_the_general_path(
    stats: NodeStats,
) -> None:
    body = resource_metrics.render(stats).encode()
    fast = decoder._fast(body, "node1", 0.0, [])
    labels = [v for p in stats.pods for c in p.containers for v in (p.namespace, p.name, c.name)]
    # Kubernetes names are DNS labels; values that are not fall back to the general path.
    plain = all(not set(v) & set('"\\\n\r\t#') and "  " not in v for v in labels)
    if labels and plain:
        assert fast is not None
    if fast is not None:
        assert fast == decoder._general(body, "node1", 0.0, [])


KUBELET_BODY = f"""# HELP container_cpu_usage_seconds_total x
# TYPE container_cpu_usage_seconds_total counter
{CPU} 4.710169 1633253812125
# HELP container_memory_working_set_bytes x
# TYPE container_memory_working_set_bytes gauge
{MEMORY} 1.253376e+07 1633253812125
# HELP container_start_time_seconds x
# TYPE container_start_time_seconds gauge
{START} 1.633252712e+09 1633253812125
# HELP node_cpu_usage_seconds_total x
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 357.35491 1633253809720
# HELP node_memory_working_set_bytes x
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.616273408e+09 1633253809720
"""


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(("", ""), id="unchanged"),
        pytest.param(
            (
                'container="coredns",namespace="kube-system",',
                'namespace="kube-system",container="coredns",',
            ),
            id="order",
        ),
        pytest.param(("# TYPE node_cpu", "# A comment\n# TYPE node_cpu"), id="other comment"),
        pytest.param(("1.616273408e+09 ", "1.616273408e+09  "), id="two spaces"),
        pytest.param(("357.35491", "3_57.35491"), id="underscore"),
        pytest.param(
            ("\nnode_cpu_usage_seconds_total 3", "\nfoo 1\nnode_cpu_usage_seconds_total 3"),
            id="stray line",
        ),
        pytest.param(
            ("# HELP node_memory", "# TYPE other gauge\nother 1\n# HELP node_memory"),
            id="unknown family",
        ),
        pytest.param(('4dpjz"} 4.7', '4dpjz\\"q"} 4.7'), id="escape"),
    ],
)
def test_fast_path_refuses_what_is_not_the_kubelet_shape(change: tuple[str, str]) -> None:
    old, new = change
    body = KUBELET_BODY.replace(old, new, 1).encode()
    assert (decoder._fast(body, "n", 0.0, []) is not None) == (old == "")
    # Whatever path it takes, the answer is the general path's (or its error).
    _same_as_general(body)


def test_fast_path_allows_blank_lines() -> None:
    body = KUBELET_BODY.replace("1633253812125\n#", "1633253812125\n\n#").encode()
    assert decoder._fast(body, "n", 0.0, []) is not None
    _same_as_general(body)


def _same_as_general(body: bytes) -> None:
    # Whatever path it takes, the answer is the general path's (or its error).
    try:
        expected = decoder._general(body, "n", 0.0, [])
    except DecodeError as err:
        with pytest.raises(DecodeError, match=re.escape(str(err))):
            decode_resource_metrics(body, "n", 0.0)
    else:
        assert decode_resource_metrics(body, "n", 0.0) == expected
