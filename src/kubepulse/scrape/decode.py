"""Decode a kubelet's answer into the shared model, as metrics-server does.

Two payloads are understood:

* `/metrics/resource`, the Prometheus text the kubelet's resource metrics collector
  writes (kubernetes pkg/kubelet/metrics/collectors/resource_metrics.go). Decoding
  mirrors metrics-server's pkg/scraper/client/resource/decode.go: only five series
  names matter, everything else is skipped, and incomplete nodes and pods are dropped.
* `/stats/summary?only_cpu_and_memory=true`, the Summary API JSON
  (k8s.io/kubelet/pkg/apis/stats/v1alpha1), which metrics-server up to v0.5 used and
  which we fall back to for kubelets that have no `/metrics/resource`.

The text decoder is hand-written over bytes because it runs once per node per
resolution: 5,000 nodes every 15 s is ~330 payloads a second, each ~250 lines. The
lines we read are taken apart with find/rpartition/split; regular expressions only
check the lines we skip, and label sets not in the kubelet's own shape.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from kubepulse.model import ContainerSample, NodeSample, PodSample, Resources, Usage
from kubepulse.scrape.bounds import MAX_BYTES, MAX_CPU_SECONDS, why_not
from kubepulse.timefmt import parse_rfc3339

__all__ = ["DecodeError", "container_key", "decode_resource_metrics", "decode_summary"]


class DecodeError(ValueError):
    """The body is not the payload we asked for; the message says why, briefly."""


NODE_CPU = b"node_cpu_usage_seconds_total"
NODE_MEMORY = b"node_memory_working_set_bytes"
CONTAINER_CPU = b"container_cpu_usage_seconds_total"
CONTAINER_MEMORY = b"container_memory_working_set_bytes"
CONTAINER_START = b"container_start_time_seconds"

# The five series metrics-server reads (decode.go), by name, and what each one sets.
_CONTAINER_CPU, _CONTAINER_MEMORY, _CONTAINER_START, _NODE_CPU, _NODE_MEMORY = range(5)
_KINDS = {
    CONTAINER_CPU: _CONTAINER_CPU,
    CONTAINER_MEMORY: _CONTAINER_MEMORY,
    CONTAINER_START: _CONTAINER_START,
    NODE_CPU: _NODE_CPU,
    NODE_MEMORY: _NODE_MEMORY,
}
# A container's accumulator: [cpu ns, cpu sample time, working set bytes, start time].
_CPU, _TIME, _MEMORY, _START = range(4)

_HASH = ord("#")
_INF = math.inf
_NO_RESOURCES = Resources()  # frozen, so one instance serves every container

# The kubelet writes container labels in name order, always these three
# (resource_metrics.go); split on quotes, that is exactly these seven parts.
_KUBELET_LABEL_PARTS = (b"{container=", b",namespace=", b",pod=", b"")

# Any label set of the text format 0.0.4 (a trailing comma is allowed), and its pairs.
_LABEL_PAIR = rb'[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:[^"\\\n]|\\.)*"'
_LABEL_SET = re.compile(
    rb"\{[ \t]*(?:" + _LABEL_PAIR + rb"[ \t]*,[ \t]*)*(?:" + _LABEL_PAIR + rb"[ \t]*,?[ \t]*)?\}"
)
_LABEL_PAIRS = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"')
# Label value escapes: \\, \" and \n; any other backslash stays as it is (Prometheus'
# lvalReplacer and prometheus_client's parser agree on this).
_LABEL_ESCAPE = re.compile(rb'\\[\\"n]')
_UNESCAPED = {b"\\\\": b"\\", b'\\"': b'"', b"\\n": b"\n"}

# A whole sample line, for the lines we do not use: they are only checked, so that an
# HTML error page or a JSON body is refused rather than read as "no metrics". The value
# is what Go's strconv.ParseFloat takes in the forms exposition uses; the optional
# timestamp is digits only, as in Prometheus' lexer.
_FLOAT = rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf(?:inity)?|nan))"
_SAMPLE_LINE = re.compile(
    rb"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?[ \t]+" + _FLOAT + rb"(?:[ \t]+[0-9]+)?[ \t]*"
)


# The fast path. A kubelet writes each family as "# HELP", "# TYPE" and then its lines,
# every line in one shape: labels in name order (container, namespace, pod), values
# without escapes. For such a body the text is cut at the "# TYPE" lines and each
# family is taken apart and checked as a whole by a few passes in C (split on quotes,
# then on whitespace); Python touches each container once. Anything else (other label
# orders, escapes, unknown families, stray lines) goes to the general path.
_CONTAINER_LABELS = ("container", "namespace", "pod")
_POD_LABELS = ("namespace", "pod")
# Every family a kubelet writes on /metrics/resource (resource_metrics.go), by the
# labels its lines carry; () is a family of one line without labels.
_KUBELET_FAMILIES = {
    "container_cpu_usage_seconds_total": _CONTAINER_LABELS,
    "container_memory_working_set_bytes": _CONTAINER_LABELS,
    "container_start_time_seconds": _CONTAINER_LABELS,
    "container_swap_usage_bytes": _CONTAINER_LABELS,
    "node_cpu_usage_seconds_total": (),
    "node_memory_working_set_bytes": (),
    "node_swap_usage_bytes": (),
    "pod_cpu_usage_seconds_total": _POD_LABELS,
    "pod_memory_working_set_bytes": _POD_LABELS,
    "pod_swap_usage_bytes": _POD_LABELS,
    "resource_scrape_error": (),
    "scrape_error": (),
}
# A family's label value columns, values and timestamps ([] when there are none).
_Family = tuple[list[list[str]], list[str], list[str]]


def _family(lines: str, name: str, labels: tuple[str, ...]) -> _Family | None:
    """The lines of one family, None unless every one is in the kubelet's shape."""
    head = f"{name}{{{labels[0]}=" if labels else name
    parts = lines.split('"')
    stride = 2 * len(labels)
    if stride:
        count, odd = divmod(len(parts) - 1, stride)
        if odd or parts[0] != head:
            return None
        for i in range(1, len(labels)):
            if set(parts[2 * i :: stride]) != {f",{labels[i]}="}:
                return None
        fields = " ".join(parts[stride::stride]).split()
        first = "}"
    else:
        count, fields, first = 1, lines.split(), name
        if len(parts) != 1:
            return None
    # Per line: "}" (or the name), value, timestamp, then the next line's head.
    width = 4 if len(fields) == 4 * count - 1 else 3
    if not count or len(fields) != width * count - 1 or set(fields[0::width]) != {first}:
        return None
    if count > 1 and set(fields[width - 1 :: width]) != {head}:
        return None
    values = fields[1::width]
    stamps = fields[2::width] if width == 4 else []
    if "_" in "".join(values) or (stamps and not "".join(stamps).isdigit()):
        return None  # float() and int() take "1_0"; Prometheus text does not
    return [parts[2 * i + 1 :: stride] for i in range(len(labels))], values, stamps


