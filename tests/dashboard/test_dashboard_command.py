"""`kubepulse dashboard --kubeconfig` against a real `kubepulse up` as the cluster: the
real kubectl, real processes, real TLS, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import html
import shlex
import signal
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml

from tests.agent.test_bootstrap import within
from tests.e2e.test_kubectl_up import HOST, Up, start_up
from tests.support import KUBEPULSE, Running, free_port, run_kubepulse, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("cluster")
    yield from start_up(tmp / "state", tmp / "up.log")


def token_of(up: Up) -> str:
    config = yaml.safe_load(up.kubeconfig.read_text())
    token: str = config["users"][0]["user"]["token"]
    return token


@dataclass
class Dashboard:
    url: str
    state_dir: Path
    running: Running


def start_dashboard(up: Up, tmp: Path, *extra: str) -> Iterator[Dashboard]:
    port = free_port()
    state_dir = tmp / "dashboard"
    args = [
        "dashboard",
        "--kubeconfig",
        str(up.kubeconfig),
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
        "--interval",
        "1s",
        *extra,
    ]
    with run_kubepulse(args, tmp / "dashboard.log") as running:

        def serving() -> str | None:
            if running.proc.poll() is not None:
                raise AssertionError(f"kubepulse dashboard exited: {running.log()}")
            for line in running.log().splitlines():
                if line.startswith("kubepulse dashboard: "):
                    return line.removeprefix("kubepulse dashboard: ").strip()
            return None

        url = wait_for(serving, timeout=30, what="kubepulse dashboard to serve")
        yield Dashboard(url, state_dir, running)


@pytest.fixture(scope="module")
def dashboard(cluster: Up, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    yield from start_dashboard(cluster, tmp_path_factory.mktemp("dashboard"))


def open_browser(dashboard: Dashboard) -> aiohttp.ClientSession:
    """A client that trusts the dashboard's self-signed CA and keeps its cookies."""
    ctx = ssl.create_default_context(cafile=dashboard.state_dir / "pki" / "ca.crt")
    return aiohttp.ClientSession(
        base_url=dashboard.url.removesuffix("/dashboard/"),
        connector=aiohttp.TCPConnector(ssl=ctx),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for an IP address
        timeout=aiohttp.ClientTimeout(total=30),
    )


@pytest.fixture
async def browser(dashboard: Dashboard) -> AsyncIterator[aiohttp.ClientSession]:
    async with open_browser(dashboard) as session:
        yield session


async def sign_in(browser: aiohttp.ClientSession, token: str) -> aiohttp.ClientResponse:
    """The login form's POST; the answer is read whole (its text stays readable)."""
    async with browser.post(
        "/dashboard/login", data={"token": token}, allow_redirects=False
    ) as resp:
        await resp.read()
        return resp


async def get_json(browser: aiohttp.ClientSession, path: str) -> Any:
    async with browser.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def test_the_dashboard_is_served_over_https_on_loopback(dashboard: Dashboard) -> None:
    assert dashboard.url.startswith("https://127.0.0.1:")
    assert dashboard.url.endswith("/dashboard/")


async def test_signing_in_with_ups_token_shows_this_host_with_real_cpu(
    cluster: Up, browser: aiohttp.ClientSession
) -> None:
    resp = await sign_in(browser, token_of(cluster))
    assert resp.status == 303

    async def host_cpu() -> float | None:
        overview = await get_json(browser, "/dashboard/api/overview")
        node = next((n for n in overview["nodes"] if n["name"] == HOST), None)
        return node["cpu"]["used"] if node else None

    cpu = await within(host_cpu, "this host's CPU in the overview", timeout=30)
    assert cpu > 0
    overview = await get_json(browser, "/dashboard/api/overview")
    node = next(n for n in overview["nodes"] if n["name"] == HOST)
    assert node["cpu"]["allocatable"] > 0
    assert node["memory"]["used"] > 0
    assert overview["totals"]["pods"] > 0


