"""The fake's writable resources answer as kube-apiserver does: kubectl 1.32 creates,
scales, restarts, reads logs and deletes through it, RBAC applies per namespace, and
every refusal is the apiserver's Status. Raw calls go through kubepulse's KubeClient,
which this also tests (patch, delete, plain-text answers, a shared session)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubepulse.kube.client import (
    STRATEGIC_MERGE_PATCH,
    ApiError,
    KubeClient,
    Unreachable,
    ssl_context,
)
from tests.fakeapi import objects
from tests.fakeapi.fixtures import kubectl
from tests.fakeapi.server import FakeKubeAPI

JANE = "jane-token"
CM = "/api/v1/namespaces/team-a/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/team-a/deployments"
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@pytest.fixture
def team(fake_api: FakeKubeAPI) -> FakeKubeAPI:
    """Jane may read pods and their logs, and change deployments, in team-a only."""
    fake_api.add_token(JANE, "jane", ("developers",))
    for verb, target in [
        ("get", "pods"),
        ("list", "pods"),
        ("get", "pods/log"),
        ("get", "deployments.apps"),
        ("update", "deployments.apps"),
        ("create", "configmaps"),
    ]:
        fake_api.allow("jane", verb, target, "team-a")
    fake_api.put("deployments", objects.deployment("team-a", "web", 2))
    fake_api.add_pod(
        objects.pod(
            "team-a", "web-1", "worker-1", containers=[("app", {}, {}), ("sidecar", {}, {})]
        )
    )
    fake_api.set_log("team-a", "web-1", "app", "one\ntwo\nthree\n")
    return fake_api


@pytest.fixture
async def session(fake_api: FakeKubeAPI) -> AsyncIterator[aiohttp.ClientSession]:
    ctx = ssl_context(fake_api.credentials())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as shared:
        yield shared


def as_user(fake: FakeKubeAPI, shared: aiohttp.ClientSession, token: str | None) -> KubeClient:
    return KubeClient(fake.credentials(token), session=shared)


async def refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


# ----- kubectl


def test_kubectl_gets_scales_and_restarts_a_deployment(team: FakeKubeAPI, tmp_path: Path) -> None:
    config = team.write_kubeconfig(tmp_path / "kubeconfig")
    listed = kubectl(config, "get", "deploy", "-n", "team-a", "--no-headers")
    assert listed.stdout.split()[:4] == ["web", "2/2", "2", "2"], listed.stderr
    scaled = kubectl(config, "scale", "deploy/web", "-n", "team-a", "--replicas=5")
    assert scaled.returncode == 0, scaled.stderr
    assert (
        kubectl(config, "get", "deploy", "-n", "team-a", "--no-headers").stdout.split()[1] == "5/5"
    )
    restarted = kubectl(config, "rollout", "restart", "deploy/web", "-n", "team-a")
    assert restarted.returncode == 0, restarted.stderr
    annotations = team.get("deployments", "web", "team-a")["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations["annotations"]


def test_kubectl_creates_reads_logs_and_deletes(team: FakeKubeAPI, tmp_path: Path) -> None:
    config = team.write_kubeconfig(tmp_path / "kubeconfig")
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a}\n"
        "data: {a: b}\n"
    )
    # kubectl's client-side validation wants the OpenAPI document, which the fake lacks.
    created = kubectl(config, "create", "--validate=false", "-f", str(manifest))
    assert created.stdout.strip() == "configmap/settings created", created.stderr
    assert kubectl(config, "get", "cm", "-n", "team-a", "--no-headers").stdout.split()[:2] == [
        "settings",
        "1",
    ]
    logs = kubectl(config, "logs", "web-1", "-n", "team-a", "-c", "app", "--tail=2")
    assert logs.stdout == "two\nthree\n"
    deleted = kubectl(config, "delete", "cm", "settings", "-n", "team-a")
    assert deleted.returncode == 0, deleted.stderr
    assert team.get("configmaps", "settings", "team-a") is None


def test_kubectl_is_forbidden_what_rbac_does_not_grant(team: FakeKubeAPI, tmp_path: Path) -> None:
    config = team.write_kubeconfig(tmp_path / "kubeconfig", token=JANE)
    result = kubectl(config, "delete", "deploy", "web", "-n", "team-a")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (Forbidden): deployments.apps "web" is forbidden: User "jane" '
        'cannot delete resource "deployments" in API group "apps" in the namespace "team-a"'
    )


# ----- SelfSubjectAccessReview


@pytest.mark.parametrize(
    ("attributes", "allowed"),
    [
        ({"verb": "list", "resource": "pods", "namespace": "team-a"}, True),
        ({"verb": "list", "resource": "pods", "namespace": "team-b"}, False),
        ({"verb": "list", "resource": "pods"}, False),  # cluster-wide needs a cluster grant
        ({"verb": "get", "resource": "pods", "subresource": "log", "namespace": "team-a"}, True),
        ({"verb": "delete", "resource": "pods", "namespace": "team-a"}, False),
        (
            {"verb": "update", "group": "apps", "resource": "deployments", "namespace": "team-a"},
            True,
        ),
        (
            {
                "verb": "update",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale",
                "namespace": "team-a",
            },
            False,
        ),
    ],
)
async def test_self_subject_access_reviews_answer_for_the_callers_own_user(
    team: FakeKubeAPI,
    session: aiohttp.ClientSession,
    attributes: dict[str, str],
    allowed: bool,
) -> None:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    answer = await as_user(team, session, JANE).post(SSAR, body)
    assert answer["status"]["allowed"] is allowed
    assert team.self_access_reviews[-1]["resourceAttributes"] == attributes


async def test_admins_may_do_anything_by_self_subject_access_review(
    team: FakeKubeAPI, session: aiohttp.ClientSession
) -> None:
    spec = {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    answer = await as_user(team, session, None).post(SSAR, {**body, "spec": spec})
    assert answer["status"]["allowed"] is True


# ----- writes and their refusals


async def test_create_get_replace_and_a_stale_resource_version(
    team: FakeKubeAPI, session: aiohttp.ClientSession
) -> None:
    admin = as_user(team, session, None)
    created = await admin.post(CM, objects.configmap("team-a", "settings", {"a": "1"}))
    rv = created["metadata"]["resourceVersion"]
    assert (await admin.get(f"{CM}/settings"))["data"] == {"a": "1"}
    created["data"] = {"a": "2"}
    replaced = await admin.put(f"{CM}/settings", created)
    assert int(replaced["metadata"]["resourceVersion"]) > int(rv)
    created["data"] = {"a": "3"}  # still the old resourceVersion
    err = await refused(admin.put(f"{CM}/settings", created))
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == (
        'Operation cannot be fulfilled on configmaps "settings": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert team.get("configmaps", "settings", "team-a")["data"] == {"a": "2"}


@pytest.mark.parametrize(
    ("path", "body", "code", "reason", "message"),
    [
        (
            CM,
            objects.configmap("team-a", "web-config", {}),
            409,
            "AlreadyExists",
            'configmaps "web-config" already exists',
        ),
        (
            CM,
            objects.configmap("team-a", "Bad_Name", {}),
            422,
            "Invalid",
            'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a '
            "lowercase RFC 1123 subdomain",
        ),
        (
            CM,
            objects.configmap("team-b", "elsewhere", {}),
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent",
        ),
        (
            DEPLOY,
            {**objects.deployment("team-a", "neg"), "spec": {"replicas": -1}},
            422,
            "Invalid",
            'Deployment.apps "neg" is invalid: spec.replicas: Invalid value: -1',
        ),
    ],
)
async def test_creates_are_refused_as_the_apiserver_refuses_them(
    team: FakeKubeAPI,
    session: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any],
    code: int,
    reason: str,
    message: str,
) -> None:
    team.put("configmaps", objects.configmap("team-a", "web-config", {}))
    err = await refused(as_user(team, session, None).post(path, body))
    assert (err.code, err.reason) == (code, reason)
    assert err.message.startswith(message)


async def test_scale_patch_delete_and_logs(
    team: FakeKubeAPI, session: aiohttp.ClientSession
) -> None:
    admin = as_user(team, session, None)
    scale = await admin.get(f"{DEPLOY}/web/scale")
    assert (scale["kind"], scale["spec"], scale["status"]["selector"]) == (
        "Scale",
        {"replicas": 2},
        "app=web",
    )
    scale["spec"]["replicas"] = 4
    assert (await admin.put(f"{DEPLOY}/web/scale", scale))["spec"]["replicas"] == 4
    assert team.get("deployments", "web", "team-a")["status"]["readyReplicas"] == 4
    stale = await refused(admin.put(f"{DEPLOY}/web/scale", scale))
    assert stale.code == 409
    patch = {"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}
    await admin.patch(f"{DEPLOY}/web", patch, STRATEGIC_MERGE_PATCH)
    template = team.get("deployments", "web", "team-a")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"a": "b"}
    assert template["spec"]["containers"][0]["name"] == "app"  # the rest is kept
    assert (
        await admin.get_text(
            "/api/v1/namespaces/team-a/pods/web-1/log", {"container": "app", "tailLines": "1"}
        )
        == "three\n"
    )
    deleted = await admin.delete(f"{DEPLOY}/web", {"propagationPolicy": "Background"})
    assert (deleted["status"], deleted["details"]["name"]) == ("Success", "web")
    assert team.get("deployments", "web", "team-a") is None
    gone = await refused(admin.delete(f"{DEPLOY}/web"))
    assert (gone.code, gone.message) == (404, 'deployments.apps "web" not found')


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "a container name must be specified for pod web-1, choose one of: [app sidecar]"),
        ({"container": "nope"}, "container nope is not valid for pod web-1"),
    ],
)
async def test_logs_need_a_container_of_the_pod(
    team: FakeKubeAPI, session: aiohttp.ClientSession, query: dict[str, str], message: str
) -> None:
    err = await refused(
        as_user(team, session, None).get_text("/api/v1/namespaces/team-a/pods/web-1/log", query)
    )
    assert (err.code, err.message) == (400, message)


async def test_the_users_own_grants_apply_and_every_call_is_recorded(
    team: FakeKubeAPI, session: aiohttp.ClientSession
) -> None:
    jane = as_user(team, session, JANE)
    assert (await jane.get(f"{DEPLOY}/web"))["metadata"]["name"] == "web"
    err = await refused(jane.put(f"{DEPLOY}/web/scale", {"kind": "Scale", "spec": {"replicas": 1}}))
    assert err.code == 403
    assert err.message == (
        'deployments.apps "web" is forbidden: User "jane" cannot update resource '
        '"deployments/scale" in API group "apps" in the namespace "team-a"'
    )
    other = await refused(jane.get("/apis/apps/v1/namespaces/team-b/deployments/web"))
    assert other.code == 403
    assert team.calls_to(DEPLOY) == [
        ("GET", f"{DEPLOY}/web", f"Bearer {JANE}"),
        ("PUT", f"{DEPLOY}/web/scale", f"Bearer {JANE}"),
    ]


async def test_discovery_lists_the_apps_group_and_its_scale_subresource(
    team: FakeKubeAPI, session: aiohttp.ClientSession
) -> None:
    admin = as_user(team, session, None)
    apps = await admin.get("/apis/apps/v1")
    names = [r["name"] for r in apps["resources"]]
    assert "deployments" in names
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    core = await admin.get("/api/v1")
    log = next(r for r in core["resources"] if r["name"] == "pods/log")
    assert log["verbs"] == ["get"]


@pytest.mark.parametrize(
    ("name", "reached"),
    [("kubernetes.default.svc", True), ("elsewhere.example", False)],
)
async def test_the_client_checks_the_certificate_against_tls_server_name(
    fake_api: FakeKubeAPI, name: str, reached: bool
) -> None:
    """kubeconfig's tls-server-name: dialled by IP, the certificate must name this name."""
    creds = dataclasses.replace(fake_api.credentials(), tls_server_name=name)
    async with KubeClient(creds) as client:
        if reached:
            assert (await client.get("/version"))["minor"] == "32"
        else:
            with pytest.raises(Unreachable, match="certificate is not trusted"):
                await client.get("/version")
