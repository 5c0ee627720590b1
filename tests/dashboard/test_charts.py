"""The charts in real Chromium: they span the range asked for, keep gaps, have room for
every label, survive a refresh, put a zoom in the URL; an ended pod keeps its page; no
view is wider than a 420 px screen. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kubepulse.history.file import History
from tests.api.conftest import MI
from tests.dashboard.conftest import NOW, inventory, parts, root_app
from tests.dashboard.test_browser import (  # noqa: F401 (fixtures)
    Server,
    Watched,
    browser,
    expect,
    screenshot,
    sign_in,
    watched,
)

DASH = "\u2013"  # what an empty cell shows
GAP = (NOW - 2400, NOW - 600)  # node-a has no samples in between
RANGES = {"15m": 900, "1h": 3600, "24h": 86400, "30d": 30 * 86400}


def gapped_history(path: Path) -> History:
    history = History(path)
    rows = []
    for ts in range(int(NOW - 3600), int(NOW) + 1, 15):
        if GAP[0] < ts < GAP[1]:
            continue
        cpu = 1_500_000_000 + (ts % 300) * 1_000_000  # about 1.5 to 1.8 cores
        rows.append(("node", "", "node-a", "", ts, cpu, 6 * 1024 * MI))
        rows.append(("cluster", "", "", "", ts, cpu + 250_000_000, 7 * 1024 * MI))
        rows.append(("pod", "default", "web-1", "", ts, 300_000_000, 3 * MI))
        rows.append(("container", "default", "web-1", "nginx", ts, 100_000_000, MI))
        rows.append(("namespace", "default", "", "", ts, 400_000_000, 5 * MI))
    for ts in range(int(NOW - 7 * 86400), int(NOW - 3600), 300):  # nginx's week, at 20m
        rows.append(("container", "default", "web-1", "nginx", ts, 20_000_000, MI))
    for ts in range(int(NOW - 3000), int(NOW - 1800), 15):  # a pod that ended
        rows.append(("pod", "default", "batch-7", "", ts, 900_000_000, 40 * MI))
        rows.append(("container", "default", "batch-7", "worker", ts, 900_000_000, 40 * MI))
    history.record(rows)
    assert history.flush(timeout=10)
    return history


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    history = gapped_history(tmp_path_factory.mktemp("history") / "history.db")

    async def build() -> web.Application:
        return root_app(parts(history, pods_and_nodes=inventory()))

    s = Server(build)
    yield s
    s.stop()
    history.close()


def charts(page: Any) -> list[dict[str, Any]]:
    """What each chart on the page shows, read from its uPlot instance."""
    result: list[dict[str, Any]] = page.evaluate(
        """() => [...window.KubepulseCharts.instances].map((c) => ({
            min: c.plot.scales.x.min, max: c.plot.scales.x.max,
            ys: c.plot.data[1], title: c.spec.title, width: c.plot.width,
            labels: c.plot.axes[1]._values, size: c.plot.axes[1]._size,
            label_width: window.KubepulseCharts.labelWidth(c.plot.axes[1]._values),
        }))"""
    )
    return result


def open_pods(page: Any, server: Server) -> Any:
    """Signed in, on the pods view with its rows shown: the table."""
    sign_in(page, server)
    page.goto(server.url + "#/pods")
    table = page.locator("#pods-table")
    expect(table.locator("tbody tr").first).to_be_visible()
    return table


def open_node(page: Any, server: Server, hash_: str) -> None:
    page.goto(server.url + hash_)
    expect(page.locator("#node-name")).to_have_text("node-a")
    # The node's own two charts: the overview's two (shown at sign-in) may not be gone yet.
    page.wait_for_function(
        """() => [...window.KubepulseCharts.instances].map((c) => c.spec.title).sort().join()
                 === "CPU,Memory" """
    )


@pytest.mark.parametrize("label", list(RANGES))
def test_the_x_axis_spans_the_range_asked_for_and_a_gap_stays_a_gap(
    server: Server, watched: Watched, label: str
) -> None:
    page = watched.page
    sign_in(page, server)
    open_node(page, server, f"#/nodes/node-a?range={label}")
    found = charts(page)
    assert len(found) == 2
    for c in found:
        assert c["max"] == pytest.approx(NOW, abs=1)
        assert c["min"] == pytest.approx(NOW - RANGES[label], abs=1)
    if label in ("1h", "24h"):  # steps finer than the gap: the line breaks there
        assert all(None in c["ys"] for c in found)
    screenshot(page, f"node-{label}")


def test_an_answer_for_a_view_already_left_does_not_redraw_the_view_shown(
    server: Server, watched: Watched
) -> None:
    """Signed in, the overview asks for its default hour; 24h is picked before that
    answer comes. When the hour's answer comes at last, the 24h charts stay 24h."""
    page = watched.page
    held: list[Any] = []
    page.route("**/dashboard/api/overview?range=1h", lambda route: held.append(route))
    with page.expect_request("**/dashboard/api/overview?range=1h"):
        sign_in(page, server)
    page.goto(server.url + "#/overview?range=24h")
    page.wait_for_function(
        """(start) => { const found = [...window.KubepulseCharts.instances];
            return found.length === 2
                && found.every((c) => Math.abs(c.plot.scales.x.min - start) <= 1); }""",
        arg=NOW - RANGES["24h"],
    )
    assert len(held) == 1
    # The left view reads the ended pods right after drawing: once it asks, it has drawn.
    with page.expect_request("**/dashboard/api/ended"):
        held[0].continue_()
    found = charts(page)
    assert len(found) == 2
    assert all(c["min"] == pytest.approx(NOW - RANGES["24h"], abs=1) for c in found)


