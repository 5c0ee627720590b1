"""The dashboard's HTTP side: sign-in, sessions, CSRF, headers and every JSON endpoint."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kubepulse.dashboard.security import CSP
from kubepulse.dashboard.sessions import COOKIE
from kubepulse.history.file import History
from kubepulse.history.prometheus import PrometheusHistory
from kubepulse.history.read import HistoryPoint
from kubepulse.history.sources import SeriesSource, SqliteSeries
from tests.api.conftest import COREDNS, KI, MI, TOKEN
from tests.dashboard.conftest import (
    HISTORY_POINTS,
    NODE_A_MEM,
    NOW,
    Clock,
    MakeDashboard,
    inventory,
    parts,
    root_app,
    sign_in,
    xss_pod,
)
from tests.support import free_port

Client = TestClient[Any, Any]
API = "/dashboard/api"


@pytest.fixture
async def client(make_dashboard: MakeDashboard) -> Client:
    return await make_dashboard()


@pytest.fixture
async def signed_in(client: Client) -> Client:
    await sign_in(client)
    return client


# -- signing in and out --------------------------------------------------------------


async def test_the_page_sends_a_visitor_without_a_session_to_the_login_form(
    client: Client,
) -> None:
    resp = await client.get("/dashboard/", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "login"
    form = await client.get("/dashboard/login")
    assert form.status == 200
    assert 'name="token"' in await form.text()


async def test_mount_redirects_the_bare_prefix_to_the_page(client: Client) -> None:
    resp = await client.get("/dashboard", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "/dashboard/"


async def test_a_good_token_gives_an_httponly_strict_session_cookie(client: Client) -> None:
    resp = await client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "./"
    cookie = resp.cookies[COOKIE]
    assert len(cookie.value) >= 40
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard"
    assert not cookie["secure"]  # the plain-HTTP loopback option
    page = await client.get("/dashboard/")
    assert page.status == 200
    assert '<script src="static/app.js"' in await page.text()
    info = await (await client.get(f"{API}/session")).json()
    assert info["user"] == "admin"
    assert info["poll_interval"] == 1.0


async def test_sign_in_returns_to_the_view_in_next(client: Client) -> None:
    resp = await client.post(
        "/dashboard/login",
        data={"token": TOKEN, "next": "#/nodes/node-a?range=1h"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "./#/nodes/node-a?range=1h"


async def test_sign_in_ignores_a_next_that_is_not_a_view(client: Client) -> None:
    resp = await client.post(
        "/dashboard/login",
        data={"token": TOKEN, "next": "//evil.example/"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "./"


async def test_the_session_cookie_is_secure_unless_the_loopback_option_is_set(
    aiohttp_client: Any, history: Any
) -> None:
    from kubepulse.dashboard.app import DashboardOptions
    from tests.dashboard.conftest import parts, root_app

    p = parts(history)
    p.options = DashboardOptions(clock=Clock())
    client = await aiohttp_client(root_app(p))
    resp = await client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303
    assert resp.cookies[COOKIE]["secure"] is True


async def test_a_wrong_token_is_refused_with_a_message_and_no_cookie(client: Client) -> None:
    resp = await client.post("/dashboard/login", data={"token": "not-the-token"})
    assert resp.status == 401
    assert COOKIE not in resp.cookies
    assert "That token was not accepted" in await resp.text()
    assert (await client.get(f"{API}/overview")).status == 401


async def test_an_empty_token_is_refused(client: Client) -> None:
    resp = await client.post("/dashboard/login", data={"token": ""})
    assert resp.status == 401


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
)
async def test_a_login_posted_from_another_origin_is_refused(
    client: Client, headers: dict[str, str]
) -> None:
    resp = await client.post(
        "/dashboard/login", data={"token": TOKEN}, headers=headers, allow_redirects=False
    )
    assert resp.status == 403
    assert COOKIE not in resp.cookies


async def test_api_without_a_session_is_401(client: Client) -> None:
    for path in ("overview", "nodes", "nodes/node-a", "pods", "pods/default/web-1", "namespaces"):
        resp = await client.get(f"{API}/{path}")
        assert resp.status == 401, path
        assert await resp.json() == {"error": "not signed in"}


async def test_a_session_expires_after_its_lifetime(make_dashboard: MakeDashboard) -> None:
    clock = Clock()
    client = await make_dashboard(clock=clock, lifetime=600.0)
    await sign_in(client)
    clock.now += 599
    assert (await client.get(f"{API}/overview")).status == 200
    clock.now += 2
    assert (await client.get(f"{API}/overview")).status == 401
    resp = await client.get("/dashboard/", allow_redirects=False)
    assert resp.status == 303


async def test_a_forged_session_cookie_is_401(client: Client) -> None:
    client.session.cookie_jar.update_cookies({COOKIE: "forged"})
    assert (await client.get(f"{API}/overview")).status == 401


async def test_logout_needs_the_csrf_token(signed_in: Client) -> None:
    missing = await signed_in.post("/dashboard/logout")
    assert missing.status == 403
    assert "CSRF" in (await missing.json())["error"]
    wrong = await signed_in.post("/dashboard/logout", headers={"X-CSRF-Token": "nope"})
    assert wrong.status == 403
    assert (await signed_in.get(f"{API}/overview")).status == 200  # still signed in


async def test_logout_with_the_csrf_token_ends_the_session(client: Client) -> None:
    csrf = await sign_in(client)
    old_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/dashboard/"))[COOKIE]
    resp = await client.post("/dashboard/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert (await client.get(f"{API}/overview")).status == 401
    # The old id is dead on the server too, not just gone from the jar.
    client.session.cookie_jar.update_cookies({COOKIE: old_cookie.value})
    assert (await client.get(f"{API}/overview")).status == 401


async def test_the_csrf_token_is_accepted_as_a_form_field(client: Client) -> None:
    csrf = await sign_in(client)
    resp = await client.post("/dashboard/logout", data={"csrf_token": csrf})
    assert resp.status == 200


async def test_each_session_has_its_own_csrf_token(make_dashboard: MakeDashboard) -> None:
    first, second = await make_dashboard(), await make_dashboard()
    assert await sign_in(first) != await sign_in(second)


# -- headers ---------------------------------------------------------------------------


async def test_every_response_carries_the_security_headers(signed_in: Client) -> None:
    for path in ("/dashboard/", "/dashboard/login", f"{API}/overview", "/dashboard/static/app.js"):
        resp = await signed_in.get(path)
        assert resp.status == 200, path
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
    refused = await signed_in.post("/dashboard/logout")
    assert refused.status == 403
    assert refused.headers["Content-Security-Policy"] == CSP


async def test_the_csp_forbids_inline_script_and_framing() -> None:
    assert "script-src 'self';" in CSP
    assert "unsafe-inline" not in CSP
    assert "frame-ancestors 'none'" in CSP


async def test_the_vendored_chart_library_is_served(signed_in: Client) -> None:
    resp = await signed_in.get("/dashboard/static/vendor/uPlot.iife.min.js")
    assert resp.status == 200
    assert "uPlot" in await resp.text()


# -- data ------------------------------------------------------------------------------

ALLOC_MEM = 15223808 * KI
CAP_MEM = 16374784 * KI


async def test_overview_has_nodes_used_against_allocatable(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/overview")).json()
    nodes = {n["name"]: n for n in data["nodes"]}
    assert list(nodes) == ["node-a", "node-b", "node-c", "node-d"]
    assert nodes["node-a"]["cpu"] == {"used": 500.0, "allocatable": 3800, "capacity": 4000}
    assert nodes["node-a"]["memory"] == {"used": MI, "allocatable": ALLOC_MEM, "capacity": CAP_MEM}
    assert nodes["node-a"]["roles"] == ["control-plane"]
    assert nodes["node-b"]["cpu"]["used"] == 487.558
    assert nodes["node-b"]["memory"]["used"] == 732212 * KI
    assert nodes["node-c"]["cpu"]["used"] is None  # no metrics stored
    assert nodes["node-d"]["cpu"]["used"] == 2000.0
    assert data["totals"]["nodes"] == 4
    assert data["totals"]["pods"] == 3
    assert data["totals"]["cpu"] == {"used": 2987.558, "allocatable": 4 * 3800}


async def test_overview_has_top_pods_and_namespace_totals(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/overview")).json()
    assert [(p["namespace"], p["name"], p["used"]) for p in data["top_cpu"]] == [
        ("default", "web-1", 350.0),
        ("kube-system", COREDNS, 9.56),
    ]
    assert [(p["name"], p["used"]) for p in data["top_memory"]] == [
        (COREDNS, 22244 * KI),
        ("web-1", 3 * MI),
    ]
    assert data["namespaces"] == [
        {"name": "default", "pods": 2, "cpu": 350.0, "memory": 3 * MI},
        {"name": "kube-system", "pods": 1, "cpu": 9.56, "memory": 22244 * KI},
    ]


async def test_nodes_list_has_sparklines_from_history(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/nodes")).json()
    nodes = {n["name"]: n for n in data["items"]}
    spark = nodes["node-a"]["spark"]
    # 10 minutes of 15 s samples in 1-minute steps (the newest may still be open), at 500m.
    assert len(spark) in (10, 11)
    assert {p[1] for p in spark} == {500.0}
    assert nodes["node-b"]["spark"] == []
    assert nodes["node-a"]["pods"] == 1


@pytest.mark.parametrize(
    ("label", "step", "points"),
    # 40 samples 15 s apart ending on a whole minute: 40 steps of 15 s, 21 of 30 s; the
    # 24h range reads the 15-minute tier, whose newest bucket may still be open.
    [("15m", 15, {40}), ("1h", 30, {21}), ("24h", 900, {0, 1, 2})],
)
async def test_node_detail_has_a_series_for_each_range(
    signed_in: Client, label: str, step: int, points: set[int]
) -> None:
    resp = await signed_in.get(f"{API}/nodes/node-a", params={"range": label})
    assert resp.status == 200
    data = await resp.json()
    assert data["range"] == label
    assert data["step"] == step
    series = data["series"]
    assert len(series) in points
    assert all(p[1] == 500.0 and p[2] == NODE_A_MEM for p in series)
    assert not series or series[-1][0] <= NOW
    assert data["node"]["cpu"]["allocatable"] == 3800
    assert data["node"]["memory"]["capacity"] == CAP_MEM
    assert [p["name"] for p in data["pods"]] == [COREDNS]


async def test_node_detail_default_range_is_an_hour(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/nodes/node-a")).json()
    assert data["range"] == "1h"


async def test_node_detail_refuses_an_unknown_range_and_node(signed_in: Client) -> None:
    bad = await signed_in.get(f"{API}/nodes/node-a", params={"range": "2y"})
    assert bad.status == 400
    assert "range must be one of" in (await bad.json())["error"]
    missing = await signed_in.get(f"{API}/nodes/nope")
    assert missing.status == 404


async def test_node_detail_without_history_has_no_series(make_dashboard: MakeDashboard) -> None:
    client = await make_dashboard(history=None)
    await sign_in(client)
    data = await (await client.get(f"{API}/nodes/node-a")).json()
    assert data["series"] == []
    assert data["history"] is False
    assert data["node"]["cpu"]["used"] == 500.0


async def test_pods_are_sorted_by_cpu_by_default(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/pods")).json()
    assert [p["name"] for p in data["items"]] == ["web-1", COREDNS, "web-2"]
    web1 = data["items"][0]
    assert web1["cpu"] == {"used": 350.0, "request": 200, "limit": None}
    assert web1["memory"] == {"used": 3 * MI, "request": 140 * MI, "limit": 340 * MI}
    assert web1["node"] == "node-b"
    assert data["total"] == 3


async def test_pods_sorted_by_memory(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/pods", params={"sort": "memory"})).json()
    assert [p["name"] for p in data["items"]] == [COREDNS, "web-1", "web-2"]


async def test_pods_filtered_by_namespace_label_and_name(signed_in: Client) -> None:
    by_ns = await (await signed_in.get(f"{API}/pods", params={"namespace": "default"})).json()
    assert {p["name"] for p in by_ns["items"]} == {"web-1", "web-2"}
    by_label = await (
        await signed_in.get(f"{API}/pods", params={"label": "k8s-app=kube-dns"})
    ).json()
    assert [p["name"] for p in by_label["items"]] == [COREDNS]
    by_name = await (await signed_in.get(f"{API}/pods", params={"name": "WEB-2"})).json()
    assert [p["name"] for p in by_name["items"]] == ["web-2"]


async def test_pods_refuses_a_bad_sort_or_selector(signed_in: Client) -> None:
    assert (await signed_in.get(f"{API}/pods", params={"sort": "age"})).status == 400
    assert (await signed_in.get(f"{API}/pods", params={"label": "a in ("})).status == 400


async def test_pod_detail_has_container_series_and_spec_lines(signed_in: Client) -> None:
    resp = await signed_in.get(f"{API}/pods/default/web-1", params={"range": "15m"})
    assert resp.status == 200
    data = await resp.json()
    assert data["pod"]["cpu"]["used"] == 350.0
    assert (data["pod"]["created"], data["pod"]["phase"], data["pod"]["restarts"]) == (
        "2021-11-02T09:15:00Z",
        "Running",
        0,
    )
    assert len(data["series"]) == HISTORY_POINTS
    assert data["series"][0][1:] == [300.0, 3 * MI]
    containers = {c["name"]: c for c in data["containers"]}
    assert list(containers) == ["nginx", "log-shipper"]  # the spec's order
    nginx = containers["nginx"]
    assert nginx["cpu"] == {"used": 100.0, "request": 100, "limit": None}
    assert nginx["memory"] == {"used": MI, "request": 70 * MI, "limit": 170 * MI}
    assert {p[1] for p in nginx["series"]} == {100.0}
    assert {p[1] for p in containers["log-shipper"]["series"]} == {200.0}
    assert containers["log-shipper"]["cpu"]["used"] == 250.0


async def test_pod_detail_of_a_pod_without_metrics(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/pods/default/web-2")).json()
    assert data["pod"]["cpu"]["used"] is None
    assert data["containers"][0]["cpu"] == {"used": None, "request": 100, "limit": None}
    assert data["series"] == []


async def test_pod_detail_of_an_unknown_pod_is_404(signed_in: Client) -> None:
    resp = await signed_in.get(f"{API}/pods/default/nope")
    assert resp.status == 404
    assert (await resp.json())["error"] == "no pod default/nope, and no history of it"


async def test_a_pod_that_ended_keeps_its_page_from_the_history(
    make_dashboard: MakeDashboard, history: History
) -> None:
    """Not in the inventory nor the store any more: its containers, charts and the time
    it was last seen come from the history."""
    last = NOW - 3600
    rows = []
    for i in range(20):
        ts = last - 15 * (19 - i)
        rows.append(("pod", "default", "batch-7", "", ts, 500_000_000, 9 * MI))
        rows.append(("container", "default", "batch-7", "worker", ts, 500_000_000, 9 * MI))
    history.record(rows)
    assert history.flush(timeout=10)
    client = await make_dashboard()
    await sign_in(client)
    data = await (await client.get(f"{API}/pods/default/batch-7?range=6h")).json()
    assert data["ended"] is True
    assert data["last_seen"] == last
    assert [c["name"] for c in data["containers"]] == ["worker"]
    assert {p[1] for p in data["containers"][0]["series"]} == {500.0}
    assert data["containers"][0]["cpu"]["used"] is None
    assert data["series"] and data["series"][-1][0] <= last
    live = await (await client.get(f"{API}/pods/default/web-1")).json()
    assert live["ended"] is False and live["last_seen"] is None
    ended = await (await client.get(f"{API}/ended")).json()
    assert ended["items"] == [{"namespace": "default", "name": "batch-7", "last_seen": last}]


@pytest.mark.parametrize(("label", "seconds"), [("15m", 900), ("24h", 86400), ("30d", 2592000)])
async def test_a_chart_answer_says_the_window_it_spans(
    signed_in: Client, label: str, seconds: int
) -> None:
    for path in ("nodes/node-a", "overview"):
        data = await (await signed_in.get(f"{API}/{path}?range={label}")).json()
        assert data["range"] == label
        assert data["end"] - data["start"] == seconds
        assert all(data["start"] <= p[0] <= data["end"] for p in data["series"])


async def test_the_overview_refuses_an_unknown_range(signed_in: Client) -> None:
    bad = await signed_in.get(f"{API}/overview", params={"range": "2y"})
    assert bad.status == 400
    assert "range must be one of" in (await bad.json())["error"]


async def test_namespaces_sum_their_pods(signed_in: Client) -> None:
    data = await (await signed_in.get(f"{API}/namespaces")).json()
    assert [(n["name"], n["pods"], n["cpu"]) for n in data["items"]] == [
        ("default", 2, 350.0),
        ("kube-system", 1, 9.56),
    ]


async def test_names_come_back_verbatim_as_json_strings(make_dashboard: MakeDashboard) -> None:
    client = await make_dashboard(pods_and_nodes=inventory([xss_pod()]))
    await sign_in(client)
    data = await (await client.get(f"{API}/pods", params={"name": "<img"})).json()
    assert [p["name"] for p in data["items"]] == ["<img src=x onerror=alert(1)>"]
    resp = await client.get("/dashboard/api/pods/default/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert resp.status == 200
    assert resp.content_type == "application/json"


# -- a history that cannot answer --------------------------------------------------------


async def charts_from(aiohttp_client: Any, source: SeriesSource) -> Client:
    """The dashboard with its charts read from `source`, signed in."""
    p = parts(history=None)
    p.history = source
    client: Client = await aiohttp_client(root_app(p))
    await sign_in(client)
    return client


async def test_an_unreachable_prometheus_is_a_502_with_why(aiohttp_client: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with PrometheusHistory(url) as prometheus:
        client = await charts_from(aiohttp_client, prometheus)
        for path in ("nodes/node-a?range=6h", "pods/default/web-1"):
            resp = await client.get(f"{API}/{path}")
            assert resp.status == 502, path
            assert resp.content_type == "application/json"
            error = (await resp.json())["error"]
            assert error.startswith(f"history from Prometheus: {url}: ")
            assert "Traceback" not in error
        # What does not need the history still answers.
        overview = await client.get(f"{API}/overview")
        assert overview.status == 200
        body = await overview.json()
        assert body["history"] is True
        assert body["series"] == []  # no cluster trend, and why
        assert body["history_error"].startswith(f"history from Prometheus: {url}: ")


async def test_the_nodes_list_shows_without_sparklines_when_prometheus_is_down(
    aiohttp_client: Any,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with PrometheusHistory(url) as prometheus:
        client = await charts_from(aiohttp_client, prometheus)
        resp = await client.get(f"{API}/nodes")
        assert resp.status == 200
        data = await resp.json()
        assert [n["name"] for n in data["items"]][:2] == ["node-a", "node-b"]
        assert all(n["spark"] == [] for n in data["items"])
        assert data["history_error"].startswith(f"history from Prometheus: {url}: ")


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        (
            400,
            '{"status":"error","errorType":"bad_data","error":"parse error at char 3"}',
            "application/json",
            "refused the query: bad_data: parse error at char 3",
        ),
        (503, "<html>Service Unavailable</html>", "text/html", "HTTP 503, not a Prometheus answer"),
        (200, '["not", "an", "object"]', "application/json", "HTTP 200, not a Prometheus answer"),
        (
            200,
            '{"status":"success","data":{"result":[{"metric":{}}]}}',
            "application/json",
            "a range answer without values",
        ),
    ],
    ids=["refused", "html", "json-list", "no-values"],
)
async def test_a_prometheus_answering_wrongly_is_a_502_with_why(
    aiohttp_client: Any,
    aiohttp_server: Any,
    status: int,
    body: str,
    content_type: str,
    message: str,
) -> None:
    async def query_range(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    fake = web.Application()
    fake.router.add_post("/api/v1/query_range", query_range)
    server = await aiohttp_server(fake, host="127.0.0.1")
    async with PrometheusHistory(f"http://127.0.0.1:{server.port}") as prometheus:
        client = await charts_from(aiohttp_client, prometheus)
        resp = await client.get(f"{API}/nodes/node-a")
        assert resp.status == 502
        assert message in (await resp.json())["error"]


class BrokenFile:
    async def series(self, *args: Any) -> list[HistoryPoint]:
        raise sqlite3.OperationalError("disk I/O error")

    async def node_series(self, *args: Any) -> dict[str, list[HistoryPoint]]:
        raise sqlite3.OperationalError("disk I/O error")

    async def containers(self, *args: Any) -> list[str]:
        raise sqlite3.OperationalError("disk I/O error")


async def test_an_unreadable_history_file_is_a_503_with_why(aiohttp_client: Any) -> None:
    client = await charts_from(aiohttp_client, BrokenFile())
    resp = await client.get(f"{API}/pods/default/web-1")
    assert resp.status == 503
    assert await resp.json() == {"error": "history file: disk I/O error"}
    # The nodes list is still served, without its sparklines, and says why.
    resp = await client.get(f"{API}/nodes")
    assert resp.status == 200
    body = await resp.json()
    assert body["items"] and all(n["spark"] == [] for n in body["items"])
    assert body["history_error"] == "history file: disk I/O error"


async def test_recently_ended_pods_are_asked_of_the_history_at_most_every_30_s(
    aiohttp_client: Any, history: History
) -> None:
    """The overview polls every few seconds; the list walks every series: reused."""
    asked: list[float] = []

    class Counting(SqliteSeries):
        async def pods(self, start: float, end: float) -> dict[tuple[str, str], float | None]:
            asked.append(end)
            return await super().pods(start, end)

    clock = Clock()
    p = parts(history=None, clock=clock)
    p.history = Counting(history)
    client = await aiohttp_client(root_app(p))
    await sign_in(client)
    for _ in range(3):
        assert (await client.get(f"{API}/ended")).status == 200
    assert asked == [NOW]
    clock.now = NOW + 31
    assert (await client.get(f"{API}/ended")).status == 200
    assert asked == [NOW, NOW + 31]
