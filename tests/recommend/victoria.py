"""A real VictoriaMetrics (Debian's `victoria-metrics`, which speaks Prometheus's HTTP API)
on 127.0.0.1, filled with samples of known times through its import API: a history of
hours written in a moment, which a scraping Prometheus cannot be given."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.history.prometheus_run import start_logged
from tests.support import free_port, wait_for

Sample = tuple[str, dict[str, str], float, float]
"""(metric, labels, value, epoch seconds)."""


def _line(sample: Sample) -> str:
    metric, labels, value, t = sample
    matchers = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{matchers}}} {value:.17g} {round(t * 1000)}"


class Victoria:
    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str, body: bytes = b"") -> bytes:
        with urllib.request.urlopen(
            urllib.request.Request(self.url + path, data=body, method="POST"), timeout=30
        ) as response:
            return bytes(response.read())

    def load(self, samples: list[Sample]) -> None:
        """The samples imported (Prometheus text with timestamps) and flushed so that
        queries see them."""
        self.post("/api/v1/import/prometheus", "\n".join(map(_line, samples)).encode() + b"\n")
        self.post("/internal/force_flush")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def run_victoria(workdir: Path) -> Iterator[Victoria]:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        pytest.skip("no victoria-metrics binary (apt-get install victoria-metrics)")
    url = f"http://127.0.0.1:{free_port()}"
    running = start_logged(
        [
            binary,
            f"-httpListenAddr={url.removeprefix('http://')}",
            f"-storageDataPath={workdir / 'data'}",
            "-search.disableCache",
        ],
        url,
        workdir / "victoria.log",
    )
    try:
        wait_for(lambda: running.proc.poll() is not None or _healthy(url), 30, "victoria-metrics")
        assert running.proc.poll() is None, running.log()
        yield Victoria(url)
    finally:
        running.stop()