async def test_against_up_no_action_is_offered_that_ups_read_only_api_refuses(
    cluster: Up, browser: aiohttp.ClientSession
) -> None:
    """up's SelfSubjectAccessReview says what its API can do: no Delete, Edit, Logs or
    Create button that would always fail."""
    assert (await sign_in(browser, token_of(cluster))).status == 303
    pods = await within(
        lambda: _host_pods(browser), "a host pod in the dashboard's pod list", timeout=30
    )
    target = {"apiVersion": "v1", "kind": "Pod", "namespace": "host", "name": pods[0]}
    answer = await get_json(browser, "/dashboard/api/can?" + urlencode(target))
    assert answer["actions"] == {"create": False, "delete": False, "logs": False, "edit": False}
    nodes = await get_json(
        browser,
        "/dashboard/api/can?" + urlencode({"apiVersion": "v1", "kind": "Node", "name": HOST}),
    )
    assert not any(nodes["actions"].values())


async def _host_pods(browser: aiohttp.ClientSession) -> list[str] | None:
    listed = await get_json(browser, "/dashboard/api/pods?namespace=host")
    return [p["name"] for p in listed["items"]] or None


async def test_the_nodes_history_fills_from_the_polls(
    cluster: Up, browser: aiohttp.ClientSession
) -> None:
    assert (await sign_in(browser, token_of(cluster))).status == 303

    async def series() -> list[Any] | None:
        detail = await get_json(browser, f"/dashboard/api/nodes/{HOST}?range=15m")
        return list(detail["series"]) or None

    points = await within(series, "the node's chart from the history", timeout=30)
    _, cpu_millicores, memory = points[-1]
    assert cpu_millicores > 0
    assert memory > 0


async def test_a_wrong_token_is_refused(browser: aiohttp.ClientSession) -> None:
    resp = await sign_in(browser, "not-a-token-the-cluster-knows")
    assert resp.status == 401
    assert "That token was not accepted" in await resp.text()
    async with browser.get("/dashboard/api/overview") as overview:
        assert overview.status == 401


async def test_the_session_cookie_is_secure_and_no_token_is_logged(
    cluster: Up, dashboard: Dashboard, browser: aiohttp.ClientSession
) -> None:
    token = token_of(cluster)
    resp = await sign_in(browser, token)
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert token not in dashboard.running.log()


def test_kubectl_auth_whoami_names_ups_user(cluster: Up) -> None:
    result = cluster.kubectl("auth", "whoami")
    lines = [line.split(None, 1) for line in result.stdout.splitlines()]
    assert lines == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "kubepulse-admin"],
        ["UID", "kubepulse-admin"],
        ["Groups", "[system:masters system:authenticated]"],
    ]


def test_sigterm_stops_the_dashboard_cleanly(cluster: Up, tmp_path: Path) -> None:
    for dashboard in start_dashboard(cluster, tmp_path):
        dashboard.running.proc.send_signal(signal.SIGTERM)
        assert dashboard.running.proc.wait(timeout=20) == 0
        assert "Traceback" not in dashboard.running.log()


