"""SelfSubjectReview: who a bearer token belongs to, as the API server itself knows it.

kube-apiserver answers `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (GA in
1.28, KEP-3325; `kubectl auth whoami` uses it) for any authenticated caller, with the
caller's own user info: no spec, no special permission (the default ClusterRole
system:basic-user grants it to system:authenticated). Two uses here:

- kubepulse's API answers it for the user its authenticator found (`answer`), so
  `kubectl auth whoami` works against `kubepulse up`;
- `kubepulse dashboard` checks a sign-in token by making the review *with that token*
  (SelfSubjectReviewAuthenticator): unlike a TokenReview, this needs no permission of
  the dashboard's own, and the cluster's whole authenticator chain (tokens, OIDC,
  webhooks) decides.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import orjson
from aiohttp import web

from kubepulse.api.authn import USER_KEY, CachedTokenAuthenticator, User, user_info
from kubepulse.api.responses import JSON
from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.kubeconfig import Credentials, without_credentials

log = logging.getLogger(__name__)

GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"
PATH = f"/apis/{API_VERSION}/selfsubjectreviews"
# Kubernetes 1.27 served it as beta only; kubectl auth whoami falls back the same way.
BETA_PATH = f"/apis/{GROUP}/v1beta1/selfsubjectreviews"


def review(user: User, api_version: str = API_VERSION) -> dict[str, Any]:
    """The SelfSubjectReview kube-apiserver returns: status.userInfo, empty fields left
    out (authentication/v1 UserInfo has omitempty on all of them)."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": user_info(user)},
    }


def user_of(answer: Any) -> User | None:
    """The User in a SelfSubjectReview answer; None when it names nobody."""
    status = answer.get("status") if isinstance(answer, dict) else None
    info = status.get("userInfo") if isinstance(status, dict) else None
    if not isinstance(info, dict) or not info.get("username"):
        return None
    extra = info.get("extra") or {}
    return User(
        str(info["username"]),
        str(info.get("uid") or ""),
        tuple(str(g) for g in info.get("groups") or ()),
        tuple(sorted((str(k), tuple(str(x) for x in v)) for k, v in extra.items())),
    )


async def answer(request: web.Request) -> web.Response:
    """The route handler: the request's own user, as a created object (201, as the
    apiserver's create handler answers). The body is not read: kubectl sends an empty
    review in protobuf, and a review has nothing to ask."""
    body = orjson.dumps(review(request[USER_KEY]))
    return web.Response(status=201, body=body, headers={"Content-Type": JSON})


def routes() -> list[web.RouteDef]:
    return [web.post(PATH, answer)]


class SelfSubjectReviewAuthenticator(CachedTokenAuthenticator):
    """Bearer tokens the cluster recognises: a SelfSubjectReview made with the token.

    Answers are kept for ttl under the token's SHA-256, as TokenReview answers are. A
    401 is a definite no and is kept; a failure to ask (unreachable, 5xx, a 403 from a
    cluster that does not let the user review itself) is logged and not kept.
    """

    def __init__(self, cluster: Credentials, ttl: float = 10.0, timeout: float = 10.0) -> None:
        super().__init__()
        self.cluster = without_credentials(cluster)
        self.ttl, self.timeout = ttl, timeout

    async def _review(self, token: str) -> tuple[User | None, float]:
        creds = dataclasses.replace(self.cluster, token=token)
        try:
            async with KubeClient(creds, timeout=self.timeout) as client:
                found = await self._create(client)
        except ApiError as err:
            if err.code == 401:
                return None, self.ttl
            log.warning("SelfSubjectReview failed: %d %s: %s", err.code, err.reason, err.message)
            return None, 0.0
        except Unreachable as err:
            log.warning("SelfSubjectReview failed: %s", err)
            return None, 0.0
        return found, self.ttl

    @staticmethod
    async def _create(client: KubeClient) -> User | None:
        body = {"apiVersion": API_VERSION, "kind": "SelfSubjectReview"}
        try:
            return user_of(await client.post(PATH, body))
        except ApiError as err:
            if err.code != 404:
                raise
        beta = {**body, "apiVersion": f"{GROUP}/v1beta1"}
        return user_of(await client.post(BETA_PATH, beta))
