"""One line per request at V(4), as kube-apiserver's httplog writes them: verb, URI,
latency, user agent, user, source address and status. Never a header's value: a
bearer token must not reach a log."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from kubepulse.api.authn import USER_KEY

log = logging.getLogger(__name__)


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not log.isEnabledFor(logging.DEBUG):
        return await handler(request)
    begun = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as err:
        status = err.status
        raise
    finally:
        user = request.get(USER_KEY)
        fields = {
            "verb": request.method,
            "URI": request.path_qs,
            "latency": f"{(time.monotonic() - begun) * 1000:.3f}ms",
            "userAgent": request.headers.get("User-Agent", ""),
            "user": user.name if user is not None else "",
            "srcIP": request.remote or "",
            "resp": status,
        }
        log.debug(
            "HTTP %s %s %s %s",
            request.method,
            request.path_qs,
            status,
            fields["latency"],
            extra={"kv": fields},
        )