async def test_plain_http_on_loopback_is_served_with_a_warning(cluster: Up, tmp_path: Path) -> None:
    for dashboard in start_dashboard(cluster, tmp_path, "--insecure-http"):
        assert dashboard.url.startswith("http://127.0.0.1:")
        assert "WARNING" in dashboard.running.log()
        assert "--insecure-http" in dashboard.running.log()
        base = dashboard.url.removesuffix("/dashboard/")
        async with aiohttp.ClientSession(base_url=base) as browser:
            resp = await sign_in(browser, token_of(cluster))
            assert resp.status == 303
            # A browser drops Secure cookies over http: this one is not marked so.
            assert "Secure" not in resp.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--insecure-http", "--bind-address", "0.0.0.0"],
            "error: --insecure-http serves only on a loopback address, not 0.0.0.0",
        ),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "error: no kubeconfig found"),
        (["--context", "nowhere"], 'error: context "nowhere" does not exist'),
        (["--interval", "0s"], "error: --interval must be greater than 0"),
        (["--interval", "soon"], "error: argument --interval: invalid duration 'soon'"),
        (["--tls-cert-file", "cert.pem"], "error: --tls-cert-file and --tls-private-key-file"),
        (["--prometheus-url", "ftp://prometheus"], "error: --prometheus-url: "),
        (
            ["--prometheus-url", "http://127.0.0.1:9090", "--history-file", "h.db"],
            "error: --prometheus-url and --history-file cannot be used together",
        ),
    ],
)
def test_bad_flags_give_one_line_and_a_nonzero_exit(
    cluster: Up, tmp_path: Path, flags: list[str], message: str
) -> None:
    args = ["dashboard", "--kubeconfig", str(cluster.kubeconfig), "--state-dir", str(tmp_path)]
    result = subprocess.run([*KUBEPULSE, *args, *flags], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_port_in_use_gives_one_line(cluster: Up, tmp_path: Path) -> None:
    args = ["dashboard", "--kubeconfig", str(cluster.kubeconfig), "--state-dir", str(tmp_path)]
    result = subprocess.run(
        [*KUBEPULSE, *args, "--port", str(cluster.port)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"error: cannot listen on 127.0.0.1:{cluster.port}"
    )
    assert "Traceback" not in result.stderr


async def test_with_prometheus_no_history_file_is_written(cluster: Up, tmp_path: Path) -> None:
    # Nothing listens there: the charts fail, the live views do not.
    prometheus = f"http://127.0.0.1:{free_port()}"
    for dashboard in start_dashboard(cluster, tmp_path, "--prometheus-url", prometheus):
        assert "history:" not in dashboard.running.log()
        async with open_browser(dashboard) as browser:
            assert (await sign_in(browser, token_of(cluster))).status == 303

            async def listed() -> Any:
                overview = await get_json(browser, "/dashboard/api/overview")
                return overview if any(n["name"] == HOST for n in overview["nodes"]) else None

            overview = await within(listed, "this host in the overview", timeout=30)
            assert overview["history"] is True
    assert not (tmp_path / "dashboard" / "history.db").exists()


async def test_ups_sign_in_page_says_where_its_token_is(cluster: Up) -> None:
    """Signing in to up's own dashboard: the page names the command that prints the token,
    and that command, run, prints a token that signs in."""
    ctx = ssl.create_default_context(cafile=cluster.state_dir / "pki" / "ca.crt")
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx), cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session,
        session.get(f"https://127.0.0.1:{cluster.port}/dashboard/") as resp,
    ):
        page = await resp.text()
    hint = html.unescape(page.split('id="token-hint">', 1)[1].split("</p>", 1)[0])
    command = hint.split(": ", 1)[1]
    assert command.startswith("kubectl config view --raw --kubeconfig ")
    printed = subprocess.run(shlex.split(command), capture_output=True, text=True, check=True)
    assert printed.stdout == token_of(cluster)


async def test_usage_follows_ups_metrics_watch_not_the_polling_interval(tmp_path: Path) -> None:
    """up's metrics API offers the watch: with an hour between polls, each of up's 2 s
    scrapes still reaches the dashboard as a cycle, about a second after up stored it."""
    up_started = contextlib.contextmanager(start_up)
    dashboard_started = contextlib.contextmanager(start_dashboard)
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(
            up_started(tmp_path / "up", tmp_path / "up.log", "--metric-resolution", "2s")
        )
        dashboard = stack.enter_context(dashboard_started(up, tmp_path, "--interval", "1h"))
        async with open_browser(dashboard) as browser:
            assert (await sign_in(browser, token_of(up))).status == 303
            async with browser.get(
                "/dashboard/api/cycles", headers={"Accept": "text/event-stream"}
            ) as events:
                assert events.status == 200
                cycles: list[float] = []
                async with asyncio.timeout(30):
                    while len(cycles) < 3:
                        line = await events.content.readline()
                        assert line, "the stream ended"
                        if line == b"event: cycle\n":
                            cycles.append(time.monotonic())
            detail = await get_json(browser, f"/dashboard/api/nodes/{HOST}?range=15m")
        log = dashboard.running.log()
    # Three cycles within 30 s, where polling every hour would give one at most.
    assert cycles[-1] - cycles[0] < 20
    assert f"following the metrics watch of https://127.0.0.1:{up.port}" in log
    assert detail["series"]  # and recorded, as polls are
    assert "Traceback" not in log