def _families(text: str) -> dict[str, _Family] | None:
    """Every family of a body in the kubelet's exact shape, by name; else None."""
    sections = text.split("# TYPE ")
    if sections[0] not in ("", "\n") and not sections[0].startswith("# HELP "):
        return None
    if sections[0].count("\n") > 1:
        return None
    found: dict[str, _Family] = {}
    for section in sections[1:]:
        name, _, rest = section.partition(" ")
        labels = _KUBELET_FAMILIES.get(name)
        if labels is None or name in found:
            return None
        # "counter\n<lines>\n# HELP next ...\n", or the last: "gauge\n<lines>\n".
        begin = rest.find("\n") + 1
        end = rest.find("\n#", begin)
        if end < 0:
            end = len(rest.rstrip("\n"))
        elif rest.count("\n", end + 1) != 1 or not rest.startswith("# HELP ", end + 1):
            return None
        family = _family(rest[begin:end], name, labels) if end > begin else None
        if family is None:
            return None
        found[name] = family
    return found


def _fast(
    body: bytes, node_name: str, default_time: float, rejected: list[str]
) -> tuple[NodeSample | None, tuple[PodSample, ...]] | None:
    """Decode a body in the kubelet's exact shape, or None to take the general path."""
    if b"\r" in body or b"\\" in body or b"\t" in body or b"  " in body:
        return None
    families = _families(body.decode())
    if families is None:
        return None
    try:
        cpu = families["container_cpu_usage_seconds_total"]
        memory = families["container_memory_working_set_bytes"]
        start = families["container_start_time_seconds"]
        node_cpu = families["node_cpu_usage_seconds_total"]
        node_memory = families["node_memory_working_set_bytes"]
    except KeyError:
        return None
    # The three families must list the same containers in the same order (the kubelet
    # sorts each by its labels), each container once.
    labels = cpu[0]
    if not (labels == memory[0] == start[0]) or len(set(zip(*labels, strict=True))) != len(
        labels[0]
    ):
        return None
    max_cpu, max_memory = MAX_CPU_SECONDS, MAX_BYTES
    value = float(node_cpu[1][0])
    node_cpu_ns = round(value * 1e9) if 0 < value < max_cpu else 0
    if not node_cpu_ns:
        _note(rejected, "node_cpu_usage_seconds_total", value, max_cpu, "seconds")
    node_time = int(node_cpu[2][0]) / 1000 if node_cpu[2] else default_time
    value = float(node_memory[1][0])
    node_memory_bytes = round(value) if 0 < value < max_memory else 0
    if not node_memory_bytes:
        _note(rejected, "node_memory_working_set_bytes", value, max_memory, "bytes")
    names, namespaces, pods = labels
    if names != sorted(names):
        return None  # not in the kubelet's order, so pods would list containers unsorted
    cpu_values = list(map(float, cpu[1]))
    memory_values = list(map(float, memory[1]))
    start_values = list(map(float, start[1]))
    cpu_stamps = [int(s) / 1000 for s in cpu[2]] if cpu[2] else [default_time] * len(names)
    # _complete_pods' rules, in one pass over the kubelet's order (by container name,
    # so each pod's containers arrive sorted): a pod with an incomplete container goes.
    by_pod: dict[tuple[str, str], list[ContainerSample] | None] = {}
    # tuple.__new__ with every field: the named tuples' own __new__ is Python code, and
    # this runs for every container of every node each resolution.
    new, isfinite, no_resources = tuple.__new__, math.isfinite, _NO_RESOURCES
    for i, key in enumerate(zip(namespaces, pods, strict=True)):
        samples = by_pod.get(key, ())
        if samples is None:
            continue
        c, m = cpu_values[i], memory_values[i]
        cpu_ns = round(c * 1e9) if 0 < c < max_cpu else 0
        memory_bytes = round(m) if 0 < m < max_memory else 0
        if not cpu_ns or not memory_bytes:
            by_pod[key] = None
            where = f'{{container="{names[i]}",namespace="{key[0]}",pod="{key[1]}"}}'
            _note(rejected, f"container_cpu_usage_seconds_total{where}", c, max_cpu, "seconds")
            _note(rejected, f"container_memory_working_set_bytes{where}", m, max_memory, "bytes")
            continue
        st = start_values[i]
        usage = new(Usage, (cpu_stamps[i], cpu_ns, memory_bytes, None, None, None, None))
        container = new(
            ContainerSample,
            # name, start time, usage, cpu rate, requests, limits, cgroup counters
            (names[i], st if isfinite(st) else 0.0, usage, None, no_resources, no_resources, None),
        )
        if samples:
            samples.append(container)
        else:
            by_pod[key] = [container]
    node = _complete_node(node_name, node_time, node_cpu_ns, node_memory_bytes)
    return node, tuple(
        # namespace, name, uid, start time, containers, usage, cpu rate, process count
        new(PodSample, (namespace, pod, "", 0.0, tuple(samples), None, None, None))
        for (namespace, pod), samples in sorted(by_pod.items())
        if samples
    )


