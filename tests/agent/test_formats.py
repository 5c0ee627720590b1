"""The kubelet wire formats: /metrics/resource text and /stats/summary JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kubepulse.agent import resource_metrics, summary
from kubepulse.agent.resource_metrics import go_float
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Resources, Usage

# -- go_float ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10.0, "10"),
        (1000.0, "1000"),
        (1616273408.0, "1.616273408e+09"),
        (12533760.0, "1.253376e+07"),
        (357.35491, "357.35491"),
        (1e-05, "1e-05"),
        (0.0001, "0.0001"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0, "0"),
        (4.710169, "4.710169"),
        # Below: from the 'g' branch of Go's strconv/ftoa.go formatDigits, where shortest
        # output uses %e when exp < -4 || exp >= 6 (eprec = 6).
        (999999.0, "999999"),
        (999999.5, "999999.5"),
        (1e6, "1e+06"),
        (1000000.5, "1.0000005e+06"),
        (608863452348.1149, "6.088634523481149e+11"),
        (1e15, "1e+15"),
        (1e16, "1e+16"),
        (1.5e-05, "1.5e-05"),
        (0.00012, "0.00012"),
        (-1234567.0, "-1.234567e+06"),
        (-357.35491, "-357.35491"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
    ids=lambda v: repr(v) if isinstance(v, float) else None,
)
def test_go_float_matches_go_strconv_format_float_g_shortest(value: float, expected: str) -> None:
    assert go_float(value) == expected


def go_layout(value: float) -> str:
    """Go's shortest 'g' layout applied to Python's shortest digits (repr).

    formatDigits in Go's strconv/ftoa.go: with shortest output eprec = 6, and %e is
    used when exp < -4 || exp >= eprec; %e writes at least two exponent digits.
    """
    number = Decimal(repr(value))
    sign, digit_tuple, _ = number.as_tuple()
    digits = "".join(str(d) for d in digit_tuple).rstrip("0") or "0"
    exp = number.adjusted()
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{prefix}0.{'0' * (-exp - 1)}{digits}"
    whole, fraction = digits[: exp + 1].ljust(exp + 1, "0"), digits[exp + 1 :]
    return prefix + whole + ("." + fraction if fraction else "")


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite)
@example(999999.9999999999)
@example(1e-4)
@example(9.999999999999999e-05)
@example(123456789012345.6)
def test_go_float_round_trips(value: float) -> None:
    assert float(go_float(value)) == value


# Zero is left to the table: Go writes -0.0 as "-0", go_float writes "0" (never produced
# here, since CPU seconds and byte counts are never negative).
@given(finite.filter(lambda v: v != 0))
@example(999999.9999999999)
@example(9.999999999999999e-05)
@example(99999999999999.98)
@example(-1e15 + 1)
def test_go_float_uses_an_exponent_exactly_where_go_does(value: float) -> None:
    assert go_float(value) == go_layout(value)


# -- /metrics/resource -------------------------------------------------------------------

T_NODE = 1_700_000_000.123
T_WEB = 1_700_000_000.456
T_MESH = 1_700_000_000.789
T_POD = 1_700_000_000.5
T_ODD = 1_700_000_001.25
T_DNS = 1_700_000_002.0
MS = {
    T_NODE: 1_700_000_000_123,
    T_WEB: 1_700_000_000_456,
    T_MESH: 1_700_000_000_789,
    T_POD: 1_700_000_000_500,
    T_ODD: 1_700_000_001_250,
    T_DNS: 1_700_000_002_000,
}

ODD_NAMESPACE = 'we"ird'
ODD_POD = "back\\slash"
ODD_CONTAINER = "new\nline"


def usage(t: float, cpu_ns: int, working_set: int, **extra: int | None) -> Usage:
    return Usage(
        timestamp=t, cpu_usage_core_nanoseconds=cpu_ns, working_set_bytes=working_set, **extra
    )


def container(name: str, start: float, u: Usage, **extra: Any) -> ContainerSample:
    return ContainerSample(name=name, start_time=start, usage=u, **extra)


def node_stats() -> NodeStats:
    """Three pods: web (two containers and its own usage), an odd-named pod, and coredns
    without pod-level usage."""
    web = PodSample(
        namespace="shop",
        name="web-0",
        uid="0d4b9c3e-5f6a-4b7c-8d9e-0a1b2c3d4e5f",
        start_time=1_699_999_000.0,
        containers=(
            container(
                "web",
                1_699_999_010.0,
                usage(T_WEB, 357_354_910_000, 12_533_760, usage_bytes=16_777_216, rss_bytes=8_192),
                cpu_usage_nanocores=4_710_169,
                requests=Resources(cpu_millicores=250),
                limits=Resources(cpu_millicores=500, memory_bytes=268_435_456),
            ),
            container("mesh", 1_699_999_005.5, usage(T_MESH, 10_000_000_000, 1_000)),
        ),
        usage=usage(T_POD, 367_354_910_000, 12_534_760, usage_bytes=20_000_000),
        cpu_usage_nanocores=5_000_000,
        process_count=7,
    )
    odd = PodSample(
        namespace=ODD_NAMESPACE,
        name=ODD_POD,
        uid="11111111-2222-4333-8444-555555555555",
        start_time=1_699_999_100.0,
        containers=(container(ODD_CONTAINER, 1_699_999_100.0, usage(T_ODD, 1, 4_096)),),
        usage=usage(T_ODD, 1, 4_096),
    )
    dns = PodSample(
        namespace="kube-system",
        name="coredns-5d78c9869d-abcde",
        uid="99999999-8888-4777-8666-555555555555",
        start_time=1_699_998_000.0,
        containers=(container("coredns", 1_699_998_001.0, usage(T_DNS, 0, 1_616_273_408)),),
    )
    node = NodeSample(
        name="node-a",
        start_time=1_699_990_000.0,
        usage=usage(
            T_NODE,
            987_654_321_000_000,
            1_616_273_408,
            usage_bytes=2_147_483_648,
            rss_bytes=1_073_741_824,
            page_faults=99_000,
            major_page_faults=12,
        ),
        cpu_usage_nanocores=1_234_567_890,
        capacity=Resources(cpu_millicores=4000, memory_bytes=8_234_672_128),
        allocatable=Resources(cpu_millicores=4000, memory_bytes=8_129_814_528),
        max_pid=4_194_304,
        process_count=321,
    )
    return NodeStats(node=node, pods=(web, odd, dns))


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


CONTAINER_LABELS = {"container", "namespace", "pod"}
POD_LABELS = {"namespace", "pod"}
LABEL_NAMES = {
    "container_cpu_usage_seconds_total": CONTAINER_LABELS,
    "container_memory_working_set_bytes": CONTAINER_LABELS,
    "container_start_time_seconds": CONTAINER_LABELS,
    "node_cpu_usage_seconds_total": set(),
    "node_memory_working_set_bytes": set(),
    "pod_cpu_usage_seconds_total": POD_LABELS,
    "pod_memory_working_set_bytes": POD_LABELS,
    "resource_scrape_error": set(),
}


def test_resource_metrics_has_exactly_the_kubelet_families_and_types() -> None:
    text = resource_metrics.render(node_stats())
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families == {
        "container_cpu_usage_seconds": "counter",  # the parser drops _total from counters
        "container_memory_working_set_bytes": "gauge",
        "container_start_time_seconds": "gauge",
        "node_cpu_usage_seconds": "counter",
        "node_memory_working_set_bytes": "gauge",
        "pod_cpu_usage_seconds": "counter",
        "pod_memory_working_set_bytes": "gauge",
        "resource_scrape_error": "gauge",
    }
    assert {s.name for s in samples(text)} == set(LABEL_NAMES)
    assert text.endswith("\n")


# The Help strings and stability levels of the kubelet's resource metrics collector
# (pkg/kubelet/metrics/collectors/resource_metrics.go, all metrics.STABLE there), which
# component-base writes as "[STABLE] <help>" (resource_metrics_test.go).
KUBELET_HELP = [
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
    ),
    ("container_memory_working_set_bytes", "Current working set of the container in bytes"),
    ("container_start_time_seconds", "Start time of the container since unix epoch in seconds"),
    ("node_cpu_usage_seconds_total", "Cumulative cpu time consumed by the node in core-seconds"),
    ("node_memory_working_set_bytes", "Current working set of the node in bytes"),
    ("pod_cpu_usage_seconds_total", "Cumulative cpu time consumed by the pod in core-seconds"),
    ("pod_memory_working_set_bytes", "Current working set of the pod in bytes"),
    (
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
    ),
]


@pytest.mark.parametrize(("name", "help_text"), KUBELET_HELP, ids=[n for n, _ in KUBELET_HELP])
def test_resource_metrics_help_line_is_the_kubelets(name: str, help_text: str) -> None:
    lines = resource_metrics.render(node_stats()).splitlines()
    helps = [line for line in lines if line.startswith(f"# HELP {name} ")]
    assert helps == [f"# HELP {name} [STABLE] {help_text}"]
    assert lines[lines.index(helps[0]) + 1].startswith(f"# TYPE {name} ")


def test_resource_metrics_has_a_help_line_for_each_family_and_no_other() -> None:
    lines = resource_metrics.render(node_stats()).splitlines()
    helped = [line.split()[2] for line in lines if line.startswith("# HELP ")]
    assert helped == [name for name, _ in KUBELET_HELP]  # in name order, as the registry


def test_resource_metrics_label_names_per_family() -> None:
    for sample in samples(resource_metrics.render(node_stats())):
        assert set(sample.labels) == LABEL_NAMES[sample.name], sample


def by_series(text: str, name: str) -> dict[tuple[str, ...], Sample]:
    return {
        tuple(s.labels[k] for k in ("container", "namespace", "pod") if k in s.labels): s
        for s in samples(text)
        if s.name == name
    }


def cpu_seconds(c: ContainerSample) -> float:
    return c.usage.cpu_usage_core_nanoseconds / 1e9


def working_set(c: ContainerSample) -> float:
    return c.usage.working_set_bytes


def test_resource_metrics_values_and_millisecond_timestamps() -> None:
    stats = node_stats()
    text = resource_metrics.render(stats)
    value_of: Callable[[ContainerSample], float]
    for name, value_of in (
        ("container_cpu_usage_seconds_total", cpu_seconds),
        ("container_memory_working_set_bytes", working_set),
    ):
        series = by_series(text, name)
        expected = {(c.name, p.namespace, p.name): c for p in stats.pods for c in p.containers}
        assert set(series) == set(expected)
        for key, c in expected.items():
            assert series[key].value == value_of(c)
            assert series[key].timestamp == MS[c.usage.timestamp] / 1000

    starts = by_series(text, "container_start_time_seconds")
    assert starts[("mesh", "shop", "web-0")].value == 1_699_999_005.5
    assert all(s.timestamp is None for s in starts.values())

    pod_cpu = by_series(text, "pod_cpu_usage_seconds_total")
    pod_memory = by_series(text, "pod_memory_working_set_bytes")
    assert set(pod_cpu) == set(pod_memory) == {("shop", "web-0"), (ODD_NAMESPACE, ODD_POD)}
    assert pod_cpu[("shop", "web-0")].value == 367.35491
    assert pod_memory[("shop", "web-0")].value == 12_534_760
    assert pod_cpu[("shop", "web-0")].timestamp == MS[T_POD] / 1000

    (node_cpu,) = by_series(text, "node_cpu_usage_seconds_total").values()
    (node_memory,) = by_series(text, "node_memory_working_set_bytes").values()
    assert (node_cpu.value, node_memory.value) == (987_654.321, 1_616_273_408)
    assert node_cpu.timestamp == node_memory.timestamp == MS[T_NODE] / 1000


def test_resource_metrics_text_writes_integer_milliseconds_and_go_numbers() -> None:
    lines = resource_metrics.render(node_stats()).splitlines()
    assert "node_memory_working_set_bytes 1.616273408e+09 1700000000123" in lines
    assert "node_cpu_usage_seconds_total 987654.321 1700000000123" in lines
    assert (
        'container_memory_working_set_bytes{container="web",namespace="shop",pod="web-0"} '
        "1.253376e+07 1700000000456"
    ) in lines
    assert (
        'container_cpu_usage_seconds_total{container="web",namespace="shop",pod="web-0"} '
        "357.35491 1700000000456"
    ) in lines
    assert (
        'container_start_time_seconds{container="web",namespace="shop",pod="web-0"} 1.69999901e+09'
    ) in lines


def test_resource_metrics_escapes_and_round_trips_odd_label_values() -> None:
    text = resource_metrics.render(node_stats())
    assert 'container="new\\nline",namespace="we\\"ird",pod="back\\\\slash"' in text, (
        "label values must be escaped as the text format requires"
    )
    odd = [s for s in samples(text) if s.labels.get("namespace") == ODD_NAMESPACE]
    assert {s.name for s in odd} == {
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_start_time_seconds",
        "pod_cpu_usage_seconds_total",
        "pod_memory_working_set_bytes",
    }
    for s in odd:
        assert s.labels["pod"] == ODD_POD
        assert s.labels.get("container", ODD_CONTAINER) == ODD_CONTAINER


@pytest.mark.parametrize(
    ("name", "labels", "count"),
    [
        pytest.param(
            "container_memory_working_set_bytes",
            ("container", "namespace", "pod"),
            4,
            id="containers-by-container-namespace-pod",
        ),
        pytest.param(
            "pod_cpu_usage_seconds_total", ("namespace", "pod"), 2, id="pods-by-namespace-pod"
        ),
    ],
)
def test_resource_metrics_series_are_sorted_by_label_values(
    name: str, labels: tuple[str, ...], count: int
) -> None:
    stats = node_stats()
    text = resource_metrics.render(stats._replace(pods=stats.pods[::-1]))
    keys = [tuple(s.labels[k] for k in labels) for s in samples(text) if s.name == name]
    assert keys == sorted(keys)
    assert len(keys) == count


@pytest.mark.parametrize(
    ("scrape_error", "value"),
    [pytest.param(False, 0.0, id="ok"), pytest.param(True, 1.0, id="error")],
)
def test_resource_scrape_error_value(scrape_error: bool, value: float) -> None:
    text = resource_metrics.render(node_stats(), scrape_error=scrape_error)
    (error,) = [s for s in samples(text) if s.name == "resource_scrape_error"]
    assert (error.value, error.timestamp) == (value, None)


def test_resource_metrics_without_pods_has_only_node_and_error_families() -> None:
    stats = node_stats()._replace(pods=())
    names = {s.name for s in samples(resource_metrics.render(stats))}
    assert names == {
        "node_cpu_usage_seconds_total",
        "node_memory_working_set_bytes",
        "resource_scrape_error",
    }


# -- /stats/summary ----------------------------------------------------------------------

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def is_int(value: object) -> bool:
    return type(value) is int


def parsed_summary(stats: NodeStats, only_cpu_and_memory: bool = False) -> dict[str, Any]:
    doc = json.loads(summary.render(stats, only_cpu_and_memory))
    assert isinstance(doc, dict)
    return doc


# A real kubelet's Summary (kind v1.17, from metrics-server's summary decoding tests),
# trimmed: what the agent writes must have its field names and JSON types.
KUBELET_SUMMARY = {
    "node": {
        "nodeName": "e2e-v1.17.0-control-plane",
        "startTime": "2020-03-31T18:00:54Z",
        "cpu": {
            "time": "2020-04-16T20:25:28Z",
            "usageNanoCores": 476553087,
            "usageCoreNanoSeconds": 519978197128,
        },
        "memory": {
            "time": "2020-04-16T20:25:28Z",
            "availableBytes": 15211810816,
            "usageBytes": 1719095296,
            "workingSetBytes": 1417551872,
            "rssBytes": 848789504,
            "pageFaults": 73326,
            "majorPageFaults": 726,
        },
        "rlimit": {"time": "2020-04-16T20:25:28Z", "maxpid": 4194304, "curproc": 1234},
    },
    "pods": [
        {
            "podRef": {
                "name": "all-fields",
                "namespace": "default",
                "uid": "96636a87-47f5-4970-a15e-6e7901925c90",
            },
            "startTime": "2020-04-16T20:11:06Z",
            "containers": [
                {
                    "name": "container",
                    "startTime": "2020-04-16T20:17:46Z",
                    "cpu": {
                        "time": "2020-04-16T20:25:30Z",
                        "usageNanoCores": 29713960,
                        "usageCoreNanoSeconds": 29328792,
                    },
                    "memory": {"time": "2020-04-16T20:25:30Z", "workingSetBytes": 1449984},
                }
            ],
            "cpu": {
                "time": "2020-04-16T20:25:24Z",
                "usageNanoCores": 123,
                "usageCoreNanoSeconds": 54096725,
            },
            "memory": {
                "time": "2020-04-16T20:25:24Z",
                "usageBytes": 2641920,
                "workingSetBytes": 2641920,
                "rssBytes": 0,
            },
            "process_stats": {"process_count": 3},
        }
    ],
}


def shape(doc: Any, path: str = "") -> dict[str, str]:
    """Every leaf's path (list items merged) and its JSON type."""
    if isinstance(doc, dict):
        return {
            k: v for key, value in doc.items() for k, v in shape(value, f"{path}.{key}").items()
        }
    if isinstance(doc, list):
        return {k: v for item in doc for k, v in shape(item, f"{path}[]").items()}
    return {path: type(doc).__name__}


