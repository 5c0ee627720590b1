"""The server's own metrics: kubepulse_* counterparts of metrics-server's metrics_server_*."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kubepulse.history.file import History
from kubepulse.server.connections import COUNTS
from kubepulse.store.reading import UsageStore


def _tick_buckets(resolution: float) -> list[float]:
    """Default buckets plus buckets around the resolution (pkg/utils/monitoring.go)."""
    defaults = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    around = [resolution * f for f in (0.5, 0.75, 0.9, 1.0, 1.25, 1.5)]
    return sorted(set(defaults + around))


class _StoragePoints(Collector):
    def __init__(self, store: UsageStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kubepulse_storage_points", "Number of metrics points stored.", labels=["type"]
        )
        for kind, count in sorted(self.store.points().items()):
            family.add_metric([kind], count)
        yield family


class _Connections(Collector):
    """What the listeners of this process saw (server/connections.py)."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        c = COUNTS
        yield GaugeMetricFamily(
            "kubepulse_http_open_connections", "Connections open now.", value=c.open
        )
        for name, help_text, value in (
            ("refused_connections", "Connections closed at once: too many open.", c.refused),
            ("malformed_requests", "Requests that were not HTTP, answered 400.", c.malformed),
            (
                "header_timeouts",
                "Connections closed for a request head too slow.",
                c.header_timeouts,
            ),
            (
                "handshake_failures",
                "TLS handshakes that failed or never began.",
                c.handshake_failures,
            ),
        ):
            yield CounterMetricFamily(f"kubepulse_http_{name}", help_text, value=value)


class _History(Collector):
    """The history file's health: a damaged chunk or a full disk shows here first."""

    def __init__(self, history: History) -> None:
        self.history = history

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        h = self.history.health()
        yield GaugeMetricFamily(
            "kubepulse_history_open", "1 when the history file is open.", value=int(h.open)
        )
        yield GaugeMetricFamily(
            "kubepulse_history_file_bytes",
            "Size of the history file and its WAL on disk.",
            value=h.file_bytes,
        )
        yield GaugeMetricFamily(
            "kubepulse_history_write_failing",
            "1 while writes fail (a full disk): sealed chunks wait in memory.",
            value=int(h.write_failing),
        )
        for name, help_text, value in (
            ("dropped_samples", "Samples dropped: the writer's queue was full.", h.dropped_rows),
            (
                "failed_samples",
                "Samples that could not be stored (values beyond 64 bits, or a disk that"
                " refused them for too long).",
                h.failed_rows,
            ),
            (
                "trimmed_samples",
                "Samples and buckets deleted to fit --history-max-size.",
                h.trimmed_rows,
            ),
            (
                "damaged_chunks",
                "Chunks skipped because they could not be decoded.",
                h.damaged_chunks,
            ),
        ):
            yield CounterMetricFamily(f"kubepulse_history_{name}", help_text, value=value)


class SelfMetrics:
    def __init__(self, store: UsageStore, resolution: float) -> None:
        self.registry = CollectorRegistry()
        self.request_duration = Histogram(
            "kubepulse_kubelet_request_duration_seconds",
            "Duration of requests to kubelet API in seconds",
            ["node"],
            registry=self.registry,
        )
        self.request_total = Counter(
            "kubepulse_kubelet_request",
            "Number of requests sent to kubelet API",
            ["success"],
            registry=self.registry,
        )
        self.last_request = Gauge(
            "kubepulse_kubelet_last_request_time_seconds",
            "Time of last request performed to kubelet API since unix epoch in seconds",
            ["node"],
            registry=self.registry,
        )
        self.tick_duration = Histogram(
            "kubepulse_manager_tick_duration_seconds",
            "The total time spent collecting and storing metrics in seconds.",
            buckets=_tick_buckets(resolution),
            registry=self.registry,
        )
        self.registry.register(_StoragePoints(store))
        self.registry.register(_Connections())

    def watch_history(self, history: History) -> None:
        self.registry.register(_History(history))

    def request_done(self, node: str, seconds: float, success: bool) -> None:
        self.request_duration.labels(node).observe(seconds)
        self.request_total.labels("true" if success else "false").inc()
        self.last_request.labels(node).set(time.time())

    def tick_done(self, seconds: float) -> None:
        self.tick_duration.observe(seconds)
