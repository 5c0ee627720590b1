"""How the dashboard answers the page when the API server refused or could not be
reached: a refusal keeps its code and the Status message the API wrote."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from kubepulse.kube.client import ApiError, Unreachable


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": message, **extra}),
        content_type="application/json",
    )


def explain(err: ApiError | Unreachable) -> tuple[int, str, str]:
    """(status, message, reason) the page is told when the API server refused or could not
    be reached: a refusal (4xx) keeps the API's code, reason and message (403 stays 403
    with the words RBAC wrote, 409 says the object changed); the server's own failure
    (5xx) or no answer is a 502 that says so."""
    if isinstance(err, Unreachable):
        return 502, f"cannot reach the API server: {err}", "Unreachable"
    if 400 <= err.code < 500:
        return err.code, err.message or err.reason, err.reason
    return 502, f"the API server failed ({err.code} {err.reason}): {err.message}", err.reason


def failure(err: ApiError | Unreachable) -> web.Response:
    status, message, reason = explain(err)
    return error_response(status, message, reason=reason)
