"""The API server called as each signed-in user: the user's own bearer token on every
request, so that the API server's authorization decides with their RBAC, never with a
permission of the caller's (the dashboard's).

One aiohttp session (one TLS context for the API server's CA, pooled connections) serves
every user; only the Authorization header differs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubepulse.kube.client import KubeClient, connector, ssl_context
from kubepulse.kube.kubeconfig import Credentials, without_credentials

log = logging.getLogger(__name__)

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
TIMEOUT = 30.0
REVIEWS_AT_ONCE = 16
"""SelfSubjectAccessReviews one page view may have in flight together."""


class UserClients:
    """The API server of Kubernetes mode; `as_user(token)` is a KubeClient for one call."""

    def __init__(self, cluster: Credentials, timeout: float = TIMEOUT) -> None:
        self.cluster = without_credentials(cluster)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def as_user(self, token: str) -> KubeClient:
        return KubeClient(
            dataclasses.replace(self.cluster, token=token), self.timeout, session=self._open()
        )

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "kubepulse-dashboard"},
                connector=connector(self.cluster, ssl_context(self.cluster)),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass(frozen=True, slots=True)
class Question:
    """A SelfSubjectAccessReview's resourceAttributes: may I verb this?"""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def review(self) -> dict[str, Any]:
        attributes = {k: v for k, v in dataclasses.asdict(self).items() if v}
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }


async def may(client: KubeClient, question: Question) -> bool:
    """The API server's answer for the client's own user (kubectl auth can-i)."""
    answer = await client.post(SSAR_PATH, question.review())
    status = answer.get("status") if isinstance(answer, dict) else None
    return isinstance(status, dict) and status.get("allowed") is True


async def may_all(client: KubeClient, questions: Sequence[Question]) -> list[bool]:
    """Every answer, in order, with at most REVIEWS_AT_ONCE in flight; raises the first
    ApiError or Unreachable."""
    gate = asyncio.Semaphore(REVIEWS_AT_ONCE)

    async def one(question: Question) -> bool:
        async with gate:
            return await may(client, question)

    return list(await asyncio.gather(*(one(q) for q in questions)))
