"""Kubernetes mode in real Chromium: the page shows the actions each user's RBAC allows
(asked of the fake kube-apiserver by SelfSubjectAccessReview with their own token), and
scaling, deleting, editing, creating and reading logs from the page change the fake."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kubepulse.api.authn import ReviewClient
from tests.dashboard.conftest import root_app
from tests.dashboard.kubemode import BOB, JANE, WEB_PODS, cluster_parts, populate
from tests.dashboard.test_browser import (
    CHROMIUM,
    Server,
    Watched,
    browser,
    expect,
    playwright_sync,
    screenshot,
    sign_in,
    watched,
)
from tests.fakeapi.server import FakeKubeAPI
from tests.support import wait_for

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
__all__ = ["browser", "watched"]  # fixtures, shared with the local-mode browser tests

Page = playwright_sync.Page
POD_VIEW = f"#/pods/team-a/{WEB_PODS[0]}"


def containing(text: str) -> re.Pattern[str]:
    """For to_have_value: a value that holds text somewhere."""
    return re.compile(re.escape(text))


def refusals_only(watched: Watched, *codes: int) -> None:
    """Chromium logs every 4xx answer to fetch as a console error: those the test caused
    on purpose are expected, anything else still fails the test."""
    watched.errors = [e for e in watched.errors if not any(f" {c} " in e for c in codes)]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        populate(api)
        yield api


@pytest.fixture(scope="module")
def server(fake: FakeKubeAPI) -> Iterator[Server]:
    async def build() -> web.Application:
        reviews = ReviewClient(fake.credentials())
        await reviews.__aenter__()
        app = root_app(cluster_parts(fake, reviews))

        async def close(_app: web.Application) -> None:
            await reviews.__aexit__(None, None, None)

        app.on_cleanup.append(close)
        return app

    s = Server(build)
    yield s
    s.stop()


def pod_actions(page: Page) -> playwright_sync.Locator:
    """The pod's own row of buttons, once the page has asked what the user may do."""
    row = page.locator('#pod-actions .buttons[data-kind="Pod"]')
    expect(row).to_be_visible()
    return row


def owner_actions(page: Page) -> playwright_sync.Locator:
    row = page.locator('#pod-actions .buttons[data-kind="Deployment"]')
    expect(row).to_be_visible()
    return row


def test_a_viewer_sees_no_delete_button_where_rbac_says_no(
    server: Server, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, server, "#/pods", BOB, "bob")
    expect(page.locator("#pods-table tbody tr")).to_have_count(2)  # team-a's pods only
    page.goto(server.url + POD_VIEW)
    row = pod_actions(page)
    expect(row).to_have_text("You may not change this Pod.")
    assert page.locator("#pod-actions button").count() == 0
    # bob may not read the ReplicaSet, so its Deployment is not found: no owner actions.
    expect(page.locator("#pod-actions h3")).to_contain_text("Controlled by ReplicaSet")
    screenshot(page, "kube-pod-viewer")
    page.goto(server.url + "#/namespaces")
    expect(page.locator("main tbody tr")).to_have_count(1)
    expect(page.locator("main tbody tr")).to_contain_text("team-a")
    screenshot(page, "kube-namespaces-viewer")


def test_a_developer_sees_and_uses_delete_where_rbac_says_yes(
    server: Server, watched: Watched, fake: FakeKubeAPI
) -> None:
    page = watched.page
    sign_in(page, server, f"#/pods/team-a/{WEB_PODS[1]}", JANE, "jane")
    row = pod_actions(page)
    expect(row.get_by_role("button", name="Delete")).to_be_visible()
    expect(row.get_by_role("button", name="Logs")).to_be_visible()
    expect(row.get_by_role("button", name="Edit YAML")).to_have_count(0)  # no update on pods
    expect(page.locator("#pod-actions h3")).to_have_text("Controlled by Deployment web")
    expect(owner_actions(page).get_by_role("button", name="Delete")).to_be_visible()
    screenshot(page, "kube-pod-developer")
    row.get_by_role("button", name="Delete").click()
    confirm = row.get_by_role("button", name="Yes, delete")
    expect(confirm).to_be_focused()
    page.keyboard.press("Escape")  # changed my mind: nothing happens
    expect(confirm).to_be_hidden()
    assert fake.get("pods", WEB_PODS[1], "team-a") is not None
    row.get_by_role("button", name="Delete").click()
    page.keyboard.press("Enter")
    expect(page).to_have_url(server.url + "#/pods?namespace=team-a")
    wait_for(lambda: fake.get("pods", WEB_PODS[1], "team-a") is None, 10, "the pod deleted")


