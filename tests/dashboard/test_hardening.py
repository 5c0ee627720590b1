"""The dashboard against someone trying tokens, and every answer's headers and body."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import TOKEN
from tests.dashboard.conftest import MakeDashboard, sign_in


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def try_token(client: TestClient[Any, Any], token: str) -> tuple[int, str, str]:
    resp = await client.post("/dashboard/login", data={"token": token}, allow_redirects=False)
    return resp.status, resp.headers.get("Retry-After", ""), await resp.text()


async def test_failed_sign_ins_are_logged_without_the_token_and_slowed_down(
    make_dashboard: MakeDashboard, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    client = await make_dashboard(clock=clock)
    with caplog.at_level(logging.WARNING, "kubepulse.dashboard"):
        for i in range(10):
            status, _, _ = await try_token(client, f"wrong-token-{i}")
            assert status == 401
        # The eleventh, even with the right token, waits: its token is not checked.
        for token in ("wrong-token-x", TOKEN):
            status, retry_after, page = await try_token(client, token)
            assert status == 429
            assert 55 <= int(retry_after) <= 60
            assert "Too many failed sign-ins from your address" in page
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed sign-in from 127.0.0.1 (10 in the last minute)" in logged
    assert "refusing sign-ins from 127.0.0.1" in logged
    assert "wrong-token" not in logged and TOKEN not in logged

    clock.now += 61  # a minute on, the address may try again
    await sign_in(client)


async def test_a_sign_in_clears_the_count(make_dashboard: MakeDashboard) -> None:
    client = await make_dashboard(clock=Clock())
    for round_ in range(3):
        for i in range(9):
            assert (await try_token(client, f"wrong-{round_}-{i}"))[0] == 401
        await sign_in(client)
        await client.post("/dashboard/logout")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/dashboard/static/", 403),
        ("/dashboard/static/nope.js", 404),
        ("/dashboard/nope", 404),
        ("/dashboard/login", 200),
        ("/dashboard/api/overview", 401),
        ("/dashboard/static/app.js", 200),
    ],
)
async def test_every_answer_has_the_security_headers_and_errors_say_what_in_json(
    make_dashboard: MakeDashboard, path: str, status: int
) -> None:
    client = await make_dashboard()
    resp = await client.get(path)
    assert resp.status == status
    csp = resp.headers["Content-Security-Policy"]
    assert "base-uri 'none'" in csp and "form-action 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    if status >= 400:
        assert resp.content_type == "application/json"
        assert "error" in await resp.json()
