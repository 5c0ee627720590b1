"""Kubernetes mode over HTTP against the fake kube-apiserver (real TLS): what each user
sees and may do comes from their own RBAC, every call reaches the API with their own
token, and the API's refusals reach the page with its code and words."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from kubepulse.api.authn import ReviewClient, User
from kubepulse.dashboard import yamltext
from kubepulse.dashboard.sessions import COOKIE, Sessions
from kubepulse.kube.kubeconfig import Credentials
from tests.api.conftest import COREDNS
from tests.dashboard.conftest import root_app, sign_in
from tests.dashboard.kubemode import (
    BOB,
    JANE,
    LOG,
    OTHER_POD,
    STAMP_TEXT,
    WEB_PODS,
    cluster_parts,
    populate,
)
from tests.fakeapi.fixtures import kubectl
from tests.fakeapi.server import FakeKubeAPI

Client = TestClient[Any, Any]
API = "/dashboard/api"
POD = {"apiVersion": "v1", "kind": "Pod", "namespace": "team-a", "name": WEB_PODS[0]}
WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team-a", "name": "web"}
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        populate(api)
        yield api


@pytest.fixture
async def reviews(fake: FakeKubeAPI) -> AsyncIterator[ReviewClient]:
    async with ReviewClient(fake.credentials()) as client:
        yield client


@dataclass
class Page:
    """A browser's side of the dashboard: its cookie jar and the session's CSRF token."""

    client: Client
    csrf: str = ""

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        resp = await self.client.get(f"{API}/{path}", params=params)
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body

    async def send(
        self, method: str, path: str, body: Any = None, csrf: bool = True, **params: str
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        resp = await self.client.request(
            method, f"{API}/{path}", json=body, params=params, headers=headers
        )
        return resp.status, await resp.json()


@pytest.fixture
def open_page(aiohttp_client: Any, fake: FakeKubeAPI, reviews: ReviewClient) -> Any:
    async def open_(token: str | None = None, **kwargs: Any) -> Page:
        page = Page(await aiohttp_client(root_app(cluster_parts(fake, reviews, **kwargs))))
        if token is not None:
            page.csrf = await sign_in(page.client, token)
        return page

    return open_


@pytest.fixture
async def jane(open_page: Any) -> Page:
    page: Page = await open_page(JANE)
    return page


def user_calls(fake: FakeKubeAPI) -> list[tuple[str, str, str]]:
    """Every call the dashboard made to the API except sign-in's TokenReviews."""
    return [c for c in fake.calls if not c[1].startswith(TOKEN_REVIEWS)]


# ----- what each user sees


async def test_a_user_allowed_only_in_team_a_sees_only_its_pods_and_no_nodes(
    jane: Page, fake: FakeKubeAPI
) -> None:
    status, overview = await jane.get("overview")
    assert status == 200
    assert overview["nodes"] == []
    assert overview["totals"]["nodes"] == 0
    assert [n["name"] for n in overview["namespaces"]] == ["team-a"]
    _, pods = await jane.get("pods")
    assert sorted((p["namespace"], p["name"]) for p in pods["items"]) == [
        ("team-a", name) for name in WEB_PODS
    ]
    assert (await jane.get("nodes"))[1]["items"] == []
    assert (await jane.get("nodes/node-a"))[0] == 404
    assert (await jane.get(f"pods/{OTHER_POD[0]}/{OTHER_POD[1]}"))[0] == 404
    assert (await jane.get(f"pods/kube-system/{COREDNS}"))[0] == 404
    assert (await jane.get(f"pods/team-a/{WEB_PODS[0]}"))[0] == 200
    # Asked of the API with jane's own token: nodes and pods cluster-wide, then per namespace.
    asked = [r["resourceAttributes"] for r in fake.self_access_reviews]
    assert {"verb": "list", "resource": "nodes"} in asked
    assert {"verb": "list", "resource": "pods", "namespace": "team-b"} in asked
    assert {c[2] for c in fake.calls_to(SSAR)} == {f"Bearer {JANE}"}


