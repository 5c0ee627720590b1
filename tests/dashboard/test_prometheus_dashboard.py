"""`--prometheus-url`: the dashboard's charts from a real Prometheus scraping kubepulse.

A real `kubepulse server` (scraping a real `kubepulse agent`) or `kubepulse up` serves
/metrics/usage over HTTPS with a bearer token; Debian's `prometheus` scrapes it every
second; the dashboard, signed in, answers node and pod charts from that Prometheus.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubepulse.api.exposition import metric_name
from kubepulse.history import db as history_db
from tests.history.prometheus_run import (
    PrometheusProcess,
    api,
    require_prometheus,
    run_prometheus,
    scrape_job,
)
from tests.server.conftest import agents, files
from tests.server.fleet import SERVER_TOKEN, Agent, Files, start_server
from tests.support import KUBEPULSE, free_port, run_kubepulse, wait_for

__all__ = ["agents", "files"]  # fixtures, used by name

SCRAPES = 3


class Dashboard:
    """A signed-in browser session on a kubepulse process's dashboard."""

    def __init__(self, base: str, ctx: ssl.SSLContext, token: str) -> None:
        self.base, self.ctx, self.token = base, ctx, token

    def get(self, path: str) -> tuple[int, Any]:
        async def visit() -> tuple[int, Any]:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
                async with s.post(
                    f"{self.base}/dashboard/login",
                    data={"token": self.token},
                    headers={"Origin": self.base},
                    ssl=self.ctx,
                    allow_redirects=False,
                ) as login:
                    assert login.status == 303, await login.text()
                async with s.get(f"{self.base}/dashboard/api/{path}", ssl=self.ctx) as resp:
                    assert resp.content_type == "application/json", await resp.text()
                    return resp.status, await resp.json()

        return asyncio.run(visit())


def ingested(prometheus: PrometheusProcess, node: str) -> bool:
    query = f'count_over_time({metric_name("node", "cpu")}{{node="{node}"}}[1m]) >= {SCRAPES}'
    if prometheus.proc.poll() is not None:
        raise AssertionError(f"prometheus exited: {prometheus.log()}")
    return bool(api(prometheus.url, query))


@contextmanager
def prometheus_scraping(
    tmp: Path, port: int, ca: Path, token_file: Path, listen: int
) -> Iterator[PrometheusProcess]:
    """Prometheus on 127.0.0.1:listen scraping https://127.0.0.1:port/metrics/usage."""
    binary = require_prometheus()
    workdir = tmp / "prometheus"
    workdir.mkdir()
    job = scrape_job(f"127.0.0.1:{port}", path="/metrics/usage", tls=(ca, token_file))
    with run_prometheus(binary, workdir, job, listen) as prometheus:
        yield prometheus


def recorded(path: Path) -> bool:
    if not path.exists():
        return False
    conn = history_db.connect(path, writer=False)
    try:
        # Series are written with the first samples; their chunks once sealed.
        return bool(conn.execute("SELECT count(*) FROM series").fetchone()[0])
    finally:
        conn.close()


def check_node_series(series: list[list[float]], step: int, since: float) -> None:
    assert series, "no points from Prometheus"
    assert all(t % step == 0 and since - step <= t <= time.time() for t, _, _ in series)
    assert all(cpu > 0 and mem > 0 for _, cpu, mem in series), series


