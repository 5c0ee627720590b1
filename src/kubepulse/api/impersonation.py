"""Impersonate-* headers: acting as another user (k8s.io/apiserver's WithImpersonation).

A request with Impersonate-User (and maybe Impersonate-Group, Impersonate-Uid,
Impersonate-Extra-<key>) is served as that user, once the authorizer allows its real
user the verb `impersonate` on each: `users` (or `serviceaccounts` in the account's
namespace, for system:serviceaccount:NS:NAME), `groups`, `uids` and `userextras/<key>`
of authentication.k8s.io. A refusal is the 403 kube-apiserver gives, naming the real
user. The new user is in system:authenticated unless the groups asked say otherwise;
an impersonated service account without groups gets its own, as upstream.

Where kubepulse has no cluster to ask (`kubepulse up`, --targets), the authorizer lets
only members of system:masters impersonate (authz.AlwaysAllow).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDictProxy

from kubepulse.api.authn import USER_KEY, User
from kubepulse.api.authz import Attributes, AuthorizationError, Authorizer, forbidden
from kubepulse.api.status import status_response

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
AUTHENTICATED, UNAUTHENTICATED = "system:authenticated", "system:unauthenticated"
ANONYMOUS = "system:anonymous"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ImpersonationError(ValueError):
    """Headers that ask for groups, a uid or extras without a user."""


def _asked(headers: CIMultiDictProxy[str]) -> tuple[User, list[Attributes]] | None:
    """The user the headers ask for, and the `impersonate` checks that allow it."""
    name = headers.get(USER_HEADER, "")
    groups = headers.getall(GROUP_HEADER, [])
    uid = headers.get(UID_HEADER, "")
    extra: dict[str, list[str]] = {}
    for header, value in headers.items():
        if header.lower().startswith(EXTRA_PREFIX.lower()):
            extra.setdefault(unquote(header[len(EXTRA_PREFIX) :].lower()), []).append(value)
    if not name:
        if groups or uid or extra:
            raise ImpersonationError(
                "requested groups, a uid or extras without impersonating a user"
            )
        return None
    checks = []
    own_groups: list[str] = []
    namespace, _, account = name.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    if name.startswith(SERVICE_ACCOUNT_PREFIX) and namespace and account and ":" not in account:
        checks.append(_check("serviceaccounts", account, namespace=namespace))
        own_groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        checks.append(_check("users", name))
    checks += [_check("groups", group) for group in groups]
    for key, values in extra.items():
        checks += [_check("userextras", v, "authentication.k8s.io", key) for v in values]
    if uid:
        checks.append(_check("uids", uid, "authentication.k8s.io"))
    final = list(groups) if groups else own_groups
    if name != ANONYMOUS and not {AUTHENTICATED, UNAUTHENTICATED} & set(final):
        final.append(AUTHENTICATED)
    elif name == ANONYMOUS and UNAUTHENTICATED not in final:
        final.append(UNAUTHENTICATED)
    extras = tuple(sorted((k, tuple(v)) for k, v in extra.items()))
    return User(name, uid, tuple(final), extras), checks


def _check(
    resource: str, name: str, group: str = "", subresource: str = "", namespace: str = ""
) -> Attributes:
    version = "v1"
    return Attributes(
        "impersonate", "", True, group, version, resource, subresource, namespace, name
    )


def impersonation(authorizer: Authorizer) -> Middleware:
    """After authentication, before authorization: the request's user becomes the one
    asked for, when the real one may impersonate it."""

    @web.middleware
    async def impersonate(request: web.Request, handler: Handler) -> web.StreamResponse:
        real = request.get(USER_KEY)
        try:
            asked = _asked(request.headers)
        except ImpersonationError as err:
            return status_response(500, f"Internal error occurred: {err}")
        if asked is None or real is None:
            return await handler(request)
        user, checks = asked
        for check in checks:
            try:
                decision = await authorizer.authorize(real, check)
            except AuthorizationError as err:
                return status_response(500, f"Internal error occurred: {err}")
            if not decision.allowed:
                return forbidden(real, check, decision.reason)
        request[USER_KEY] = user
        return await handler(request)

    return impersonate
