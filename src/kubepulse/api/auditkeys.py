"""What the audit filter (kubepulse.audit) and the handlers tell each other through a
request: its Audit-Id, sent back as kube-apiserver sends it, and whether the answer must
be kept whole for a RequestResponse event instead of streamed."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

AUDIT_ID_KEY: web.RequestKey[str] = web.RequestKey("kubepulse.audit_id", str)
WHOLE_BODY_KEY: web.RequestKey[Callable[[], bool]] = web.RequestKey("kubepulse.audit_whole_body")


def wants_whole_body(request: web.Request) -> bool:
    ask = request.get(WHOLE_BODY_KEY)
    return ask is not None and ask()


async def send_audit_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: streamed answers too carry their Audit-Id."""
    audit_id = request.get(AUDIT_ID_KEY)
    if audit_id is not None:
        response.headers["Audit-Id"] = audit_id