def decode_resource_metrics(
    body: bytes, node_name: str, default_time: float, rejected: list[str] | None = None
) -> tuple[NodeSample | None, tuple[PodSample, ...]]:
    """The node and pods in a kubelet's /metrics/resource answer.

    default_time (epoch seconds) stands in for a missing sample timestamp, as the time
    of the request does in metrics-server ("Without timestamp uses defaultTime").
    A value that cannot be real (bounds.py) is no data, and named in `rejected`.
    Raises DecodeError when the body is not Prometheus text.
    """
    noted: list[str] = []
    try:
        fast = _fast(body, node_name, default_time, noted)
    except (ValueError, UnicodeDecodeError):
        fast = None  # let the general path find and name what is wrong
    if fast is None:
        noted.clear()
        fast = _general(body, node_name, default_time, noted)
    if rejected is not None:
        rejected.extend(noted)
    return fast


def _general(
    body: bytes, node_name: str, default_time: float, rejected: list[str]
) -> tuple[NodeSample | None, tuple[PodSample, ...]]:
    """Any Prometheus text: one loop over the lines, the work inlined (a Python function
    call costs about as much as the rest of a line's work)."""
    node_cpu = node_memory = 0
    node_time = 0.0
    containers: dict[tuple[str, str, str], list[Any]] = {}
    # Each container appears in three series with the same label set, and the label
    # set is parsed once: label bytes -> the container's accumulator (None: unplaced).
    by_labels: dict[bytes, list[Any] | None] = {}

    # Globals as locals: a local lookup is cheaper, and this loop runs ~250 times.
    kinds, sample_line, hash_ = _KINDS, _SAMPLE_LINE, _HASH
    max_cpu, max_memory = MAX_CPU_SECONDS, MAX_BYTES
    lines = _lines(body)
    for line in lines:
        if not line or line[0] == hash_:
            continue  # blank, HELP, TYPE and any other comment
        brace = line.find(b"{")
        if brace > 0:
            kind = kinds.get(line[:brace])
        else:
            words = line.split(None, 1)
            if not words:
                continue  # a line of white space only (\v, \f): nothing
            kind = kinds.get(words[0])
        if kind is None:
            if sample_line.fullmatch(line) is None:
                raise _error(lines, line, f"not Prometheus text: {line[:60]!r}")
            continue
        if brace > 0:
            # The last "}" closes the label set: the value and timestamp never hold one.
            labels, closed, tail = line[brace:].rpartition(b"}")
            if not closed:
                raise _error(lines, line, "unterminated label set")
            fields = tail.split()
        else:
            labels = b""
            fields = line.split()[1:]
        if len(fields) == 2:
            stamp_text = fields[1]
            if not stamp_text.isdigit():
                raise _error(lines, line, f"invalid timestamp {stamp_text[:40]!r}")
        elif len(fields) == 1:
            stamp_text = b""
        else:
            raise _error(lines, line, "expected a value and an optional timestamp")
        try:
            # Go's strconv.ParseFloat spellings (1.616273408e+09, NaN, +Inf) all parse.
            value = float(fields[0])
        except ValueError:
            raise _error(lines, line, f"invalid value {fields[0][:40]!r}") from None

        if kind == _NODE_CPU:
            # metrics-server takes the CPU sample's time as the node's timestamp.
            node_cpu = round(value * 1e9) if 0 < value < max_cpu else 0
            if not node_cpu:
                _note(rejected, "node_cpu_usage_seconds_total", value, max_cpu, "seconds")
            node_time = int(stamp_text) / 1000 if stamp_text else default_time  # from ms
            continue
        if kind == _NODE_MEMORY:
            node_memory = round(value) if 0 < value < max_memory else 0
            if not node_memory:
                _note(rejected, "node_memory_working_set_bytes", value, max_memory, "bytes")
            continue
        container = by_labels.get(labels)
        if container is None:
            if labels in by_labels:
                continue  # a label set without container, pod and namespace
            try:
                key = container_key(labels)
            except DecodeError as err:
                raise _error(lines, line, str(err)) from None
            container = containers.setdefault(key, [0, 0.0, 0, 0.0]) if key else None
            by_labels[labels] = container
            if container is None:
                continue
        # NaN, infinities and negatives count as no data, i.e. as zero: decode.go
        # converts with uint64(), which has no meaningful value for them.
        if kind == _CONTAINER_CPU:
            container[_CPU] = round(value * 1e9) if 0 < value < max_cpu else 0
            if not container[_CPU]:
                name = b"container_cpu_usage_seconds_total" + labels + b"}"
                _note(rejected, name.decode(errors="replace"), value, max_cpu, "seconds")
            # The CPU sample's time is the container's, as for the node.
            container[_TIME] = int(stamp_text) / 1000 if stamp_text else default_time
        elif kind == _CONTAINER_MEMORY:
            container[_MEMORY] = round(value) if 0 < value < max_memory else 0
            if not container[_MEMORY]:
                name = b"container_memory_working_set_bytes" + labels + b"}"
                _note(rejected, name.decode(errors="replace"), value, max_memory, "bytes")
        else:
            container[_START] = value if math.isfinite(value) else 0.0

    return _complete_node(node_name, node_time, node_cpu, node_memory), _complete_pods(containers)