@pytest.mark.parametrize("label", ["1h", "24h"])
def test_the_overview_draws_the_cluster_trend_over_the_range(
    server: Server, watched: Watched, label: str
) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + f"#/overview?range={label}")
    # The overview shown at sign-in has two charts of the default range: wait for the
    # two of the range asked for, not only for two charts.
    page.wait_for_function(
        """(start) => { const found = [...window.KubepulseCharts.instances];
            return found.length === 2
                && found.every((c) => Math.abs(c.plot.scales.x.min - start) <= 1); }""",
        arg=NOW - RANGES[label],
    )
    found = {c["title"]: c for c in charts(page)}
    assert set(found) == {"Cluster CPU", "Cluster memory"}
    for c in found.values():
        assert c["max"] == pytest.approx(NOW, abs=1)
        assert c["min"] == pytest.approx(NOW - RANGES[label], abs=1)
    cpu = [y for y in found["Cluster CPU"]["ys"] if y is not None]
    assert cpu and min(cpu) >= 1750 and max(cpu) <= 2050  # node-a's 1.5-1.8 cores + 250m
    memory = {y for y in found["Cluster memory"]["ys"] if y is not None}
    assert memory == {7 * 1024 * MI}
    if label == "1h":
        assert None in found["Cluster CPU"]["ys"]  # the gap in the history stays a gap
    expect(page.locator("#total-nodes")).to_be_visible()
    screenshot(page, f"overview-{label}")


@pytest.mark.parametrize("width", [420, 1400, 2560])
def test_every_axis_label_has_room_and_one_unit(
    server: Server, watched: Watched, width: int
) -> None:
    page = watched.page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server)
    open_node(page, server, "#/nodes/node-a?range=1h")
    for c in charts(page):
        assert c["labels"], c
        assert c["label_width"] + 8 <= c["size"], c  # the axis is wider than its labels
        assert c["width"] <= width
        units = {label.split(" ")[-1] if " " in label else label[-1] for label in c["labels"]}
        if c["title"] == "CPU":  # ~1.5-1.8 cores: whole or half cores, no "m"
            assert all(not label.endswith("m") for label in c["labels"]), c["labels"]
        else:
            assert {u for u in units if u != "0"} == {"Gi"}, c["labels"]
    # Two charts share the row at 1400 px and more: no fixed width leaves it half empty.
    if width >= 1400:
        assert sum(c["width"] for c in charts(page)) > 0.8 * (width - 64)


