"""A real Prometheus (Debian's `prometheus` package) for the tests, on 127.0.0.1.

The tests install it when it is missing and they can (root with apt-get), and skip only
when neither works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

SCRAPE_INTERVAL = 1


def prometheus_binary() -> str | None:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "prometheus"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
            return None
    return shutil.which("prometheus")


def require_prometheus() -> str:
    binary = prometheus_binary()
    if binary is None:
        pytest.skip("no prometheus binary and it cannot be installed (apt-get install prometheus)")
    return binary


def api(url: str, query: str) -> list[dict[str, object]]:
    """An instant query; the result list."""
    with urllib.request.urlopen(
        f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}", timeout=5
    ) as response:
        return json.load(response)["data"]["result"]  # type: ignore[no-any-return]


def scrape_job(target: str, *, path: str = "/metrics", tls: tuple[Path, Path] | None = None) -> str:
    """One scrape job in prometheus.yml; tls is (CA file, bearer token file) for HTTPS."""
    job = f"  - job_name: kubepulse\n    metrics_path: {path}\n"
    if tls is not None:
        ca, token = tls
        job += (
            "    scheme: https\n"
            f"    authorization: {{credentials_file: '{token}'}}\n"
            f"    tls_config: {{ca_file: '{ca}'}}\n"
        )
    return job + f"    static_configs:\n      - targets: ['{target}']\n"


@dataclass
class PrometheusProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_logged(args: list[str], url: str, log_path: Path) -> PrometheusProcess:
    """A server (Prometheus, or anything speaking its API) started with its output in
    log_path."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    return PrometheusProcess(url, proc, log_path)


@contextmanager
def run_prometheus(
    binary: str, workdir: Path, job: str, port: int | None = None
) -> Iterator[PrometheusProcess]:
    """Prometheus scraping `job` (scrape_job()) every SCRAPE_INTERVAL s, data in workdir,
    listening on 127.0.0.1:port (default: a free port)."""
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL}s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n{job}"
    )
    port = port or free_port()
    running = start_logged(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        f"http://127.0.0.1:{port}",
        workdir / "prometheus.log",
    )
    try:
        yield running
    finally:
        running.stop()