async def test_a_user_who_may_list_nodes_counts_only_the_pods_of_namespaces_they_see(
    open_page: Any, fake: FakeKubeAPI
) -> None:
    fake.add_token("ann-token", "ann")
    fake.allow("ann", "list", "nodes")
    fake.allow("ann", "list", "pods", "team-a")
    ann: Page = await open_page("ann-token")
    admin: Page = await open_page(fake.admin_token)
    _, every_pod = await admin.get("pods")
    in_team_a: dict[str, int] = {}
    for pod in every_pod["items"]:
        if pod["namespace"] == "team-a":
            in_team_a[pod["node"]] = in_team_a.get(pod["node"], 0) + 1
    _, nodes = await ann.get("nodes")
    _, all_nodes = await admin.get("nodes")
    seen = {n["name"]: n["pods"] for n in nodes["items"]}
    assert seen == {n["name"]: in_team_a.get(n["name"], 0) for n in all_nodes["items"]}
    # The admin's counts are larger somewhere: there are pods ann must not count.
    assert any(n["pods"] > seen[n["name"]] for n in all_nodes["items"])
    for name in seen:  # the node's own page agrees with the list
        _, detail = await ann.get(f"nodes/{name}")
        assert detail["node"]["pods"] == seen[name] == len(detail["pods"])


async def test_the_admin_sees_every_node_and_pod(open_page: Any, fake: FakeKubeAPI) -> None:
    admin: Page = await open_page(fake.admin_token)
    _, overview = await admin.get("overview")
    assert overview["totals"]["nodes"] == 4
    assert {n["name"] for n in overview["namespaces"]} == {
        "default",
        "kube-system",
        "team-a",
        "team-b",
    }
    # Cluster-wide answers need no question per namespace.
    assert not any("namespace" in r["resourceAttributes"] for r in fake.self_access_reviews)


async def test_what_a_user_may_see_is_asked_once_per_session_and_kept(
    jane: Page, fake: FakeKubeAPI
) -> None:
    await jane.get("overview")
    asked = len(fake.calls_to(SSAR))
    for path in ("overview", "pods", "namespaces", "nodes"):
        assert (await jane.get(path))[0] == 200
    assert len(fake.calls_to(SSAR)) == asked


async def test_a_token_the_cluster_stops_accepting_ends_the_session(
    jane: Page, fake: FakeKubeAPI
) -> None:
    fake.remove_token(JANE)
    status, body = await jane.get("overview")
    assert (status, body) == (401, {"error": "not signed in"})
    assert (await jane.get("session"))[0] == 401  # the session is gone, not just refused


async def test_an_unreachable_api_server_is_a_503_that_says_so(
    open_page: Any, fake: FakeKubeAPI
) -> None:
    nowhere = Credentials("https://127.0.0.1:9", ca_pem=fake.ca.cert_pem())
    page: Page = await open_page(JANE, cluster=nowhere)
    status, body = await page.get("overview")
    assert status == 503
    assert body["error"].startswith("cannot ask the cluster what you may see: ")
    status, body = await page.get("yaml", **WEB)
    assert status == 502
    assert body["error"].startswith("cannot reach the API server")


# ----- what each user may do


@pytest.mark.parametrize(
    ("who", "target", "expected"),
    [
        ("jane", POD, {"create": False, "delete": True, "edit": False, "logs": True}),
        ("bob", POD, {"create": False, "delete": False, "edit": False, "logs": False}),
        (
            "jane",
            WEB,
            {"create": True, "delete": True, "edit": True, "scale": True, "restart": True},
        ),
        (
            "bob",
            WEB,
            {"create": False, "delete": False, "edit": False, "scale": False, "restart": False},
        ),
        (
            "admin",
            WEB,
            {"create": True, "delete": True, "edit": True, "scale": True, "restart": True},
        ),
        ("jane", {**WEB, "namespace": "team-b"}, {"create": False, "delete": False}),
        (
            "jane",
            {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a"},
            {"create": True},
        ),
    ],
)
async def test_can_answers_from_the_users_own_rbac(
    open_page: Any, fake: FakeKubeAPI, who: str, target: dict[str, str], expected: dict[str, bool]
) -> None:
    token = {"jane": JANE, "bob": BOB, "admin": fake.admin_token}[who]
    page: Page = await open_page(token)
    status, body = await page.get("can", **target)
    assert status == 200, body
    assert {k: v for k, v in body["actions"].items() if k in expected} == expected
    assert set(expected) <= set(body["actions"])


async def test_the_workload_of_a_pod_is_its_replicasets_deployment(jane: Page) -> None:
    status, body = await jane.get("workload", namespace="team-a", name=WEB_PODS[0])
    assert status == 200
    assert body == {
        "containers": ["app", "sidecar"],
        "owner": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "namespace": "team-a",
        },
    }