def _note(rejected: list[str], series: str, value: float, limit: float, unit: str) -> None:
    """Name a series whose value is not data (rare: only values found to be so)."""
    why = why_not(value, limit, unit)
    if why is not None:
        rejected.append(f"{series}: {why}")


def _error(lines: list[bytes], line: bytes, reason: str) -> DecodeError:
    # The line number is found only on failure, to keep enumerate() off the hot loop.
    return DecodeError(f"line {lines.index(line) + 1}: {reason}")


def _lines(body: bytes) -> list[bytes]:
    """The body's lines; normalised only when some line needs it (rare)."""
    lines = body.split(b"\n")
    if b"\r" in body or b"\n " in body or b"\n\t" in body or body[:1] in (b" ", b"\t"):
        lines = [line.strip() for line in lines]
    return lines


def container_key(labels: bytes) -> tuple[str, str, str] | None:
    """(namespace, pod, container) from a label set "{..." (no closing brace), or None.

    metrics-server finds `container="`, `pod="` and `namespace="` by byte search; this
    reads the label set properly instead, so that any label order, extra labels (or
    one named e.g. `xpod`) and escaped quotes in values all come out right.
    """
    if not labels:
        return None
    try:
        if b"\\" not in labels:
            parts = labels.split(b'"')
            if len(parts) == 7 and (parts[0], parts[2], parts[4], parts[6]) == _KUBELET_LABEL_PARTS:
                return parts[3].decode(), parts[5].decode(), parts[1].decode()
        if _LABEL_SET.fullmatch(labels + b"}") is None:
            raise DecodeError(f"invalid label set {labels[:60]!r}")
        found = dict(_LABEL_PAIRS.findall(labels))
        if b"namespace" not in found or b"pod" not in found or b"container" not in found:
            return None
        return (
            _label_value(found[b"namespace"]),
            _label_value(found[b"pod"]),
            _label_value(found[b"container"]),
        )
    except UnicodeDecodeError:
        # Prometheus' parser refuses label values that are not UTF-8, and so do we.
        raise DecodeError("label value is not UTF-8") from None


