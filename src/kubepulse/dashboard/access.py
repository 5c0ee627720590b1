"""What a signed-in user may see, from their own RBAC: the data views' Access.

Asked with SelfSubjectAccessReviews made with the user's token (kubectl auth can-i):
- nodes: may they list nodes, either the core resource or metrics.k8s.io's NodeMetrics
  (the node usage the dashboard shows is what either one reveals);
- pods: may they list pods (core or metrics.k8s.io) in all namespaces; if not, in which
  of the namespaces the cluster has pods in, one review each, as a RoleBinding grants
  per namespace.
The answer is kept per session for TTL seconds, as kube-apiserver's authorization webhook
cache keeps decisions (--authorization-webhook-cache-authorized-ttl), so a page's polls
do not ask again; concurrent requests of one session share one round of reviews.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kubepulse.api.authn import ReviewCache
from kubepulse.dashboard.pod_index import Access
from kubepulse.dashboard.sessions import Session
from kubepulse.kube.user_clients import Question, UserClients, may_all

TTL = 30.0
METRICS = "metrics.k8s.io"


class AccessReviews:
    def __init__(
        self, calls: UserClients, namespaces: Callable[[], Iterable[str]], ttl: float = TTL
    ) -> None:
        self.calls, self.namespaces, self.ttl = calls, namespaces, ttl
        self.cache: ReviewCache[Access] = ReviewCache()

    async def access(self, session: Session) -> Access:
        """The session's Access; raises ApiError (a 401: the token no longer works) or
        Unreachable, and then nothing is kept."""
        return await self.cache.get(session.id, lambda: self._review(session))

    async def _review(self, session: Session) -> tuple[Access, float]:
        client = self.calls.as_user(session.token or "")
        both = [("", "nodes"), (METRICS, "nodes"), ("", "pods"), (METRICS, "pods")]
        first = await may_all(client, [Question("list", r, group=g) for g, r in both])
        nodes, every_pod = first[0] or first[1], first[2] or first[3]
        if every_pod:
            return Access(nodes, None), self.ttl
        names = sorted(set(self.namespaces()))
        core = await may_all(client, [Question("list", "pods", namespace=n) for n in names])
        rest = [n for n, allowed in zip(names, core, strict=True) if not allowed]
        metrics = await may_all(
            client, [Question("list", "pods", group=METRICS, namespace=n) for n in rest]
        )
        seen = {n for n, allowed in zip(names, core, strict=True) if allowed}
        seen |= {n for n, allowed in zip(rest, metrics, strict=True) if allowed}
        return Access(nodes, frozenset(seen)), self.ttl
