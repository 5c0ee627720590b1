"""May this user do this? Authorization of every request, as an aggregated API server does.

Against a cluster, each request is put to the cluster as a SubjectAccessReview
(k8s.io/apiserver/pkg/authorization/authorizerfactory/delegating.go): resource
attributes for API paths (/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods is `list pods
in group metrics.k8s.io in namespace ns`), non-resource attributes for the others
(`get /metrics`). Answers are kept for a while, allowed and denied each for their own
TTL (--authorization-webhook-cache-{authorized,unauthorized}-ttl, 10 s upstream).
Members of system:masters are always allowed, and the paths in
--authorization-always-allow-paths (/healthz, /readyz, /livez) need nobody's leave.
A denial is a 403 Status worded as kube-apiserver words it.

Without a cluster (--targets), every authenticated user may read everything.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from kubepulse.api.authn import USER_KEY, ReviewCache, ReviewClient, User
from kubepulse.api.status import status, status_response
from kubepulse.kube.client import ApiError, Unreachable

log = logging.getLogger(__name__)

DEFAULT_ALWAYS_ALLOW_PATHS = ("/healthz", "/readyz", "/livez")
# DelegatingAuthorizationOptions.AlwaysAllowGroups: the cluster's superusers.
PRIVILEGED_GROUP = "system:masters"
ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks to do (the apiserver's authorizer.Attributes)."""

    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of a request, by k8s.io/apiserver/pkg/endpoints/request's
    RequestInfoFactory: /api/VERSION/... and /apis/GROUP/VERSION/... are resource
    requests; everything else, discovery included, is a non-resource path."""
    non_resource = Attributes(method.lower(), path)
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    if rest[0] == "watch" and len(rest) > 1:  # the old /watch/ paths
        verb, rest = "watch", rest[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "") in _TRUE else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, path, True, group, version, resource, subresource, namespace, name)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class AuthorizationError(Exception):
    """The authorizer could not decide (the review failed): a 500, as upstream."""


class Authorizer(Protocol):
    async def authorize(self, user: User, attributes: Attributes) -> Decision: ...


class AlwaysAllow:
    """Every authenticated user may do everything: the server without a cluster. Except
    impersonating another user, which only members of system:masters may (kubepulse's
    rule: static tokens carry no permission to become someone else)."""

    async def authorize(self, user: User, attributes: Attributes) -> Decision:
        if attributes.verb == "impersonate" and PRIVILEGED_GROUP not in user.groups:
            return Decision(False, f"only members of {PRIVILEGED_GROUP} may impersonate")
        return Decision(True)


def review_spec(user: User, attributes: Attributes) -> dict[str, Any]:
    spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups)}
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {key: list(values) for key, values in user.extra}
    if attributes.resource_request:
        fields = {
            "namespace": attributes.namespace,
            "verb": attributes.verb,
            "group": attributes.api_group,
            "version": attributes.api_version,
            "resource": attributes.resource,
            "subresource": attributes.subresource,
            "name": attributes.name,
        }
        spec["resourceAttributes"] = {k: v for k, v in fields.items() if v}
    else:
        spec["nonResourceAttributes"] = {"path": attributes.path, "verb": attributes.verb}
    return spec


class SubjectAccessReviewAuthorizer:
    """Asks the cluster, and keeps its answers for allowed_ttl or denied_ttl seconds."""

    def __init__(
        self, client: ReviewClient, allowed_ttl: float = 10.0, denied_ttl: float = 10.0
    ) -> None:
        self.client = client
        self.allowed_ttl, self.denied_ttl = allowed_ttl, denied_ttl
        self.cache: ReviewCache[Decision] = ReviewCache()

    async def authorize(self, user: User, attributes: Attributes) -> Decision:
        if PRIVILEGED_GROUP in user.groups:
            return Decision(True)
        spec = review_spec(user, attributes)
        key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS).decode()
        return await self.cache.get(key, lambda: self._review(spec))

    async def _review(self, spec: dict[str, Any]) -> tuple[Decision, float]:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }
        try:
            answer = await self.client.create(ACCESS_REVIEW_PATH, body)
        except (ApiError, Unreachable, ValueError) as err:
            raise AuthorizationError(f"the SubjectAccessReview failed: {err}") from err
        review = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(review, dict):
            raise AuthorizationError("the SubjectAccessReview came back without a status")
        reason = str(review.get("reason") or review.get("evaluationError") or "")
        if review.get("allowed") and not review.get("denied"):
            return Decision(True, reason), self.allowed_ttl
        return Decision(False, reason), self.denied_ttl


class AlwaysAllowPaths:
    """--authorization-always-allow-paths: exact paths, or prefixes ending in `*`."""

    def __init__(self, paths: Iterable[str] = DEFAULT_ALWAYS_ALLOW_PATHS) -> None:
        cleaned = [p.strip() for p in paths if p.strip()]
        self.exact = frozenset(p for p in cleaned if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in cleaned if p.endswith("*"))

    def matches(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)


def forbidden(user: User, attributes: Attributes, reason: str) -> web.Response:
    """kube-apiserver's responsewriters.Forbidden with apierrors.NewForbidden's wording:
    `nodes.metrics.k8s.io is forbidden: User "bob" cannot list resource "nodes" in API
    group "metrics.k8s.io" at the cluster scope`, then `: reason` when the review gave one."""
    a = attributes
    if a.resource_request:
        resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
        message = (
            f'User "{user.name}" cannot {a.verb} resource "{resource}" '
            f'in API group "{a.api_group}" {where}'
        )
    else:
        message = f'User "{user.name}" cannot {a.verb} path "{a.path}"'
    if reason:
        message = f"{message}: {reason}"
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    if not qualified:
        text = f"forbidden: {message}"
    elif a.name:
        text = f'{qualified} "{a.name}" is forbidden: {message}'
    else:
        text = f"{qualified} is forbidden: {message}"
    body = status(403, text)
    # StatusDetails is always there, empty for a path (its fields are omitempty).
    details = {"name": a.name, "group": a.api_group, "kind": a.resource}
    body["details"] = {k: v for k, v in details.items() if v}
    return web.Response(status=403, body=orjson.dumps(body), content_type="application/json")


def authorization(authorizer: Authorizer, always_allow: AlwaysAllowPaths) -> Middleware:
    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        if always_allow.matches(request.path):
            return await handler(request)
        user = request.get(USER_KEY)
        if user is None:  # authentication always runs first; never serve without a user
            return status_response(401, "Unauthorized")
        attributes = request_attributes(request.method, request.path, request.query)
        try:
            decision = await authorizer.authorize(user, attributes)
        except AuthorizationError as err:
            log.warning("cannot authorize %s %s: %s", attributes.verb, request.path, err)
            return status_response(500, f"Internal error occurred: {err}")
        if not decision.allowed:
            return forbidden(user, attributes, decision.reason)
        return await handler(request)

    return authorize