def test_server_dashboard_charts_come_from_prometheus(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    token_file = tmp_path / "prometheus-token"
    token_file.write_text(SERVER_TOKEN + "\n")
    prometheus_port = free_port()  # Prometheus starts after the server: its port first
    url = f"http://127.0.0.1:{prometheus_port}"
    started = time.time()
    extra = ("--dashboard", "--prometheus-url", url)
    with start_server(tmp_path, files, agents, *extra) as server:
        ca = tmp_path / "server-pki" / "ca.crt"
        with prometheus_scraping(
            tmp_path, server.port, ca, token_file, prometheus_port
        ) as prometheus:
            dashboard = Dashboard(f"https://127.0.0.1:{server.port}", server.ctx, SERVER_TOKEN)
            wait_for(lambda: ingested(prometheus, "node-a"), 60, "Prometheus to scrape kubepulse")

            status, node = dashboard.get("nodes/node-a?range=15m")
            assert status == 200, node
            assert node["history"] is True
            check_node_series(node["series"], node["step"], started)

            status, pods = dashboard.get("pods?sort=cpu")
            assert status == 200 and pods["items"], pods
            first = pods["items"][0]
            status, pod = dashboard.get(f"pods/{first['namespace']}/{first['name']}?range=15m")
            assert status == 200, pod
            assert pod["series"], "no pod points from Prometheus"
            assert all(c["series"] for c in pod["containers"]), pod["containers"]

            status, nodes = dashboard.get("nodes")
            assert status == 200 and "history_error" not in nodes
            assert {n["name"]: bool(n["spark"]) for n in nodes["items"]} == {
                "node-a": True,
                "node-b": True,
            }
            kept = [p for p in tmp_path.rglob("*.db") if "prometheus" not in p.parts]
            assert not kept, "a history file without --history-file"

        # Prometheus gone: the charts say so, the rest of the dashboard still answers.
        status, body = dashboard.get("nodes/node-a")
        assert status == 502
        assert body["error"].startswith(f"history from Prometheus: {url}: ")
        assert dashboard.get("overview")[0] == 200
        assert "Traceback" not in server.running.log()


def test_up_dashboard_charts_come_from_prometheus(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port, prometheus_port = free_port(), free_port()
    url = f"http://127.0.0.1:{prometheus_port}"
    args = ["up", "--state-dir", str(state), "--port", str(port)]
    args += ["--agent-port", str(free_port()), "--prometheus-url", url]
    started = time.time()
    with run_kubepulse(args, tmp_path / "up.log") as up:

        def serving() -> bool:
            if up.proc.poll() is not None:
                raise AssertionError(f"kubepulse up exited: {up.log()}")
            return "kubepulse is up" in up.log()

        wait_for(serving, 30, "kubepulse up to serve")
        token = (state / "tokens.csv").read_text().split(",", 1)[0]
        token_file = tmp_path / "prometheus-token"
        token_file.write_text(token + "\n")
        ca = state / "pki" / "ca.crt"
        ctx = ssl.create_default_context(cafile=str(ca))
        dashboard = Dashboard(f"https://127.0.0.1:{port}", ctx, token)
        status, overview = dashboard.get("overview")
        assert status == 200
        host = overview["nodes"][0]["name"]

        # Before Prometheus runs, the charts fail although history.db holds samples.
        wait_for(lambda: recorded(state / "history.db"), 30, "samples in history.db")
        status, body = dashboard.get(f"nodes/{host}")
        assert status == 502 and body["error"].startswith(f"history from Prometheus: {url}: ")

        with prometheus_scraping(tmp_path, port, ca, token_file, prometheus_port) as prometheus:
            wait_for(lambda: ingested(prometheus, host), 60, "Prometheus to scrape kubepulse up")
            status, node = dashboard.get(f"nodes/{host}?range=15m")
            assert status == 200, node
            check_node_series(node["series"], node["step"], started)
        assert "Traceback" not in up.log()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("127.0.0.1:9090", "not an http:// or https:// URL"),
        ("http://127.0.0.1:9090/?x=1", "without a query or fragment"),
    ],
)
@pytest.mark.parametrize("command", ["server", "up"])
def test_a_bad_prometheus_url_is_one_error_line(
    tmp_path: Path, files: Files, command: str, url: str, why: str
) -> None:
    if command == "server":
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n"
            "status: {addresses: [{type: InternalIP, address: 127.0.0.2}]}\n"
        )
        args = ["server", "--targets", str(targets), "--dashboard"]
        args += ["--token-auth-file", str(files.server_tokens), "--bind-address", "127.0.0.1"]
        args += ["--secure-port", str(free_port()), "--cert-dir", str(tmp_path / "pki")]
    else:
        args = ["up", "--state-dir", str(tmp_path / "state"), "--port", str(free_port())]
        args += ["--agent-port", str(free_port())]
    result = subprocess.run(
        [*KUBEPULSE, *args, "--prometheus-url", url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: --prometheus-url: {url!r}")
    assert why in lines[0]


def test_prometheus_url_without_the_dashboard_is_refused(tmp_path: Path, files: Files) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n")
    args = ["server", "--targets", str(targets), "--token-auth-file", str(files.server_tokens)]
    args += ["--secure-port", str(free_port()), "--prometheus-url", "http://127.0.0.1:9090"]
    result = subprocess.run([*KUBEPULSE, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "error: --prometheus-url is where the dashboard reads history: add --dashboard"
    ]
