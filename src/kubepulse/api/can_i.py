"""SelfSubjectAccessReview: may the caller do this? Answered by the server's authorizer.

kube-apiserver answers `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`
for any authenticated caller (the default ClusterRole system:basic-user) with its
authorizer's decision for the caller's own user (pkg/registry/authorization/
selfsubjectaccessreview). kubepulse answers it with the authorizer it runs: everything
allowed for `kubepulse up` and static tokens, the cluster's SubjectAccessReview in front
of a cluster. The dashboard's Kubernetes mode asks it to hide what a user may not see,
so `kubepulse dashboard --kubeconfig` works against kubepulse's own API too.

Where kubepulse is the cluster's whole API (`kubepulse up`, which serves the core API's
nodes, pods and namespaces), the answer is also what that API can do: it is read-only,
so a review of a verb other than get or list, or of a resource it does not serve
(deployments, pods/log), is not allowed, with the reason, whatever the authorizer says.
Otherwise a dashboard pointed at `up` would offer buttons (delete, edit, logs) that
always fail.

Bodies are read as JSON, or as the protobuf `kubectl auth can-i` sends (protobuf.py);
any other media type gets 415 with kube-apiserver's wording. Answers are JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from kubepulse.api.authn import USER_KEY
from kubepulse.api.authz import Attributes, AuthorizationError, Authorizer, Decision
from kubepulse.api.discovery import CORE_RESOURCES, METRICS_RESOURCES
from kubepulse.api.protobuf import ProtobufError, fields, strings, unwrap
from kubepulse.api.responses import JSON
from kubepulse.api.status import status_response

API_VERSION = "authorization.k8s.io/v1"
PROTOBUF = "application/vnd.kubernetes.protobuf"
PATH = f"/apis/{API_VERSION}/selfsubjectaccessreviews"
MAX_BODY = 64 * 1024
# apivalidation of SelfSubjectAccessReviewSpec (pkg/apis/authorization/validation).
EXACTLY_ONE = (
    "spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or "
    "resourceAttributes must be specified"
)


class InvalidReview(ValueError):
    """A review kube-apiserver would refuse as Invalid (422)."""


def _strings(value: Any, where: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidReview(f"{where}: Invalid value: want an object of strings")
    return value


def attributes(spec: Any) -> Attributes:
    """The request a review's spec describes, as the authorizer sees requests."""
    if not isinstance(spec, Mapping):
        raise InvalidReview(EXACTLY_ONE)
    resource, path = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (resource is None) == (path is None):
        raise InvalidReview(EXACTLY_ONE)
    if path is not None:
        a = _strings(path, "spec.nonResourceAttributes")
        return Attributes(a.get("verb", ""), a.get("path", ""))
    a = _strings(resource, "spec.resourceAttributes")
    return Attributes(
        verb=a.get("verb", ""),
        path="",
        resource_request=True,
        api_group=a.get("group", ""),
        api_version=a.get("version", ""),
        resource=a.get("resource", ""),
        subresource=a.get("subresource", ""),
        namespace=a.get("namespace", ""),
        name=a.get("name", ""),
    )


# Field numbers of k8s.io/api/authorization/v1 generated.proto.
_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def spec_from_protobuf(body: bytes) -> dict[str, Any]:
    """The spec of a SelfSubjectAccessReview sent as protobuf, as its JSON would read
    (empty strings left out, as omitempty leaves them out)."""
    api_version, kind, raw = unwrap(body)
    if (api_version, kind) != (API_VERSION, "SelfSubjectAccessReview"):
        raise ProtobufError(f"a {api_version}/{kind}, not a SelfSubjectAccessReview")
    specs = [v for v in fields(raw).get(2, []) if isinstance(v, bytes)]  # spec: field 2
    parts = fields(specs[-1]) if specs else {}
    spec: dict[str, Any] = {}
    for number, key, names in (
        (1, "resourceAttributes", _RESOURCE_ATTRIBUTES),
        (2, "nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES),
    ):
        messages = [v for v in parts.get(number, []) if isinstance(v, bytes)]
        if messages:
            spec[key] = {k: v for k, v in strings(messages[-1], names).items() if v}
    return spec


READ_VERBS = frozenset({"get", "list"})


def cannot_serve(asked: Attributes, core: bool) -> str | None:
    """Why this server cannot do what a review asks, whoever asks; None when it can."""
    if not asked.resource_request:
        return None  # paths (/healthz, /metrics): the authorizer decides
    served = {("metrics.k8s.io", r[0]) for r in METRICS_RESOURCES}
    if core:
        served |= {("", r[0]) for r in CORE_RESOURCES}
    reviews = {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    }
    what = (asked.api_group, asked.resource)
    shown = asked.resource + (f"/{asked.subresource}" if asked.subresource else "")
    if what in reviews and not asked.subresource:
        return None if asked.verb == "create" else f"kubepulse only creates {shown}"
    if what not in served or asked.subresource:
        return f"kubepulse does not serve {shown}" + (
            f" in group {asked.api_group!r}" if asked.api_group else ""
        )
    if asked.verb not in READ_VERBS:
        return f"kubepulse serves a read-only API: it cannot {asked.verb} {shown}"
    return None


class AccessReviews:
    def __init__(self, authorizer: Authorizer, core: bool = False) -> None:
        """core: this server serves the core API's nodes, pods and namespaces (up)."""
        self.authorizer = authorizer
        self.core = core

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.answer)]

    async def answer(self, request: web.Request) -> web.Response:
        if request.content_type not in (JSON, PROTOBUF):
            return status_response(
                415,
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json, application/vnd.kubernetes.protobuf",
            )
        if (request.content_length or 0) > MAX_BODY:
            return status_response(413, "the request body is too large")
        try:
            sent = await request.read()
            if request.content_type == PROTOBUF:
                spec: Any = spec_from_protobuf(sent)
            else:
                review = orjson.loads(sent)
                spec = review.get("spec") if isinstance(review, dict) else None
            asked = attributes(spec)
        except orjson.JSONDecodeError:
            return status_response(400, "the request body is not JSON")
        except ProtobufError as err:
            return status_response(400, f"the request body is not a SelfSubjectAccessReview: {err}")
        except InvalidReview as err:
            return status_response(
                422, f'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: {err}'
            )
        refused = cannot_serve(asked, core=True) if self.core else None
        try:
            decision = (
                Decision(False, refused)
                if refused is not None
                else await self.authorizer.authorize(request[USER_KEY], asked)
            )
        except AuthorizationError as err:
            return status_response(500, f"Internal error occurred: {err}")
        result: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            result["reason"] = decision.reason
        body = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": API_VERSION,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": result,
        }
        return web.Response(status=201, body=orjson.dumps(body), headers={"Content-Type": JSON})