def test_summary_has_the_field_names_and_types_of_a_real_kubelets() -> None:
    ours = shape(parsed_summary(node_stats()))
    kubelet = shape(KUBELET_SUMMARY)
    # Every memory object is one MemoryStats (stats/v1alpha1 types.go): a pod's and a
    # container's may carry each field the node's carries.
    memory = {
        p.removeprefix(".node.memory."): t for p, t in kubelet.items() if ".node.memory." in p
    }
    for owner in (".pods[]", ".pods[].containers[]"):
        kubelet |= {f"{owner}.memory.{field}": t for field, t in memory.items()}
    assert set(ours) <= set(kubelet), sorted(set(ours) - set(kubelet))
    assert {path: ours[path] for path in ours} == {path: kubelet[path] for path in ours}
    # And what metrics-server's summary decoder reads is there for every level.
    for owner in (".node", ".pods[]", ".pods[].containers[]"):
        for field in (
            "cpu.time",
            "cpu.usageCoreNanoSeconds",
            "memory.time",
            "memory.workingSetBytes",
        ):
            assert f"{owner}.{field}" in ours


def test_summary_node_fields_names_and_types() -> None:
    node = parsed_summary(node_stats())["node"]
    assert node["nodeName"] == "node-a"
    assert node["startTime"] == "2023-11-14T19:26:40Z"
    assert node["cpu"] == {
        "time": "2023-11-14T22:13:20Z",
        "usageNanoCores": 1_234_567_890,
        "usageCoreNanoSeconds": 987_654_321_000_000,
    }
    assert node["memory"] == {
        "time": "2023-11-14T22:13:20Z",
        "availableBytes": 8_234_672_128 - 1_616_273_408,
        "usageBytes": 2_147_483_648,
        "workingSetBytes": 1_616_273_408,
        "rssBytes": 1_073_741_824,
        "pageFaults": 99_000,
        "majorPageFaults": 12,
    }
    assert node["rlimit"] == {"time": "2023-11-14T22:13:20Z", "maxpid": 4_194_304, "curproc": 321}
    numbers = [*node["cpu"].values(), *node["memory"].values(), *node["rlimit"].values()]
    assert all(is_int(v) for v in numbers if not isinstance(v, str))


