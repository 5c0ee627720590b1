"""`kubepulse server --dashboard` against a cluster (the fake kube-apiserver, no --targets)
serves the dashboard in Kubernetes mode: the signed-in user's RBAC decides what they see
and do, every call is made with their token, and sign-in is decided by the token alone
although the server also accepts client certificates and the front proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubepulse import pki
from tests.dashboard.kubemode import JANE, WEB_PODS, populate
from tests.fakeapi.served import Served, served
from tests.fakeapi.server import FakeKubeAPI

WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team-a", "name": "web"}


@asynccontextmanager
async def browser(server: Served, cert: pki.KeyPair | None = None) -> AsyncIterator[Any]:
    connector = aiohttp.TCPConnector(ssl=server.context(cert))
    jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies from 127.0.0.1
    async with aiohttp.ClientSession(
        f"https://127.0.0.1:{server.port}", connector=connector, cookie_jar=jar
    ) as session:
        yield session


async def sign_in(session: aiohttp.ClientSession, token: str, **headers: str) -> int:
    async with session.post(
        "/dashboard/login", data={"token": token}, headers=headers, allow_redirects=False
    ) as resp:
        return resp.status


@pytest.fixture
def fake() -> Any:
    with FakeKubeAPI() as api:
        populate(api)
        yield api


async def test_the_server_dashboard_acts_as_the_signed_in_user(
    fake: FakeKubeAPI, tmp_path: Path
) -> None:
    async with served(fake, tmp_path, "--dashboard") as server, browser(server) as page:
        assert await sign_in(page, JANE) == 303
        async with page.get("/dashboard/api/session") as resp:
            session = await resp.json()
        assert (session["user"], session["cluster"]) == ("jane", True)
        async with page.get("/dashboard/api/pods") as resp:
            pods = await resp.json()
        assert {(p["namespace"], p["name"]) for p in pods["items"]} == {
            ("team-a", name) for name in WEB_PODS
        }
        async with page.post(
            "/dashboard/api/scale",
            params=WEB,
            json={"replicas": 3},
            headers={"X-CSRF-Token": session["csrf_token"]},
        ) as resp:
            assert (resp.status, await resp.json()) == (200, {"replicas": 3})
    assert fake.get("deployments", "web", "team-a")["spec"]["replicas"] == 3
    # The dashboard's own calls (the server lists and watches with its own token).
    made = [
        c
        for c in fake.calls
        if "selfsubjectaccessreviews" in c[1] or c[1].startswith("/apis/apps/")
    ]
    assert len(made) > 4
    assert {c[2] for c in made} == {f"Bearer {JANE}"}


@pytest.mark.parametrize(
    ("case", "cert", "headers"),
    [
        ("a client certificate the cluster's CA signed", "client", {}),
        (
            "the front proxy's certificate and user headers",
            "front-proxy",
            {"X-Remote-User": "kubernetes-admin", "X-Remote-Group": "system:masters"},
        ),
    ],
)
async def test_a_certificate_does_not_sign_in_a_wrong_token(
    fake: FakeKubeAPI, tmp_path: Path, case: str, cert: str, headers: dict[str, str]
) -> None:
    pair = (
        fake.client_certificate("kubernetes-admin", ("system:masters",))
        if cert == "client"
        else pki.issue(fake.front_proxy_ca, "front-proxy-client", client=True)
    )
    async with served(fake, tmp_path, "--dashboard") as server, browser(server, pair) as page:
        assert await sign_in(page, "not-a-token", **headers) == 401, case
        assert await sign_in(page, JANE, **headers) == 303, case
        async with page.get("/dashboard/api/session") as resp:
            assert (await resp.json())["user"] == "jane"
