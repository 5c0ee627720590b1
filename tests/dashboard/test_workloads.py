"""A workload's page: its pods found by their controller (live) and by the names the
controller gives (ended), their usage summed step by step from the history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kubepulse.dashboard.workloads import summed
from kubepulse.history.file import History
from tests.api.conftest import MI, pod_object
from tests.dashboard.conftest import NOW, MakeDashboard, inventory, parts, root_app, sign_in
from tests.dashboard.test_browser import (  # noqa: F401 (fixtures)
    Server,
    Watched,
    browser,
    expect,
    screenshot,
    watched,
)
from tests.dashboard.test_browser import sign_in as sign_in_page

Client = TestClient[Any, Any]
API = "/dashboard/api"
HASH = "5f6c7d"


def replica(name: str, deployment: str = "shop") -> dict[str, Any]:
    pod = pod_object("default", name, "node-a", {"pod-template-hash": HASH}, ["app"])
    pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": f"{deployment}-{HASH}",
            "uid": "rs",
            "controller": True,
        }
    ]
    return pod


LIVE = [f"shop-{HASH}-abcde", f"shop-{HASH}-fghij"]
ENDED = f"shop-{HASH}-zzzzz"
OTHER = f"shop-api-{HASH}-qwert"  # another Deployment's pod, named alike
CPU = {LIVE[0]: 100, LIVE[1]: 200, ENDED: 400, OTHER: 800}  # millicores each


def record(history: History) -> None:
    rows = []
    for name, millicores in CPU.items():
        last = NOW - 1800 if name == ENDED else NOW
        for ts in range(int(NOW - 3600), int(last) + 1, 30):
            rows.append(("pod", "default", name, "", ts, millicores * 10**6, millicores * MI))
    history.record(rows)
    assert history.flush(timeout=10)


async def dashboard(make_dashboard: MakeDashboard, history: History) -> Client:
    record(history)
    pods = [replica(n) for n in LIVE] + [replica(OTHER, "shop-api")]
    client = await make_dashboard(pods_and_nodes=inventory(pods))
    await sign_in(client)
    return client


async def test_a_deployments_page_sums_its_live_and_ended_pods_and_no_others(
    make_dashboard: MakeDashboard, history: History
) -> None:
    client = await dashboard(make_dashboard, history)
    resp = await client.get(f"{API}/workloads/default/Deployment/shop?range=1h")
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert [p["name"] for p in data["pods"]] == LIVE
    assert data["live"] == 2 and data["ended"] == [ENDED] and data["summed"] == 3
    assert all(p["owner"] == {"kind": "Deployment", "name": "shop"} for p in data["pods"])
    by_time = {t: cpu for t, cpu, _ in data["series"]}
    ended_at = NOW - 1800
    assert {cpu for t, cpu in by_time.items() if t < ended_at - 60} == {700.0}  # 100+200+400
    assert {cpu for t, cpu in by_time.items() if t > ended_at + 60} == {300.0}  # 100+200


async def test_a_pod_names_its_workload(make_dashboard: MakeDashboard, history: History) -> None:
    client = await dashboard(make_dashboard, history)
    data = await (await client.get(f"{API}/pods/default/{LIVE[0]}")).json()
    assert data["pod"]["owner"] == {"kind": "Deployment", "name": "shop"}
    plain = await (await client.get(f"{API}/pods/default/web-1")).json()
    assert plain["pod"]["owner"] is None


async def test_an_unknown_workload_or_kind_is_404_with_why(
    make_dashboard: MakeDashboard, history: History
) -> None:
    client = await dashboard(make_dashboard, history)
    missing = await client.get(f"{API}/workloads/default/Deployment/nope")
    assert missing.status == 404
    assert (await missing.json())["error"] == (
        "no Deployment default/nope, and no history of its pods"
    )
    odd = await client.get(f"{API}/workloads/default/Service/shop")
    assert odd.status == 404
    assert (await odd.json())["error"] == "no Service default/shop"


async def test_a_workloads_suggestion_pools_its_pods_over_the_week_live_and_ended(
    make_dashboard: MakeDashboard, history: History
) -> None:
    """40 quarter-hours of each of shop's three pods (the ended one two days ago, out
    of the page's hour): 120 points together where each pod alone has too few, as
    `kubepulse recommend` pools a Deployment's replicas."""
    rows = []
    for name in (*LIVE, ENDED):
        end = NOW - 2 * 86400 if name == ENDED else NOW
        for k in reversed(range(40)):  # oldest first, as samples come
            rows.append(("container", "default", name, "app", end - k * 900, CPU[name] * 10**6, MI))
    history.record(rows)
    assert history.flush(timeout=10)
    client = await dashboard(make_dashboard, history)
    data = await (await client.get(f"{API}/workloads/default/Deployment/shop?range=1h")).json()
    assert data["containers"] == [
        {"name": "app", "cpu": {"request": 100}, "memory": {"request": 70 * MI}}
    ]
    [hint] = data["rightsize"]
    # (a bucket still open when asked is not a point yet: up to one fewer per pod)
    assert 117 <= hint["points"] <= 120 and hint["reason"] is None
    assert hint["cpu_request"] == 400  # the highest pod's p95, as KRR takes it
    assert hint["memory_request"] == 100 * MI  # recommend's floor
    # One pod alone: too few points for a suggestion, and no guess.
    alone = await (await client.get(f"{API}/pods/default/{LIVE[0]}?range=1h")).json()
    assert alone["rightsize"][0]["reason"] == "not enough data: 39 points of 100 required"