def test_summary_pod_and_container_fields() -> None:
    pods = parsed_summary(node_stats())["pods"]
    assert [p["podRef"] for p in pods] == [
        {"name": "web-0", "namespace": "shop", "uid": "0d4b9c3e-5f6a-4b7c-8d9e-0a1b2c3d4e5f"},
        {
            "name": ODD_POD,
            "namespace": ODD_NAMESPACE,
            "uid": "11111111-2222-4333-8444-555555555555",
        },
        {
            "name": "coredns-5d78c9869d-abcde",
            "namespace": "kube-system",
            "uid": "99999999-8888-4777-8666-555555555555",
        },
    ]
    web = pods[0]
    assert set(web) == {"podRef", "startTime", "containers", "cpu", "memory", "process_stats"}
    assert web["process_stats"] == {"process_count": 7}
    assert web["cpu"]["usageNanoCores"] == 5_000_000
    assert "availableBytes" not in web["memory"]  # a pod has no limit of its own here
    for pod in pods:
        assert RFC3339.match(pod["startTime"])
        for c in pod["containers"]:
            assert set(c) == {"name", "startTime", "cpu", "memory"}
            assert isinstance(c["name"], str)
            assert RFC3339.match(c["startTime"])
            assert is_int(c["cpu"]["usageCoreNanoSeconds"])
            assert is_int(c["memory"]["workingSetBytes"])
    web_container = web["containers"][0]
    assert web_container == {
        "name": "web",
        "startTime": "2023-11-14T21:56:50Z",
        "cpu": {
            "time": "2023-11-14T22:13:20Z",
            "usageNanoCores": 4_710_169,
            "usageCoreNanoSeconds": 357_354_910_000,
        },
        "memory": {
            "time": "2023-11-14T22:13:20Z",
            "availableBytes": 268_435_456 - 12_533_760,
            "usageBytes": 16_777_216,
            "workingSetBytes": 12_533_760,
            "rssBytes": 8_192,
        },
    }