def test_scale_from_the_page(server: Server, watched: Watched, fake: FakeKubeAPI) -> None:
    page = watched.page
    sign_in(page, server, POD_VIEW, JANE, "jane")
    replicas = owner_actions(page).locator("input.scale-replicas")
    expect(replicas).to_have_value("2")
    replicas.fill("4")
    owner_actions(page).get_by_role("button", name="Scale").click()
    expect(page.locator("#actions-message")).to_have_text("Deployment web scaled to 4.")
    assert fake.get("deployments", "web", "team-a")["spec"]["replicas"] == 4
    replicas.fill("-1")
    owner_actions(page).get_by_role("button", name="Scale").click()
    expect(page.locator("#actions-message")).to_contain_text(
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1'
    )
    expect(page.locator("#actions-message")).to_have_class("message error")
    screenshot(page, "kube-scale-refused")
    refusals_only(watched, 422)
    fake.update("deployments", "web", lambda d: d["spec"].update(replicas=2), "team-a")


def test_the_logs_panel_shows_a_script_line_as_text(server: Server, watched: Watched) -> None:
    page = watched.page
    sign_in(page, server, POD_VIEW, JANE, "jane")
    pod_actions(page).get_by_role("button", name="Logs").click()
    logs = page.locator("#logs-text")
    expect(logs).to_contain_text("<script>alert(1)</script>")
    expect(logs).to_contain_text("listening on :8080")
    assert page.locator("#logs-text *").count() == 0  # text only, no elements
    page.select_option("#logs-container", "sidecar")
    expect(logs).to_have_text("sidecar up\n")
    page.select_option("#logs-container", "app")
    page.fill("#logs-tail", "1")
    page.press("#logs-tail", "Enter")
    expect(logs).to_have_text("ready\n")
    screenshot(page, "kube-logs")


def test_edit_yaml_shows_a_conflict_and_saves_after_reload(
    server: Server, watched: Watched, fake: FakeKubeAPI
) -> None:
    page = watched.page
    sign_in(page, server, POD_VIEW, JANE, "jane")
    owner_actions(page).get_by_role("button", name="Edit YAML").click()
    editor = page.locator("#yaml-editor")
    expect(editor).to_be_focused()
    expect(editor).to_have_value(containing("name: web"))
    fake.update(
        "deployments", "web", lambda d: d["metadata"].update(labels={"changed": "yes"}), "team-a"
    )
    page.click("#yaml-save")
    expect(page.locator("#yaml-message")).to_contain_text(
        'Operation cannot be fulfilled on deployments.apps "web"'
    )
    screenshot(page, "kube-edit-conflict")
    refusals_only(watched, 409)
    page.get_by_role("button", name="Reload").click()
    expect(editor).to_have_value(containing("changed: 'yes'"))
    editor.fill(editor.input_value().replace("changed: 'yes'", "changed: 'again'"))
    page.click("#yaml-save")
    expect(page.locator("#yaml-message")).to_contain_text("Saved: resourceVersion")
    labels = fake.get("deployments", "web", "team-a")["metadata"]["labels"]
    assert labels == {"changed": "again"}


def test_create_from_typed_yaml_and_from_a_file(
    server: Server, watched: Watched, fake: FakeKubeAPI, tmp_path: Path
) -> None:
    page = watched.page
    sign_in(page, server, "", JANE, "jane")
    page.click("#nav-create")
    expect(page.locator("h1")).to_have_text("Create from YAML")
    page.fill("#create-namespace", "team-a")
    page.fill(
        "#create-yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typed}\ndata: {a: '1'}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: <b>bold</b>}\n",
    )
    page.click("#create-submit")
    results = page.locator("#create-results li")
    expect(results).to_have_count(2)
    expect(results.nth(0)).to_have_text("ConfigMap typed in team-a: created")
    expect(results.nth(1)).to_contain_text('ConfigMap "<b>bold</b>" is invalid')
    assert page.locator("#create-results b").count() == 0
    screenshot(page, "kube-create")
    assert fake.get("configmaps", "typed", "team-a")["data"] == {"a": "1"}
    manifest = tmp_path / "settings.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-file}\n")
    page.set_input_files("#create-file", str(manifest))
    expect(page.locator("#create-yaml")).to_have_value(manifest.read_text())
    page.click("#create-submit")
    expect(results.nth(0)).to_have_text("ConfigMap from-file in team-a: created")
    assert fake.get("configmaps", "from-file", "team-a") is not None
    page.fill("#create-yaml", "kind: [")
    page.click("#create-submit")
    expect(page.locator("#create-message")).to_contain_text("the YAML cannot be read")
    refusals_only(watched, 400, 422)
