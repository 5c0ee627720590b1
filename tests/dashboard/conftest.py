"""The dashboard over a real store (tests/api's), a real History in a tmp file, and the
static-token Authenticator, mounted at /dashboard as the server will mount it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from kubepulse.api.app import errors_as_status
from kubepulse.api.authn import Authenticator, User
from kubepulse.dashboard.app import DashboardOptions, DashboardParts, mount
from kubepulse.history.file import History
from kubepulse.history.sources import SqliteSeries
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import node_from_object, pod_from_object
from kubepulse.store.points import MetricsStore
from tests.api.conftest import MI, NODE_OBJECTS, POD_OBJECTS, TOKEN, filled_store, pod_object

XSS_NAME = "<img src=x onerror=alert(1)>"
NOW = float(int(time.time()) // 60 * 60)
HISTORY_POINTS = 40  # node-a every 15 s over the last 10 minutes
NODE_A_CPU = 500_000_000  # 500m
NODE_A_MEM = 64 * MI


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


def inventory(extra_pods: list[dict[str, Any]] | None = None) -> StaticInventory:
    pods = [*POD_OBJECTS, *(extra_pods or [])]
    return StaticInventory(
        [node_from_object(n) for n in NODE_OBJECTS], [pod_from_object(p) for p in pods]
    )


def xss_pod() -> dict[str, Any]:
    return pod_object("default", XSS_NAME, "node-a", {"app": "evil"}, ["c"])


def filled_history(path: Path) -> History:
    history = History(path)
    rows = []
    for i in range(HISTORY_POINTS):
        ts = NOW - 15 * (HISTORY_POINTS - 1 - i)
        rows.append(("node", "", "node-a", "", ts, NODE_A_CPU, NODE_A_MEM))
        rows.append(("pod", "default", "web-1", "", ts, 300_000_000, 3 * MI))
        rows.append(("container", "default", "web-1", "nginx", ts, 100_000_000, MI))
        rows.append(("container", "default", "web-1", "log-shipper", ts, 200_000_000, 2 * MI))
    history.record(rows)
    assert history.flush(timeout=10)
    return history


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = filled_history(tmp_path / "history.db")
    yield h
    h.close()


def authenticator() -> Authenticator:
    return Authenticator({TOKEN: User("admin", "1", ("system:masters",))})


def parts(
    history: History | None,
    clock: Clock | None = None,
    store: MetricsStore | None = None,
    lifetime: float = 3600.0,
    pods_and_nodes: StaticInventory | None = None,
) -> DashboardParts:
    return DashboardParts(
        store=store if store is not None else filled_store(),
        inventory=pods_and_nodes or inventory(),
        history=SqliteSeries(history) if history is not None else None,
        authenticator=authenticator(),
        options=DashboardOptions(
            session_lifetime=lifetime,
            secure_cookies=False,
            poll_interval=1.0,
            clock=clock or Clock(),
        ),
    )


def root_app(p: DashboardParts) -> web.Application:
    """The dashboard mounted as the servers mount it: under the API's error layer."""
    root = web.Application(middlewares=[errors_as_status])
    mount(root, p)
    return root


MakeDashboard = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_dashboard(aiohttp_client: Any, history: History) -> MakeDashboard:
    async def make(**kwargs: Any) -> TestClient[Any, Any]:
        kwargs.setdefault("history", history)
        client: TestClient[Any, Any] = await aiohttp_client(root_app(parts(**kwargs)))
        return client

    return make


async def sign_in(client: TestClient[Any, Any], token: str = TOKEN) -> str:
    """Sign in; returns the session's CSRF token."""
    resp = await client.post("/dashboard/login", data={"token": token}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    info = await client.get("/dashboard/api/session")
    assert info.status == 200
    token_value: str = (await info.json())["csrf_token"]
    return token_value