def test_a_hover_and_a_zoom_survive_refreshes_and_the_zoom_is_in_the_url(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    open_node(page, server, "#/nodes/node-a?range=1h")
    page.evaluate("() => { window.firstPlot = [...window.KubepulseCharts.instances][0].plot; }")
    legend = page.locator(".chart").first.locator(".u-legend .u-series").nth(1).locator(".u-value")
    expect(legend).to_contain_text("latest")  # not hovering: the range's summary
    over = page.locator(".chart .u-over").first
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    expect(legend).not_to_contain_text("latest")
    hovered = legend.inner_text()
    status = page.locator("#status")
    for _ in range(2):  # the test dashboard polls every second
        before = status.inner_text()
        expect(status).not_to_have_text(before, timeout=5000)
    assert legend.inner_text() == hovered
    assert page.evaluate("() => [...window.KubepulseCharts.instances][0].plot === window.firstPlot")
    # Drag across the middle of the plot: both charts zoom, and the URL says to what.
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 20, steps=5)
    page.mouse.up()
    page.wait_for_function("() => location.hash.includes('from=')")
    zoomed = charts(page)
    span = zoomed[0]["max"] - zoomed[0]["min"]
    assert 0.2 * 3600 < span < 0.4 * 3600
    assert zoomed[1]["min"] == zoomed[0]["min"]
    url = page.url
    status_text = status.inner_text()
    expect(status).not_to_have_text(status_text, timeout=5000)  # refreshed: still zoomed
    assert charts(page)[0]["min"] == zoomed[0]["min"]
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function("() => window.KubepulseCharts.instances.size === 2")
    reopened = charts(page)[0]
    assert abs(reopened["min"] - zoomed[0]["min"]) <= 1
    assert abs(reopened["max"] - zoomed[0]["max"]) <= 1


def test_a_pod_that_ended_shows_its_history(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + "#/pods/default/batch-7?range=1h")
    expect(page.locator("#pod-ended")).to_contain_text("last seen")
    page.wait_for_function("() => window.KubepulseCharts.instances.size === 4")
    assert all(any(y is not None for y in c["ys"]) for c in charts(page))
    screenshot(page, "pod-ended")


@pytest.mark.parametrize(
    "hash_",
    [
        "#/overview",
        "#/nodes",
        "#/nodes/node-a",
        "#/pods",
        "#/pods/default/web-1",
        "#/namespaces",
        "#/namespaces/default",
        "#/settings",
    ],
)
def test_no_view_is_wider_than_a_small_screen(server: Server, watched: Watched, hash_: str) -> None:
    page = watched.page
    page.set_viewport_size({"width": 420, "height": 800})
    sign_in(page, server)
    page.goto(server.url + hash_)
    expect(page.locator("#status")).to_contain_text("Updated")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 420
    screenshot(page, "narrow-" + hash_.strip("#/").replace("/", "-"))


