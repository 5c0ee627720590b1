"""Render NodeStats as the kubelet's /metrics/resource endpoint does.

Names, HELP texts, types, labels and millisecond timestamps follow the kubelet's
resource metrics collector (pkg/kubelet/metrics/collectors/resource_metrics.go). The
registry gathers families in name order and series in label order, and expfmt writes
numbers with Go's strconv 'g' format, shortest form.
"""

from __future__ import annotations

import functools
from operator import itemgetter

from kubepulse.model import NodeStats, Usage

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FAMILIES = {
    "container_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    ),
    "container_memory_working_set_bytes": (
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    ),
    "container_start_time_seconds": (
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    ),
    "node_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    ),
    "node_memory_working_set_bytes": ("gauge", "[STABLE] Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    ),
    "pod_memory_working_set_bytes": ("gauge", "[STABLE] Current working set of the pod in bytes"),
    "resource_scrape_error": (
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    ),
}


def go_float(value: float) -> str:
    """Format like Go's strconv.FormatFloat(v, 'g', -1, 64), which expfmt uses.

    Go writes the shortest digits that round-trip, with an exponent when the decimal
    exponent is below -4 or at least 21, or, for shortest output, at least 6 digits'
    worth of integer part ("1.616273408e+09", "357.35491", "1e-05").
    """
    if value.__class__ is float and 1e-4 <= value < 1e6 and not value.is_integer():
        # The common case (CPU seconds): Go's %f range, where both languages write the
        # shortest round-tripping digits the same way.
        return repr(value)
    if (isinstance(value, int) or value.is_integer()) and -1e15 < value < 1e15:
        if value == 0 and str(value).startswith("-"):
            return "-0"
        return _go_integer(int(value))
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    if "e" in text:
        return text  # Python and Go agree once both use an exponent (|x| < 1e-4 or >= 1e16)
    whole = text.lstrip("-").partition(".")[0]
    if len(whole) <= 6 or whole == "0":
        return text
    # Go switches to an exponent from 1e6 on: d.ddde+XX with the shortest digits.
    digits = text.lstrip("-").replace(".", "").rstrip("0")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if text[0] == '-' else ''}{mantissa}e+{len(whole) - 1:02d}"


def _go_integer(number: int) -> str:
    if number < 0:
        return "-" + _go_integer(-number)
    text = str(number)
    if len(text) <= 6:
        return text
    digits = text.rstrip("0")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e+{len(text) - 1:02d}"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# Label sets outlive readings (a container keeps its names for its life), so each is
# escaped and formatted once; the bound keeps a node with churning pods from growing it.
@functools.lru_cache(maxsize=4096)
def container_labels(container: str, namespace: str, pod: str) -> str:
    return (
        f'{{container="{escape_label(container)}",namespace="{escape_label(namespace)}",'
        f'pod="{escape_label(pod)}"}}'
    )


@functools.lru_cache(maxsize=4096)
def _pod_labels(namespace: str, pod: str) -> str:
    return f'{{namespace="{escape_label(namespace)}",pod="{escape_label(pod)}"}}'


def _series(usage: Usage) -> tuple[str, str]:
    """The CPU and the memory sample of one reading, each with its timestamp."""
    ms = f" {round(usage.timestamp * 1000)}"
    return (
        go_float(usage.cpu_usage_core_nanoseconds / 1e9) + ms,
        _go_integer(usage.working_set_bytes) + ms,
    )


_BY_LABELS = itemgetter(0, 1, 2)  # never the sample: two of one name would not compare
# A container's start time is fixed for its life: formatted once, not per reading.
_start_time = functools.lru_cache(maxsize=4096)(go_float)


def render(stats: NodeStats, scrape_error: bool = False) -> str:
    lines: list[str] = []

    def family(name: str, series: list[str]) -> None:
        """One family: its HELP and TYPE, then a line per series (labels and sample)."""
        if series:
            kind, help_text = _FAMILIES[name]
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
            lines.extend([name + s for s in series])

    # Series sort by label values in label-name order: container, namespace, pod.
    containers = sorted(
        ((c.name, p.namespace, p.name, c) for p in stats.pods for c in p.containers),
        key=_BY_LABELS,
    )
    # One row per series: its labels, its CPU and memory samples, its start time.
    rows = [
        (container_labels(name, ns, pod), *_series(c.usage), _start_time(c.start_time))
        for name, ns, pod, c in containers
    ]
    family("container_cpu_usage_seconds_total", [f"{r[0]} {r[1]}" for r in rows])
    family("container_memory_working_set_bytes", [f"{r[0]} {r[2]}" for r in rows])
    # The kubelet sends the start time without a timestamp: it is not a sample of "now".
    family("container_start_time_seconds", [f"{r[0]} {r[3]}" for r in rows])
    node_cpu, node_memory = _series(stats.node.usage)
    family("node_cpu_usage_seconds_total", [f" {node_cpu}"])
    family("node_memory_working_set_bytes", [f" {node_memory}"])
    pods = sorted(
        ((p.namespace, p.name, p.usage) for p in stats.pods if p.usage is not None), key=_BY_LABELS
    )
    pod_rows = [(_pod_labels(ns, name), *_series(usage)) for ns, name, usage in pods]
    family("pod_cpu_usage_seconds_total", [f"{r[0]} {r[1]}" for r in pod_rows])
    family("pod_memory_working_set_bytes", [f"{r[0]} {r[2]}" for r in pod_rows])
    family("resource_scrape_error", [" 1" if scrape_error else " 0"])
    lines.append("")
    return "\n".join(lines)