def _label_value(raw: bytes) -> str:
    if b"\\" in raw:
        raw = _LABEL_ESCAPE.sub(lambda m: _UNESCAPED[m.group(0)], raw)
    return raw.decode()


def _complete_node(name: str, timestamp: float, cpu: int, memory: int) -> NodeSample | None:
    """The node, unless decode.go would drop it.

    "Failed getting complete node metric": a zero timestamp, CPU or memory (which is
    also what a missing series leaves) drops the node from the batch.
    """
    if not (timestamp and cpu and memory):
        return None
    usage = Usage(timestamp=timestamp, cpu_usage_core_nanoseconds=cpu, working_set_bytes=memory)
    return NodeSample(name=name, start_time=0.0, usage=usage)


def _complete_pods(containers: dict[tuple[str, str, str], list[Any]]) -> tuple[PodSample, ...]:
    """Group containers into pods, leaving out every pod with an incomplete container.

    decode.go checkContainerMetrics: a container that has any data but zero CPU or
    zero memory makes the whole pod go ("Failed getting complete Pod metric"): the HPA
    treats a missing pod specially, and a zero is not missing.
    """
    by_pod: dict[tuple[str, str], list[ContainerSample] | None] = {}
    for (namespace, pod, name), (cpu, stamp, memory, start) in sorted(containers.items()):
        samples = by_pod.setdefault((namespace, pod), [])
        if samples is None:
            continue
        if not cpu or not memory:
            by_pod[namespace, pod] = None
            continue
        # Positional arguments: keyword ones cost a third more in this hot path.
        # Usage(timestamp, cpu_usage_core_nanoseconds, working_set_bytes) and
        # ContainerSample(name, start_time, usage, cpu_usage_nanocores, requests, limits).
        usage = Usage(stamp, cpu, memory)
        samples.append(ContainerSample(name, start, usage, None, _NO_RESOURCES, _NO_RESOURCES))
    # Sorted by (namespace, pod, container) above, so pods and containers come in order.
    return tuple(
        PodSample(namespace, pod, "", 0.0, tuple(samples))  # namespace, name, uid, start
        for (namespace, pod), samples in by_pod.items()
        if samples
    )


# --- /stats/summary -----------------------------------------------------------------


