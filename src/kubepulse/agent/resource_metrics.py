"""Render NodeStats as the kubelet's /metrics/resource endpoint does.

Names, HELP texts, types, labels and millisecond timestamps follow the kubelet's
resource metrics collector (pkg/kubelet/metrics/collectors/resource_metrics.go). The
registry gathers families in name order and series in label order, and expfmt writes
numbers with Go's strconv 'g' format, shortest form.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    text = str(abs(number))
    if len(text) <= 6:
        return str(number)
    digits = text.rstrip("0")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if number < 0 else ''}{mantissa}e+{len(text) - 1:02d}"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ms(usage: Usage) -> str:
    return f" {round(usage.timestamp * 1000)}"


def _cpu(usage: Usage) -> str:
    return go_float(usage.cpu_usage_core_nanoseconds / 1e9) + _ms(usage)


def _memory(usage: Usage) -> str:
    return go_float(usage.working_set_bytes) + _ms(usage)


def render(stats: NodeStats, scrape_error: bool = False) -> str:
    lines: list[str] = []

    def family(name: str, series: Iterable[tuple[str, str]]) -> None:
        rows = [f"{name}{labels} {value}" for labels, value in series]
        if rows:
            kind, help_text = _FAMILIES[name]
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *rows))

    # Series sort by label values in label-name order: container, namespace, pod.
    containers = sorted(
        (
            (
                (c.name, p.namespace, p.name),
                f'{{container="{escape_label(c.name)}",namespace="{escape_label(p.namespace)}",'
                f'pod="{escape_label(p.name)}"}}',
                c,
            )
            for p in stats.pods
            for c in p.containers
        ),
        key=lambda row: row[0],
    )
    family("container_cpu_usage_seconds_total", ((lbl, _cpu(c.usage)) for _, lbl, c in containers))
    family(
        "container_memory_working_set_bytes", ((lbl, _memory(c.usage)) for _, lbl, c in containers)
    )
    # The kubelet sends the start time without a timestamp: it is not a sample of "now".
    family(
        "container_start_time_seconds", ((lbl, go_float(c.start_time)) for _, lbl, c in containers)
    )
    family("node_cpu_usage_seconds_total", [("", _cpu(stats.node.usage))])
    family("node_memory_working_set_bytes", [("", _memory(stats.node.usage))])
    pods = sorted(
        (
            (
                (p.namespace, p.name),
                f'{{namespace="{escape_label(p.namespace)}",pod="{escape_label(p.name)}"}}',
                p.usage,
            )
            for p in stats.pods
            if p.usage is not None
        ),
        key=lambda row: row[0],
    )
    family("pod_cpu_usage_seconds_total", ((lbl, _cpu(u)) for _, lbl, u in pods))
    family("pod_memory_working_set_bytes", ((lbl, _memory(u)) for _, lbl, u in pods))
    family("resource_scrape_error", [("", "1" if scrape_error else "0")])
    lines.append("")
    return "\n".join(lines)
