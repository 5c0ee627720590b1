"""The fake's RBAC: a table of grants, and the one check that SubjectAccessReviews,
SelfSubjectAccessReviews and the guarded calls all make.

A grant is (subject, verb, target, namespace). The subject is a user or a group name;
target is `resource[.group][/subresource]` (`deployments.apps/scale`) or a non-resource
path (`/metrics`); verb and target may be `*`. A grant with no namespace holds in every
namespace and for cluster-scoped requests (a ClusterRoleBinding); one with a namespace
holds only for requests in it (a RoleBinding), never for a cluster-wide list, as RBAC
decides (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubepulse.api.authn import User
from kubepulse.api.authz import Attributes, Decision

# kubeadm binds cluster-admin to these groups; the fake lets them do anything too.
ADMIN_GROUPS = frozenset({"system:masters", "kubeadm:cluster-admins"})


def target(resource: str, group: str = "", subresource: str = "") -> str:
    return resource + (f".{group}" if group else "") + (f"/{subresource}" if subresource else "")


def review_target(attributes: Mapping[str, Any]) -> tuple[str, str, str]:
    """(verb, target, namespace) of a review's resourceAttributes."""
    return (
        str(attributes.get("verb", "")),
        target(
            str(attributes.get("resource", "")),
            str(attributes.get("group") or ""),
            str(attributes.get("subresource") or ""),
        ),
        str(attributes.get("namespace") or ""),
    )


class Grants:
    def __init__(self) -> None:
        self._grants: set[tuple[str, str, str, str]] = set()

    def add(self, subject: str, verb: str, what: str, namespace: str = "") -> None:
        self._grants.add((subject, verb, what, namespace))

    def allows(self, subjects: Iterable[str], verb: str, what: str, namespace: str = "") -> bool:
        places = ("", namespace) if namespace else ("",)
        return any(
            (s, v, t, n) in self._grants
            for s in subjects
            for v in (verb, "*")
            for t in (what, "*")
            for n in places
        )

    def allows_user(self, user: User, verb: str, what: str, namespace: str = "") -> bool:
        """What the fake enforces on its guarded calls: admins may do anything."""
        if ADMIN_GROUPS.intersection(user.groups):
            return True
        return self.allows([user.name, *user.groups], verb, what, namespace)


class GrantsAuthorizer:
    """The grants as the server's Authorizer: what the impersonation filter asks
    (`impersonate` on users, groups, uids.authentication.k8s.io ...)."""

    def __init__(self, grants: Grants) -> None:
        self.grants = grants

    async def authorize(self, user: User, attributes: Attributes) -> Decision:
        what = target(attributes.resource, attributes.api_group, attributes.subresource)
        if not attributes.resource_request:
            what = attributes.path
        allowed = self.grants.allows_user(user, attributes.verb, what, attributes.namespace)
        return Decision(allowed)


def forbidden_message(
    user: User, verb: str, resource: str, group: str, subresource: str, namespace: str, name: str
) -> str:
    """kube-apiserver's words (apiserver/pkg/endpoints/handlers/responsewriters)."""
    shown = f"{resource}/{subresource}" if subresource else resource
    qualified = f"{resource}.{group}" if group else resource
    subject = f'{qualified} "{name}"' if name else qualified
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{shown}" '
        f'in API group "{group}"{where}'
    )