async def test_a_user_who_may_not_read_the_replicaset_sees_it_as_the_owner(
    open_page: Any,
) -> None:
    bob: Page = await open_page(BOB)
    _, body = await bob.get("workload", namespace="team-a", name=WEB_PODS[0])
    assert (body["owner"]["kind"], body["owner"]["name"]) == ("ReplicaSet", "web-5d7c9b8f6d")


# ----- create, edit, delete, scale, restart, logs

MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-settings
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
  namespace: team-a
spec:
  replicas: 1
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: worker, image: "registry.k8s.io/pause:3.10"}]
"""


async def test_create_from_yaml_makes_every_document_in_the_given_namespace(
    jane: Page, fake: FakeKubeAPI
) -> None:
    status, body = await jane.send("POST", "create", {"yaml": MANIFESTS, "namespace": "team-a"})
    assert status == 201, body
    assert [(r["kind"], r["name"], r["namespace"], r["ok"]) for r in body["results"]] == [
        ("ConfigMap", "web-settings", "team-a", True),
        ("Deployment", "worker", "team-a", True),
    ]
    assert fake.get("configmaps", "web-settings", "team-a")["data"] == {"greeting": "hello"}
    assert fake.get("deployments", "worker", "team-a")["spec"]["replicas"] == 1


async def test_create_reports_each_refusal_in_the_apis_words(jane: Page, fake: FakeKubeAPI) -> None:
    text = MANIFESTS.replace("namespace: team-a", "namespace: team-b")
    status, body = await jane.send("POST", "create", {"yaml": text, "namespace": "team-a"})
    assert status == 403
    assert body["error"] == (
        'Deployment worker: deployments.apps is forbidden: User "jane" cannot create '
        'resource "deployments" in API group "apps" in the namespace "team-b"'
    )
    assert [r["ok"] for r in body["results"]] == [True, False]
    assert body["results"][1]["error"].startswith("deployments.apps is forbidden: ")
    assert fake.get("configmaps", "web-settings", "team-a") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: [", "the YAML cannot be read: line 1"),
        ("a: &x [1]\nb: *x\n", "line 2: YAML aliases (*name) are not accepted"),
        ("- just\n- a list\n", "document 1 is not an object"),
        ("apiVersion: v1\nmetadata: {name: x}\n", "document 1: kind is missing"),
        ("apiVersion: v1\nkind: ConfigMap\n", "document 1: metadata.name is missing"),
        ("", "the YAML holds no object"),
        (
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
            'Widget w: no matches for kind "Widget" in version "example.com/v1"',
        ),
        (
            "apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n",
            'Widget w: no matches for kind "Widget" in version "v1"',
        ),
    ],
)
async def test_bad_yaml_is_a_400_that_says_why(
    jane: Page, fake: FakeKubeAPI, text: str, message: str
) -> None:
    status, body = await jane.send("POST", "create", {"yaml": text})
    assert status == 400
    assert body["error"].startswith(message)
    assert not [c for c in user_calls(fake) if c[0] == "POST" and c[1] != SSAR]


async def test_yaml_larger_than_the_limit_is_refused(jane: Page) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {a: '"
    status, _ = await jane.send("POST", "create", {"yaml": text + "x" * yamltext.MAX_BYTES + "'}"})
    assert status == 413
    status, body = await jane.send("POST", "create", {"yaml": text + "x" * 1000})
    assert status == 400  # under the limit: read, and found broken
    assert "the YAML cannot be read" in body["error"]


async def test_edit_replaces_with_the_resource_version_and_a_stale_one_is_409(
    jane: Page, fake: FakeKubeAPI
) -> None:
    status, got = await jane.get("yaml", **WEB)
    assert status == 200
    obj = yaml.safe_load(got["yaml"])
    assert obj["metadata"]["resourceVersion"] == got["resourceVersion"]
    obj["spec"]["replicas"] = 3
    status, saved = await jane.send("PUT", "yaml", {"yaml": yaml.safe_dump(obj)}, **WEB)
    assert status == 200, saved
    assert fake.get("deployments", "web", "team-a")["spec"]["replicas"] == 3
    assert saved["resourceVersion"] != got["resourceVersion"]
    obj["spec"]["replicas"] = 7  # edited from the first, now stale, copy
    status, body = await jane.send("PUT", "yaml", {"yaml": yaml.safe_dump(obj)}, **WEB)
    assert status == 409
    assert body["error"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert body["reason"] == "Conflict"
    assert fake.get("deployments", "web", "team-a")["spec"]["replicas"] == 3


async def test_edit_refuses_yaml_that_names_another_object(jane: Page, fake: FakeKubeAPI) -> None:
    _, got = await jane.get("yaml", **WEB)
    renamed = got["yaml"].replace("name: web\n", "name: other\n", 1)
    status, body = await jane.send("PUT", "yaml", {"yaml": renamed}, **WEB)
    assert status == 400
    assert "this editor changes Deployment web; the YAML names Deployment other" in body["error"]
    assert fake.get("deployments", "other", "team-a") is None


async def test_edit_is_refused_with_the_apis_403_when_rbac_says_no(
    open_page: Any, fake: FakeKubeAPI
) -> None:
    bob: Page = await open_page(BOB)
    status, body = await bob.get("yaml", **WEB)
    assert status == 403
    assert body["error"] == (
        'deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments" '
        'in API group "apps" in the namespace "team-a"'
    )


async def test_delete_removes_the_object_as_the_user(jane: Page, fake: FakeKubeAPI) -> None:
    status, body = await jane.send("DELETE", "object", **{**POD, "name": WEB_PODS[1]})
    assert status == 200, body
    assert fake.get("pods", WEB_PODS[1], "team-a") is None
    assert fake.calls_to(f"/api/v1/namespaces/team-a/pods/{WEB_PODS[1]}") == [
        ("DELETE", f"/api/v1/namespaces/team-a/pods/{WEB_PODS[1]}", f"Bearer {JANE}")
    ]
    status, body = await jane.send("DELETE", "object", **{**POD, "name": WEB_PODS[1]})
    assert (status, body["error"]) == (404, f'pods "{WEB_PODS[1]}" not found')


async def test_delete_is_forbidden_to_a_viewer(open_page: Any, fake: FakeKubeAPI) -> None:
    bob: Page = await open_page(BOB)
    status, body = await bob.send("DELETE", "object", **POD)
    assert status == 403
    assert body["error"].startswith(f'pods "{WEB_PODS[0]}" is forbidden: User "bob" cannot delete')
    assert fake.get("pods", WEB_PODS[0], "team-a") is not None


async def test_scale_sets_the_replicas_that_kubectl_then_shows(
    jane: Page, fake: FakeKubeAPI, tmp_path: Path
) -> None:
    assert await jane.get("scale", **WEB) == (200, {"replicas": 2})
    status, body = await jane.send("POST", "scale", {"replicas": 5}, **WEB)
    assert (status, body) == (200, {"replicas": 5})
    assert await jane.get("scale", **WEB) == (200, {"replicas": 5})
    assert fake.get("deployments", "web", "team-a")["spec"]["replicas"] == 5
    config = fake.write_kubeconfig(tmp_path / "kubeconfig")
    shown = kubectl(config, "get", "deploy", "web", "-n", "team-a", "--no-headers")
    assert shown.stdout.split()[:2] == ["web", "5/5"], shown.stderr


@pytest.mark.parametrize(
    ("target", "replicas", "status", "message"),
    [
        (WEB, -1, 422, 'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1'),
        (WEB, "3", 400, "replicas must be a whole number"),
        (WEB, True, 400, "replicas must be a whole number"),
        (POD, 2, 400, "a Pod has no scale subresource"),
        ({**WEB, "name": "nope"}, 2, 404, 'deployments.apps "nope" not found'),
    ],
)
async def test_scale_refusals(
    jane: Page, target: dict[str, str], replicas: Any, status: int, message: str
) -> None:
    got, body = await jane.send("POST", "scale", {"replicas": replicas}, **target)
    assert got == status
    assert body["error"].startswith(message)


async def test_restart_sets_kubectls_restarted_at_annotation(jane: Page, fake: FakeKubeAPI) -> None:
    status, body = await jane.send("POST", "restart", {}, **WEB)
    assert (status, body) == (200, {"restartedAt": STAMP_TEXT})
    template = fake.get("deployments", "web", "team-a")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": STAMP_TEXT}
    assert template["spec"]["containers"][0]["name"] == "app"  # a patch: the rest is kept
    status, body = await jane.send("POST", "restart", {}, **POD)
    assert (status, body["error"]) == (
        400,
        "only Deployments, DaemonSets and StatefulSets can be restarted",
    )


async def test_logs_come_back_as_plain_text(jane: Page) -> None:
    resp = await jane.client.get(
        f"{API}/logs",
        params={"namespace": "team-a", "name": WEB_PODS[0], "container": "app", "tailLines": "2"},
    )
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.text() == "".join(LOG.splitlines(keepends=True)[-2:])


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        (
            {},
            400,
            f"a container name must be specified for pod {WEB_PODS[0]}, "
            "choose one of: [app sidecar]",
        ),
        ({"container": "app", "tailLines": "0"}, 400, "tailLines must be a whole number"),
        ({"container": "app", "tailLines": "x"}, 400, "tailLines must be a whole number"),
        ({"container": "nope"}, 400, f"container nope is not valid for pod {WEB_PODS[0]}"),
    ],
)
async def test_logs_refusals(jane: Page, params: dict[str, str], status: int, message: str) -> None:
    got, body = await jane.get("logs", namespace="team-a", name=WEB_PODS[0], **params)
    assert got == status
    assert body["error"].startswith(message)


async def test_every_call_reaches_the_api_with_the_users_own_token(
    jane: Page, fake: FakeKubeAPI
) -> None:
    await jane.get("overview")
    await jane.get("can", **WEB)
    await jane.get("workload", namespace="team-a", name=WEB_PODS[0])
    await jane.send("POST", "create", {"yaml": MANIFESTS, "namespace": "team-a"})
    _, got = await jane.get("yaml", **WEB)
    await jane.send("PUT", "yaml", {"yaml": got["yaml"]}, **WEB)
    await jane.send("POST", "scale", {"replicas": 3}, **WEB)
    await jane.send("POST", "restart", {}, **WEB)
    await jane.get("logs", namespace="team-a", name=WEB_PODS[0], container="app")
    await jane.send("DELETE", "object", **POD)
    calls = user_calls(fake)
    methods = {c[0] for c in calls}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert len(calls) > 20
    assert {c[2] for c in calls} == {f"Bearer {JANE}"}
    # The server's own credentials only ever checked the sign-in token.
    assert {c[2] for c in fake.calls_to(TOKEN_REVIEWS)} == {f"Bearer {fake.admin_token}"}


# ----- security


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("POST", "create", {"yaml": MANIFESTS, "namespace": "team-a"}, {}),
        ("PUT", "yaml", {"yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"}, POD),
        ("DELETE", "object", None, POD),
        ("POST", "scale", {"replicas": 0}, WEB),
        ("POST", "restart", {}, WEB),
    ],
)
async def test_a_state_changing_request_without_the_csrf_token_is_403_and_does_nothing(
    jane: Page, fake: FakeKubeAPI, method: str, path: str, body: Any, params: dict[str, str]
) -> None:
    before = len(fake.calls)
    status, answer = await jane.send(method, path, body, csrf=False, **params)
    assert (status, answer) == (403, {"error": "missing or wrong CSRF token"})
    jane.csrf = "wrong"
    status, _ = await jane.send(method, path, body, **params)
    assert status == 403
    assert len(fake.calls) == before


async def test_the_token_stays_on_the_server(
    open_page: Any, fake: FakeKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    page: Page = await open_page()
    resp = await page.client.post("/dashboard/login", data={"token": JANE}, allow_redirects=False)
    assert resp.status == 303
    cookie = resp.cookies[COOKIE].value
    assert JANE not in cookie
    page.csrf = (await page.get("session"))[1]["csrf_token"]
    _, info = await page.get("session")
    assert info["cluster"] is True
    assert JANE not in str(info)
    await page.get("overview")
    await page.send("POST", "scale", {"replicas": 2}, **WEB)
    assert JANE not in caplog.text
    kept = Sessions(60.0, time.time).create(User("jane"), JANE)
    assert kept.token == JANE
    assert JANE not in repr(kept)  # as a log line or a crash report would show it


async def test_local_mode_has_no_actions(make_dashboard: Any) -> None:
    client = await make_dashboard()
    await sign_in(client)
    info = await (await client.get(f"{API}/session")).json()
    assert info["cluster"] is False
    for path in ("can", "workload", "yaml", "logs"):
        assert (await client.get(f"{API}/{path}", params=POD)).status == 404, path