def test_steps_are_summed_where_they_meet_and_kept_where_only_one_pod_has_them() -> None:
    a = [[0.0, 1.0, 10.0], [30.0, 2.0, 20.0]]
    b = [[30.0, 5.0, 50.0], [60.0, 7.0, 70.0]]
    assert summed([a, b]) == [[0.0, 1.0, 10.0], [30.0, 7.0, 70.0], [60.0, 7.0, 70.0]]
    assert summed([]) == []


# -- in Chromium -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    history = History(tmp_path_factory.mktemp("history") / "history.db")
    record(history)

    async def build() -> web.Application:
        pods = [replica(n) for n in LIVE] + [replica(OTHER, "shop-api")]
        return root_app(parts(history, pods_and_nodes=inventory(pods)))

    s = Server(build)
    yield s
    s.stop()
    history.close()


def test_a_namespace_lists_its_workloads_and_a_workload_page_charts_their_sum(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in_page(page, server)
    page.goto(server.url + "#/namespaces/default")
    workloads = page.locator("#workloads-table")
    expect(workloads.locator("tbody tr")).to_have_count(2)  # shop and shop-api
    workloads.get_by_role("link", name="shop", exact=True).click()
    expect(page.locator("#workload-name")).to_have_text("default/shop")
    # The workload's own charts: the namespace page's two may not be gone yet.
    page.wait_for_function(
        """() => [...window.KubepulseCharts.instances].map((c) => c.spec.title).sort().join()
                 === "CPU, all pods,Memory, all pods" """
    )
    expect(page.locator("#workload-info")).to_have_text(
        "2 pods running, 1 ended in this range · CPU \u2013 · Memory \u2013"
        " · the charts sum all of them"
    )  # no pod of it has metrics in the store: a dash, not 0
    found = page.evaluate(
        """() => [...window.KubepulseCharts.instances].map((c) => ({
            title: c.spec.title, min: c.plot.scales.x.min, max: c.plot.scales.x.max,
            ys: c.plot.data[1].filter((y) => y !== null)}))"""
    )
    cpu = next(c for c in found if c["title"] == "CPU, all pods")
    assert cpu["max"] - cpu["min"] == pytest.approx(3600, abs=1)
    assert set(cpu["ys"]) == {700.0, 300.0}  # with the ended pod, then without it
    screenshot(page, "workload")
    rows = page.locator("table tbody tr", has=page.get_by_role("link", name=LIVE[0]))
    rows.first.get_by_role("link", name=LIVE[0]).click()
    expect(page.locator("#pod-owner")).to_have_text("shop")
    screenshot(page, "workload-pod")