def test_summary_leaves_out_what_is_not_known() -> None:
    pods = parsed_summary(node_stats())["pods"]
    mesh = pods[0]["containers"][1]
    assert mesh["name"] == "mesh"
    assert mesh["cpu"] == {"time": "2023-11-14T22:13:20Z", "usageCoreNanoSeconds": 10_000_000_000}
    assert mesh["memory"] == {"time": "2023-11-14T22:13:20Z", "workingSetBytes": 1_000}
    odd = pods[1]
    assert "process_stats" not in odd
    assert "usageNanoCores" not in odd["cpu"]
    dns = pods[2]
    assert set(dns) == {"podRef", "startTime", "containers"}  # no pod-level usage


@pytest.mark.parametrize(
    ("change", "absent"),
    [
        pytest.param({"max_pid": None}, "rlimit", id="no-max-pid-no-rlimit"),
        pytest.param(
            {"capacity": Resources()}, "memory.availableBytes", id="no-capacity-no-available"
        ),
        pytest.param({"cpu_usage_nanocores": None}, "cpu.usageNanoCores", id="no-rate-yet"),
        pytest.param({"usage": usage(T_NODE, 1, 2)}, "memory.usageBytes", id="no-usage-bytes"),
        pytest.param({"usage": usage(T_NODE, 1, 2)}, "memory.rssBytes", id="no-rss"),
        pytest.param({"usage": usage(T_NODE, 1, 2)}, "memory.pageFaults", id="no-page-faults"),
        pytest.param(
            {"usage": usage(T_NODE, 1, 2)}, "memory.majorPageFaults", id="no-major-page-faults"
        ),
    ],
)
def test_summary_node_omits_unknown_fields(change: dict[str, Any], absent: str) -> None:
    stats = node_stats()
    stats = stats._replace(node=stats.node._replace(**change))
    node = parsed_summary(stats)["node"]
    *path, key = absent.split(".")
    where = node
    for part in path:
        where = where[part]
    assert key not in where
    assert set(node) >= {"nodeName", "startTime", "cpu", "memory"}


