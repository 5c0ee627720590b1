"""JSON answers and the request checks every read endpoint shares."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from kubepulse.api.status import status_response

JSON = "application/json"


def json_response(body: Any, content_type: str = JSON) -> web.Response:
    return web.Response(body=orjson.dumps(body), headers={"Content-Type": content_type})


def not_found(resource: str, name: str, group: str = "") -> web.Response:
    """apimachinery's errors.NewNotFound(GroupResource{group, resource}, name)."""
    qualified = f"{resource}.{group}" if group else resource
    details = (
        {"name": name, "group": group, "kind": resource}
        if group
        else {"name": name, "kind": resource}
    )
    return status_response(404, f'{qualified} "{name}" not found', details)


def refuse_watch(request: web.Request) -> web.Response | None:
    """These resources have no watch (metrics-server implements get and list only)."""
    if request.query.get("watch", "").lower() in ("true", "1"):
        return status_response(
            405, "the server does not allow this method on the requested resource"
        )
    return None