def test_the_nodes_pod_table_has_a_cell_under_each_header(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    open_node(page, server, "#/nodes/node-a")
    table = page.locator("table").last
    expect(table.locator("tbody tr").first).to_be_visible()
    headers = table.locator("th").all_inner_texts()
    assert "Node" not in headers  # the page is the node's
    for row in table.locator("tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        assert len(cells) == len(headers)
        assert "null" not in cells


def test_the_dashboards_own_error_reaches_the_page(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + "#/pods/default/never-was")
    expect(page.locator("#view-error")).to_have_text(
        "no pod default/never-was, and no history of it"
    )
    expect(page.locator("#status")).to_have_text("Update failed")
    screenshot(page, "pod-unknown")
    # Chromium logs the 404 itself, at each poll: leave the page, then nothing else may
    # have been logged.
    page.goto("about:blank")
    watched.errors[:] = [e for e in watched.errors if "status of 404 (Not Found)" not in e]


def test_pods_show_usage_against_requests_and_limits_and_sort_by_it(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    table = open_pods(page, server)
    items = page.evaluate("async () => (await (await fetch('api/pods')).json()).items")
    headers = table.locator("th").all_inner_texts()
    cpu_pct, mem_pct = headers.index("CPU % req"), headers.index("Mem % limit")
    by_name = {}
    for row in table.locator("tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        by_name[row.locator("td a").first.inner_text()] = cells
    for p in items:
        cells = by_name[p["name"]]
        used, request = p["cpu"]["used"], p["cpu"]["request"]
        want = f"{round(100 * used / request)}%" if used is not None and request else DASH
        assert cells[cpu_pct] == want, (p, cells)
        used, limit = p["memory"]["used"], p["memory"]["limit"]
        want = f"{round(100 * used / limit)}%" if used is not None and limit else DASH
        assert cells[mem_pct] == want, (p, cells)
    # Sorting by a header: descending first for numbers; the order holds across a refresh.
    table.locator("th", has_text="CPU % req").click()
    expect(table.locator("th", has_text="CPU % req")).to_have_attribute("aria-sort", "descending")

    def column() -> list[float]:
        values = table.locator(f"tbody tr td:nth-child({cpu_pct + 1})").all_inner_texts()
        return [float(v.rstrip("%")) if v != DASH else -1 for v in values]

    assert column() == sorted(column(), reverse=True)
    status = page.locator("#status").inner_text()
    expect(page.locator("#status")).not_to_have_text(status, timeout=5000)
    assert column() == sorted(column(), reverse=True)
    screenshot(page, "pods-requests")


def test_badge_thresholds_are_the_users_and_stay_in_the_browser(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    table = open_pods(page, server)
    items = page.evaluate("async () => (await (await fetch('api/pods')).json()).items")
    share = {
        p["name"]: 100 * p["memory"]["used"] / p["memory"]["limit"]
        for p in items
        if p["memory"]["used"] is not None and p["memory"]["limit"]
    }
    assert share and min(share.values()) < 90  # a pod the default leaves without a badge

    def near(threshold: float) -> set[str]:
        return {name for name, pct in share.items() if pct >= threshold}

    def badged() -> set[str]:
        rows = table.locator("tbody tr", has=page.locator(".badge", has_text="memory near limit"))
        return {r.locator("td a").first.inner_text() for r in rows.all()}

    assert badged() == near(90)
    lower = max(1, math.floor(min(share.values())))
    page.goto(server.url + "#/settings")
    page.locator("input[name=nearLimit]").fill(str(lower))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-saved")).to_have_text("Saved in this browser.")
    page.reload()  # kept in this browser: the form shows it again
    expect(page.locator("input[name=nearLimit]")).to_have_value(str(lower))
    page.goto(server.url + "#/pods")
    table = page.locator("#pods-table")
    expect(table.locator(".badge", has_text="memory near limit")).to_have_count(len(near(lower)))
    assert badged() == near(lower) != near(90)
    page.goto(server.url + "#/settings")
    page.locator("#settings-reset").click()
    expect(page.locator("input[name=nearLimit]")).to_have_value("90")


def test_a_table_downloads_as_csv_and_json_in_the_order_shown(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    table = open_pods(page, server)
    table.get_by_role("columnheader", name="Name", exact=True).click()  # ascending
    names = table.locator("tbody tr td:nth-child(2) a").all_inner_texts()
    assert names == sorted(names)
    with page.expect_download() as csv_download:
        page.locator(".downloads a", has_text="CSV").click()
    csv_text = Path(csv_download.value.path()).read_text()
    lines = csv_text.splitlines()
    assert lines[0].startswith("Namespace,Name,Node,CPU,CPU req,CPU % req,Memory")
    assert [line.split(",")[1] for line in lines[1:]] == names
    with page.expect_download() as json_download:
        page.locator(".downloads a", has_text="JSON").click()
    rows = json.loads(Path(json_download.value.path()).read_text())
    assert [r["Name"] for r in rows] == names
    assert {"CPU % req", "Mem % limit"} <= set(rows[0])


def test_keys_go_to_views_and_slash_filters_pods(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    page.keyboard.press("g")
    page.keyboard.press("n")
    expect(page).to_have_url(server.url + "#/nodes")
    page.keyboard.press("/")
    expect(page).to_have_url(server.url + "#/pods")
    expect(page.locator("input[name=name]")).to_be_focused()
    page.keyboard.type("g")  # typing in the field is not a shortcut
    expect(page).to_have_url(server.url + "#/pods")
    page.locator("#view").click(position={"x": 5, "y": 5})
    page.keyboard.press("g")
    page.keyboard.press("o")
    expect(page).to_have_url(server.url + "#/overview")


def test_a_charts_points_are_a_table_and_a_csv_of_its_range(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    open_node(page, server, "#/nodes/node-a?range=1h")
    chart = page.locator(".chart").first
    chart.locator("summary").click()
    rows = chart.locator(".points tbody tr")
    expect(rows.first).to_be_visible()
    count = rows.count()
    assert count == len([y for y in charts(page)[0]["ys"] if y is not None])
    with page.expect_download() as download:
        chart.locator(".points a", has_text="Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "time,unix_seconds,cpu_millicores"
    assert len(lines) == count + 1
    assert all(NOW - 3600 <= float(line.split(",")[1]) <= NOW for line in lines[1:])


def test_the_legend_sums_up_the_range_when_nothing_is_hovered(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    open_node(page, server, "#/nodes/node-a?range=1h")
    values = sorted(y for y in charts(page)[0]["ys"] if y is not None)  # millicores
    p95 = values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]

    def cores(m: float) -> str:
        return f"{m / 1000:.2f}"  # kubectl's form from one core up

    legend = page.locator(".chart").first.locator(".u-legend .u-series").nth(1).locator(".u-value")
    expect(legend).to_contain_text(f"p95 {cores(p95)} · max {cores(values[-1])}")


def test_each_sparkline_says_its_scale(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + "#/nodes")
    row = page.locator("#nodes-table tbody tr", has_text="node-a")
    expect(row.locator(".spark-max")).to_contain_text("max ")
    expect(
        page.locator("#nodes-table tbody tr", has_text="node-b").locator(".spark-max")
    ).to_have_text("no history yet")


def test_a_namespace_has_its_charts_and_its_pods(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + "#/namespaces")
    page.locator("a", has_text="default").first.click()
    expect(page).to_have_url(server.url + "#/namespaces/default")
    expect(page.locator("#namespace-name")).to_have_text("default")
    page.wait_for_function("() => window.KubepulseCharts.instances.size === 2")
    found = charts(page)
    assert {y for y in found[0]["ys"] if y is not None} == {400.0}  # millicores
    assert found[0]["max"] == pytest.approx(NOW, abs=1)
    names = page.locator("table tbody tr td:nth-child(2) a").all_inner_texts()
    assert "web-1" in names and all(n != "coredns-7db6d8ff4d-x2x9p" for n in names)
    page.goto(server.url + "#/namespaces/nowhere")
    expect(page.locator("#view-error")).to_have_text("no namespace nowhere, and no history of it")
    screenshot(page, "namespace-unknown")
    # The 404s asked for are expected: leave the page first, since each poll asks again.
    page.goto("about:blank")
    watched.errors[:] = [e for e in watched.errors if "status of 404 (Not Found)" not in e]


def test_the_overview_lists_pods_that_ended_and_links_to_their_history(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    ended = page.locator("#ended-pods")
    expect(ended.locator("tbody tr")).to_have_count(1)  # batch-7; live pods are not listed
    expect(ended.locator("a")).to_have_text("batch-7")
    ended.locator("a").click()
    expect(page).to_have_url(server.url + "#/pods/default/batch-7")
    expect(page.locator("#pod-ended")).to_contain_text("last seen")


def test_a_pods_page_says_its_status_age_restarts_and_labels(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + "#/pods/default/web-1")
    expect(page.locator("#pod-phase")).to_have_text("Status Running")
    expect(page.locator("#pod-age")).to_have_text(re.compile(r"^Age \d+d$"))  # created 2021
    expect(page.locator(".facts")).to_contain_text("Restarts 0")
    expect(page.locator(".labels .badge").first).to_contain_text("=")


def test_a_request_far_above_a_weeks_use_gets_a_hint_with_the_suggested_request(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + "#/pods/default/web-1?range=7d")
    nginx = page.locator("#pod-rightsize [data-container=nginx]")
    # A week at 20m (and its last hour at 100m: under 5% of the steps) against a 100m
    # request; memory's suggestion is recommend's floor, 100Mi, against 70Mi.
    expect(nginx).to_have_text(
        "nginx: CPU request 100m, suggested 20m (p95 20m) · "
        "memory request 70 Mi, suggested 100 Mi (peak 1 Mi + 15%) request far above use"
    )
    expect(nginx.locator(".badge")).to_have_attribute(
        "title", "CPU request at 200% or more of the suggestion (Settings)"
    )
    shipper = page.locator("#pod-rightsize [data-container=log-shipper]")
    expect(shipper).to_contain_text("log-shipper: not enough data: 0 points of 100 required")
    page.wait_for_function(
        """() => [...window.KubepulseCharts.instances].filter((c) => c.spec.lines.suggested)
                 .map((c) => c.spec.lines.suggested).join() === "20,104857600" """
    )
    # The CPU chart shades the week's p50 to p95, where the suggestion comes from.
    banded = page.evaluate(
        """() => [...window.KubepulseCharts.instances].filter((c) => c.plot.bands.length)
                 .map((c) => ({kind: c.spec.kind,
                   edges: c.plot.bands[0].series.map((i) => [c.plot.series[i].label,
                                                             c.plot.data[i][0]])}))"""
    )
    assert banded == [{"kind": "cpu", "edges": [["p95", 20], ["p50", 20]]}]
    screenshot(page, "pod-rightsize")
    # The threshold is the user's: from 600% of the suggestion, 100m over 20m is not far.
    page.goto(server.url + "#/settings")
    page.locator("input[name=farAbove]").fill("600")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-saved")).to_have_text("Saved in this browser.")
    page.goto(server.url + "#/pods/default/web-1?range=7d")
    expect(nginx).to_contain_text("suggested 20m")
    expect(nginx.locator(".badge")).to_have_count(0)


def test_time_labels_neither_collide_nor_leave_the_chart(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    for width in (420, 1400):
        page.set_viewport_size({"width": width, "height": 900})
        for label in RANGES:
            open_node(page, server, f"#/nodes/node-a?range={label}")
            # The same two charts stay across a range change: wait until they show the new one,
            # laid out for this width.
            page.wait_for_function(
                """([span, width]) => [...window.KubepulseCharts.instances].every((c) =>
                    Math.abs(c.plot.scales.x.max - c.plot.scales.x.min - span) <= 2
                    && c.plot.width <= width)""",
                arg=[RANGES[label], width],
            )
            placed = page.evaluate(
                """() => [...window.KubepulseCharts.instances].map((c) => {
                    const u = c.plot, axis = u.axes[0];
                    const left = u.bbox.left / devicePixelRatio;
                    return axis._splits.map((v, i) => ({
                        x: left + u.valToPos(v, "x"),
                        w: window.KubepulseCharts.labelWidth(String(axis._values[i]).split("\\n")),
                        chart: u.width, shown: axis._values[i] !== null,
                    })).filter((a) => a.shown);  // a label left out is not drawn
                })"""
            )
            for labels in placed:
                assert labels, label
                for a in labels:
                    assert a["x"] - a["w"] / 2 >= 0 and a["x"] + a["w"] / 2 <= a["chart"], (
                        label,
                        a,
                    )
                for a, b in pairwise(labels):
                    assert b["x"] - a["x"] >= (a["w"] + b["w"]) / 2, (label, width, a, b)


def test_dark_mode_applies_to_the_charts_at_once(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server)
    open_node(page, server, "#/nodes/node-a?range=1h")
    light = page.evaluate("() => [...window.KubepulseCharts.instances].map((c) => c.colors.grid)")
    page.locator("#theme-toggle").click()
    dark_line = page.evaluate(
        "() => getComputedStyle(document.documentElement).getPropertyValue('--line').trim()"
    )
    page.wait_for_function("() => window.KubepulseCharts.instances.size === 2")
    dark = page.evaluate("() => [...window.KubepulseCharts.instances].map((c) => c.colors.grid)")
    assert dark == [dark_line, dark_line] and dark != light
    screenshot(page, "node-dark")


def test_the_right_sizing_view_lists_each_container_largest_change_first(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server)
    page.goto(server.url + "#/rightsizing")
    rows = page.locator("#rightsize-table tbody tr")
    # web-1's nginx: a week at 20m against a 100m request, and 100 Mi (recommend's floor)
    # against 70 Mi: the largest change, so the first row, with the pod page's badge.
    nginx = page.locator('#rightsize-table tr[data-container="default/web-1/nginx"]')
    expect(nginx.locator("td")).to_have_text(
        [
            "default",
            "web-1",
            "nginx",
            "100m",
            "20m",
            "\u221280m",  # a minus sign, as the page prints it
            "70 Mi",
            "100 Mi",
            "+30 Mi",
            "request far above use",
        ]
    )
    expect(rows.first).to_have_attribute("data-container", "default/web-1/nginx")
    shipper = page.locator('#rightsize-table tr[data-container="default/web-1/log-shipper"]')
    expect(shipper.locator("td").last).to_have_text("not enough data: 0 points of 100 required")
    screenshot(page, "rightsizing")
    # The same rows from the API, and a namespace narrows them.
    answer = page.request.get(server.url + "api/rightsizing?namespace=default").json()
    assert answer["history"] is True
    assert {(r["pod"], r["name"]) for r in answer["items"]} >= {
        ("web-1", "nginx"),
        ("web-1", "log-shipper"),
    }
    assert {r["namespace"] for r in answer["items"]} == {"default"}
    first = answer["items"][0]
    assert (first["cpu_current"], first["cpu_request"], first["cpu_change"]) == (100, 20, -80)
    # A row opens the pod's page over the suggestion's week.
    nginx.click()
    page.wait_for_url(re.compile(r"#/pods/default/web-1\?range=7d$"))
    expect(page.locator("#pod-rightsize [data-container=nginx]")).to_contain_text("suggested 20m")