def decode_summary(
    body: bytes, node_name: str, rejected: list[str] | None = None
) -> tuple[NodeSample | None, tuple[PodSample, ...]]:
    """The node and pods in a kubelet's /stats/summary answer.

    The same completeness rules as for /metrics/resource apply, as they did in
    metrics-server v0.5 (pkg/scraper/client/summary/decode.go: "missing
    usageCoreNanoSeconds value", "Got UsageCoreNanoSeconds equal zero", "Got
    WorkingSetBytes equal zero"). The CPU reading's `time` is the sample's timestamp.
    """
    try:
        summary = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise DecodeError(f"not a Summary: invalid JSON: {err}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("node"), dict):
        raise DecodeError("not a Summary: no node object")
    pods = summary.get("pods")
    if pods is None:
        pods = []  # omitempty: a node without pods
    if not isinstance(pods, list):
        raise DecodeError("not a Summary: pods is not a list")
    noted: list[str] = [] if rejected is None else rejected
    node_stats = summary["node"]
    usage = _summary_usage(node_stats, "node", noted)
    node = None
    if usage is not None:
        node = NodeSample(
            name=node_name, start_time=_summary_time(node_stats.get("startTime")), usage=usage
        )
    decoded = (_summary_pod(p, noted) for p in pods)
    return node, tuple(sorted((p for p in decoded if p is not None), key=_pod_key))


def _pod_key(pod: PodSample) -> tuple[str, str]:
    return pod.namespace, pod.name


def _summary_pod(pod: Any, rejected: list[str]) -> PodSample | None:
    """A pod whose every container is complete, None for any other pod."""
    pod = _object(pod, "pod")
    ref = _object(pod.get("podRef"), "podRef")
    containers = pod.get("containers")
    if containers is None:
        containers = []
    if not isinstance(containers, list):
        raise DecodeError("not a Summary: containers is not a list")
    samples: list[ContainerSample] = []
    for container in containers:
        container = _object(container, "container")
        where = f"pod {ref.get('namespace')}/{ref.get('name')} container {container.get('name')}"
        usage = _summary_usage(container, where, rejected)
        if usage is None:
            return None
        samples.append(
            ContainerSample(
                name=str(container.get("name", "")),
                start_time=_summary_time(container.get("startTime")),
                usage=usage,
            )
        )
    if not samples:
        return None  # as with /metrics/resource: a pod without container data is absent
    return PodSample(
        namespace=str(ref.get("namespace", "")),
        name=str(ref.get("name", "")),
        uid=str(ref.get("uid", "")),
        start_time=_summary_time(pod.get("startTime")),
        containers=tuple(sorted(samples, key=lambda c: c.name)),
    )


def _summary_usage(stats: Mapping[str, Any], where: str, rejected: list[str]) -> Usage | None:
    """CPU and memory of a node or container, None unless time, CPU and memory are set
    and can be real (bounds.py: what cannot is named in `rejected`)."""
    cpu = stats.get("cpu")
    memory = stats.get("memory")
    if cpu is None or memory is None:
        return None
    cpu, memory = _object(cpu, "cpu"), _object(memory, "memory")
    timestamp = _summary_time(cpu.get("time"))
    nanoseconds = _count(cpu.get("usageCoreNanoSeconds"), MAX_CPU_SECONDS * 1e9)
    working_set = _count(memory.get("workingSetBytes"), MAX_BYTES)
    if not nanoseconds:
        _note_count(rejected, f"{where} usageCoreNanoSeconds", cpu.get("usageCoreNanoSeconds"))
    if not working_set:
        _note_count(rejected, f"{where} workingSetBytes", memory.get("workingSetBytes"))
    if not timestamp or not nanoseconds or not working_set:
        return None
    return Usage(
        timestamp=timestamp,
        cpu_usage_core_nanoseconds=nanoseconds,
        working_set_bytes=working_set,
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"not a Summary: {what} is not an object")
    return value


def _count(value: Any, limit: float) -> int:
    """A positive counter below limit; 0 (no data) for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not 0 < value < limit:  # NaN too
        return 0
    return round(value)


def _note_count(rejected: list[str], series: str, value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        unit, limit = ("bytes", MAX_BYTES) if "Bytes" in series else ("ns", MAX_CPU_SECONDS * 1e9)
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        _note(rejected, series, number, limit, unit)


def _summary_time(value: Any) -> float:
    """metav1.Time (RFC 3339, fractional seconds allowed) as epoch seconds; 0 if absent."""
    if value is None or value == "":
        return 0.0
    if not isinstance(value, str):
        raise DecodeError(f"not a Summary: time {value!r} is not a string")
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise DecodeError(f"not a Summary: invalid time {value[:40]!r}") from None
