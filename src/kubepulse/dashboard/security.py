"""Response headers for every dashboard response, and the CSRF check.

Every POST, PUT and DELETE of a signed-in user must carry the session's CSRF token in an
X-CSRF-Token header (or a csrf_token form field); the login form, which has no session
yet, must come from this origin when the browser says where it comes from.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HSTS = "max-age=31536000"
"""On HTTPS answers: a browser that has seen the dashboard over HTTPS never uses HTTP."""
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on the
    # login form's POST, which same_origin() cannot tell from a cross-site one.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer carries the security headers; an error raised as an HTTPException
    (a 404 of the router, a 403 of the static files) is a JSON body that says so."""
    try:
        response = await handler(request)
    except web.HTTPException as err:
        if err.status >= 400 and err.content_type != "application/json":
            err.body = orjson.dumps({"error": err.reason, "code": err.status})
            err.content_type = "application/json"
        add_headers(request, err.headers, static=False)
        raise
    if response.status >= 400 and response.content_type not in ("application/json", "text/html"):
        # The static files' 403 and 404 come back as empty bodies of no type.
        body = {"error": response.reason, "code": response.status}
        response = web.json_response(body, status=response.status)
    add_headers(request, response.headers, static="/static/" in request.path)
    return response


def add_headers(request: web.Request, headers: Any, static: bool) -> None:
    for key, value in HEADERS.items():
        if key == "Cache-Control" and static:
            continue
        headers.setdefault(key, value)
    if request.secure:
        headers.setdefault("Strict-Transport-Security", HSTS)


async def presented_csrf(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def csrf_ok(expected: str, presented: str) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), presented.encode())


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site or origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:  # every current browser sends it; it is authoritative
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == request.host