def test_summary_rlimit_counts_zero_processes_when_unknown() -> None:
    stats = node_stats()
    stats = stats._replace(node=stats.node._replace(process_count=None))
    assert parsed_summary(stats)["node"]["rlimit"]["curproc"] == 0


@pytest.mark.parametrize(
    ("only_cpu_and_memory", "node_keys", "web_keys"),
    [
        pytest.param(
            False,
            {"nodeName", "startTime", "cpu", "memory", "rlimit"},
            {"podRef", "startTime", "containers", "cpu", "memory", "process_stats"},
            id="full",
        ),
        pytest.param(
            True,
            {"nodeName", "startTime", "cpu", "memory"},
            {"podRef", "startTime", "containers", "cpu", "memory"},
            id="only-cpu-and-memory",
        ),
    ],
)
def test_summary_only_cpu_and_memory_drops_rlimit_and_process_stats(
    only_cpu_and_memory: bool, node_keys: set[str], web_keys: set[str]
) -> None:
    doc = parsed_summary(node_stats(), only_cpu_and_memory)
    assert set(doc) == {"node", "pods"}
    assert set(doc["node"]) == node_keys
    assert set(doc["pods"][0]) == web_keys
    assert doc["pods"][0]["containers"][0]["cpu"]["usageCoreNanoSeconds"] == 357_354_910_000


def test_summary_render_is_compact_json() -> None:
    text = summary.render(node_stats())
    assert text == json.dumps(json.loads(text), separators=(",", ":"))
    assert json.loads(text) == summary.summary(node_stats())
