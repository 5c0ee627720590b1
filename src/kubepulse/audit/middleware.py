"""The audit filter: each request's events, at its policy level, to every backend.

As kube-apiserver's WithAudit, a request gets an Audit-Id and is recorded at
RequestReceived and ResponseComplete (or Panic), unless the policy omits those stages.
Both events are written once the answer is known: who asked is known only after
authentication, and that is when kube-apiserver's filter runs too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from kubepulse.api.auditkeys import AUDIT_ID_KEY, WHOLE_BODY_KEY
from kubepulse.api.authn import USER_KEY, user_info
from kubepulse.api.authz import request_attributes
from kubepulse.api.status import status_response
from kubepulse.audit.backends import AuditFailure, Backend
from kubepulse.audit.event import Record, response_status
from kubepulse.audit.policy import Policy

ANONYMOUS: dict[str, Any] = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}


def _json(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def audit(policy: Policy, backends: Sequence[Backend]) -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        received = time.time()
        audit_id = str(uuid.uuid4())
        request[AUDIT_ID_KEY] = audit_id

        def whole_body() -> bool:
            # Asked once the request is authenticated, before the answer is written.
            user = request.get(USER_KEY)
            info = user_info(user) if user is not None else ANONYMOUS
            a = request_attributes(request.method, request.path, request.query)
            level, _ = policy.decide(info["username"], info.get("groups", []), a)
            return level == "RequestResponse"

        request[WHOLE_BODY_KEY] = whole_body
        response: web.StreamResponse | None = None
        stage, status = "ResponseComplete", 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as err:
            status = err.status
            raise
        except Exception:
            stage = "Panic"
            raise
        finally:
            try:
                await _emit(request, policy, backends, audit_id, received, stage, status, response)
            except AuditFailure as err:
                # blocking-strict: an answer not yet sent is replaced by the failure.
                if response is not None and not response.prepared:
                    response = status_response(500, f"Internal error occurred: {err}")
        assert response is not None
        return response

    return record


async def _emit(
    request: web.Request,
    policy: Policy,
    backends: Sequence[Backend],
    audit_id: str,
    received: float,
    stage: str,
    status: int,
    response: web.StreamResponse | None,
) -> None:
    user = request.get(USER_KEY)
    # A 401 has no user (kube-apiserver's failed-authentication event); other requests
    # without credentials are the anonymous user's.
    info = user_info(user) if user is not None else ({} if status == 401 else ANONYMOUS)
    attributes = request_attributes(request.method, request.path, request.query)
    level, omit = policy.decide(info.get("username", ""), info.get("groups", []), attributes)
    if level == "None":
        return
    forwarded = request.remote or ""
    r = Record(
        audit_id,
        received,
        level,
        omit,
        attributes,
        request.path_qs,
        [forwarded] if forwarded else [],
        request.headers.get("User-Agent", ""),
        info,
    )
    events = []
    if "RequestReceived" not in omit:
        events.append(r.event("RequestReceived", received))
    # The bodies come after the request was received, as the handler decodes them.
    if level != "Metadata" and request.body_exists:
        r.request_object = _json(await request.read())
    answer = response.body if isinstance(response, web.Response) else None
    body = _json(answer) if isinstance(answer, bytes) else None
    now = time.time()
    if stage not in omit:
        events.append(r.event(stage, now, response_status(status, body), body))
    for backend in backends:
        await backend.process(events)
