"""SelfSubjectAccessReview: kubepulse's API answers it with its own authorizer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from kubepulse.api import can_i
from kubepulse.api.app import ServerParts, make_app
from kubepulse.api.authn import Authenticator, User
from kubepulse.api.authz import AlwaysAllow, Attributes, AuthorizationError, Decision
from tests.api.conftest import AUTH, TOKEN, FakeScraping, filled_store, inventory, self_metrics

BOB = User("bob", "7", ("dev", "system:authenticated"))
REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass
class TeamOnly:
    """An authorizer that lets anyone list pods in namespace "team" and nothing else,
    and remembers what it was asked (the review's own request passes too)."""

    asked: list[tuple[User, Attributes]] = field(default_factory=list)
    fails: bool = False

    async def authorize(self, user: User, attributes: Attributes) -> Decision:
        if attributes.resource == "selfsubjectaccessreviews":
            return Decision(True)
        self.asked.append((user, attributes))
        if self.fails:
            raise AuthorizationError("the SubjectAccessReview failed: 503 ServiceUnavailable")
        if (attributes.verb, attributes.resource, attributes.namespace) == ("list", "pods", "team"):
            return Decision(True, "RBAC: allowed by RoleBinding team-readers")
        return Decision(False)


Make = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make(aiohttp_client: Any) -> Make:
    async def build(authorizer: Any, core: bool = False) -> TestClient[Any, Any]:
        store = filled_store()
        parts = ServerParts(
            store=store,
            inventory=inventory(),
            scraping=FakeScraping(),
            authenticator=Authenticator({TOKEN: BOB}),
            registry=self_metrics(store).registry,
            authorizer=authorizer,
            serve_core_api=core,
        )
        client: TestClient[Any, Any] = await aiohttp_client(make_app(parts))
        return client

    return build


def review(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": can_i.API_VERSION, "kind": "SelfSubjectAccessReview", "spec": spec}


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource", "reason"),
    [
        ("list", "", "pods", "", None),
        ("get", "", "nodes", "", None),
        ("list", "metrics.k8s.io", "pods", "", None),
        ("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", None),
        ("delete", "", "pods", "", "kubepulse serves a read-only API: it cannot delete pods"),
        ("patch", "", "nodes", "", "kubepulse serves a read-only API: it cannot patch nodes"),
        ("get", "", "pods", "log", "kubepulse does not serve pods/log"),
        ("list", "apps", "deployments", "", "kubepulse does not serve deployments in group 'apps'"),
        ("create", "", "pods", "", "kubepulse serves a read-only API: it cannot create pods"),
    ],
)
async def test_up_allows_only_what_its_read_only_api_can_do(
    make: Make, verb: str, group: str, resource: str, subresource: str, reason: str | None
) -> None:
    """up's user may do anything, but its API serves only reads of nodes, pods and
    namespaces: a dashboard must not offer what would fail."""
    client = await make(AlwaysAllow(), core=True)
    attributes = {"verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    resp = await client.post(
        REVIEW_PATH, json=review({"resourceAttributes": attributes}), headers=AUTH
    )
    assert resp.status == 201
    status = (await resp.json())["status"]
    assert status["allowed"] is (reason is None)
    assert status.get("reason") == reason


async def test_static_tokens_without_the_core_api_leave_it_to_the_authorizer(
    make: Make,
) -> None:
    client = await make(AlwaysAllow())
    spec = {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}
    resp = await client.post(REVIEW_PATH, json=review(spec), headers=AUTH)
    assert resp.status == 201
    assert await resp.json() == {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": True},
    }


@pytest.mark.parametrize(
    ("spec", "allowed", "attributes"),
    [
        (
            {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "team"}},
            True,
            Attributes("list", "", True, resource="pods", namespace="team"),
        ),
        (
            {"resourceAttributes": {"verb": "list", "resource": "pods"}},
            False,
            Attributes("list", "", True, resource="pods"),
        ),
        (
            {
                "resourceAttributes": {
                    "verb": "patch",
                    "group": "apps",
                    "version": "v1",
                    "resource": "deployments",
                    "subresource": "scale",
                    "namespace": "team",
                    "name": "web",
                }
            },
            False,
            Attributes("patch", "", True, "apps", "v1", "deployments", "scale", "team", "web"),
        ),
        (
            {"nonResourceAttributes": {"verb": "get", "path": "/metrics"}},
            False,
            Attributes("get", "/metrics"),
        ),
    ],
)
async def test_the_answer_is_the_authorizers_for_the_callers_own_user(
    make: Make, spec: dict[str, Any], allowed: bool, attributes: Attributes
) -> None:
    authorizer = TeamOnly()
    client = await make(authorizer)
    resp = await client.post(REVIEW_PATH, json=review(spec), headers=AUTH)
    assert resp.status == 201
    status = (await resp.json())["status"]
    assert status["allowed"] is allowed
    assert ("reason" in status) is allowed  # only the allowing decision gave one
    assert authorizer.asked == [(BOB, attributes)]


@pytest.mark.parametrize(
    ("body", "headers", "code", "message"),
    [
        (review({}), {}, 422, "exactly one of nonResourceAttributes or resourceAttributes"),
        (
            review(
                {
                    "resourceAttributes": {"verb": "get", "resource": "pods"},
                    "nonResourceAttributes": {"verb": "get", "path": "/"},
                }
            ),
            {},
            422,
            "exactly one of",
        ),
        (review({"resourceAttributes": {"verb": 1}}), {}, 422, "want an object of strings"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "not JSON"),
        (
            b"k8s\x00\n",
            {"Content-Type": "application/vnd.kubernetes.protobuf"},
            400,
            "not a SelfSubjectAccessReview: truncated or overlong varint",
        ),
        (b"{}", {"Content-Type": "application/yaml"}, 415, "unknown format"),
    ],
)
async def test_reviews_that_cannot_be_answered_get_a_status(
    make: Make, body: Any, headers: dict[str, str], code: int, message: str
) -> None:
    client = await make(TeamOnly())
    send = {"json": body} if isinstance(body, dict) else {"data": body}
    resp = await client.post(REVIEW_PATH, headers={**AUTH, **headers}, **send)
    assert resp.status == code
    answer = await resp.json()
    assert (answer["kind"], answer["code"]) == ("Status", code)
    assert message in answer["message"]


# What kubectl v1.32.4 sends for `kubectl auth can-i list pods` (namespace default):
# "k8s\0", then a runtime.Unknown holding the SelfSubjectAccessReview's message.
KUBECTL_CAN_I_LIST_PODS = bytes.fromhex(
    "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c66537562"
    "6a656374416363657373526576696577123d0a100a0012001a0022002a00320038004200121f0a1d"
    "0a0764656661756c7412046c6973741a0022002a04706f647332003a001a08080012001a0020001a"
    "002200"
)
PROTOBUF = {"Content-Type": "application/vnd.kubernetes.protobuf"}


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field (values here are under 128 bytes)."""
    assert len(value) < 128
    return bytes([number << 3 | 2, len(value)]) + value


def protobuf_review(spec: dict[str, Any], kind: str = "SelfSubjectAccessReview") -> bytes:
    """The review as kubectl would send it, field numbers from generated.proto."""
    numbers = {
        "resourceAttributes": (1, can_i._RESOURCE_ATTRIBUTES),
        "nonResourceAttributes": (2, can_i._NON_RESOURCE_ATTRIBUTES),
    }
    encoded = b""
    for key, attributes in spec.items():
        number, names = numbers[key]
        by_name = {name: n for n, name in names.items()}
        body = b"".join(_field(by_name[k], v.encode()) for k, v in attributes.items())
        encoded += _field(number, body)
    raw = _field(1, b"") + _field(2, encoded)
    type_meta = _field(1, can_i.API_VERSION.encode()) + _field(2, kind.encode())
    return b"k8s\x00" + _field(1, type_meta) + bytes([0x12, len(raw)]) + raw


@pytest.mark.parametrize(
    ("body", "spec", "allowed", "attributes"),
    [
        (
            KUBECTL_CAN_I_LIST_PODS,
            {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}},
            False,
            Attributes("list", "", True, resource="pods", namespace="default"),
        ),
        (
            protobuf_review(
                {
                    "resourceAttributes": {
                        "verb": "patch",
                        "group": "apps",
                        "resource": "deployments",
                        "subresource": "scale",
                        "namespace": "team",
                        "name": "web",
                    }
                }
            ),
            {
                "resourceAttributes": {
                    "namespace": "team",
                    "verb": "patch",
                    "group": "apps",
                    "resource": "deployments",
                    "subresource": "scale",
                    "name": "web",
                }
            },
            False,
            Attributes("patch", "", True, "apps", "", "deployments", "scale", "team", "web"),
        ),
        (
            protobuf_review({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}),
            {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}},
            False,
            Attributes("get", "/metrics"),
        ),
        (
            protobuf_review(
                {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "team"}}
            ),
            {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "team"}},
            True,
            Attributes("list", "", True, resource="pods", namespace="team"),
        ),
    ],
    ids=["kubectl-1.32-bytes", "resource", "non-resource", "allowed"],
)
async def test_a_review_in_protobuf_is_read_as_kubectl_sends_it(
    make: Make, body: bytes, spec: dict[str, Any], allowed: bool, attributes: Attributes
) -> None:
    authorizer = TeamOnly()
    client = await make(authorizer)
    resp = await client.post(REVIEW_PATH, data=body, headers={**AUTH, **PROTOBUF})
    assert resp.status == 201
    assert resp.content_type == "application/json"
    answer = await resp.json()
    assert answer["spec"] == spec
    assert answer["status"]["allowed"] is allowed
    assert authorizer.asked == [(BOB, attributes)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not protobuf", "no Kubernetes protobuf prefix"),
        (protobuf_review({}, kind="SubjectAccessReview"), "not a SelfSubjectAccessReview"),
        (b"k8s\x00" + bytes([0x12, 40]) + b"short", "runs past the end"),
        (protobuf_review({}), "exactly one of nonResourceAttributes or resourceAttributes"),
    ],
)
async def test_a_protobuf_body_that_is_not_a_review_gets_a_status(
    make: Make, body: bytes, message: str
) -> None:
    client = await make(TeamOnly())
    resp = await client.post(REVIEW_PATH, data=body, headers={**AUTH, **PROTOBUF})
    answer = await resp.json()
    assert (answer["kind"], answer["code"]) == ("Status", resp.status)
    assert resp.status in (400, 422)
    assert message in answer["message"]


async def test_a_review_the_authorizer_cannot_decide_is_an_internal_error(make: Make) -> None:
    client = await make(TeamOnly(fails=True))
    spec = {"resourceAttributes": {"verb": "list", "resource": "pods"}}
    resp = await client.post(REVIEW_PATH, json=review(spec), headers=AUTH)
    assert resp.status == 500
    assert "503 ServiceUnavailable" in (await resp.json())["message"]


async def test_an_anonymous_review_is_refused(make: Make) -> None:
    client = await make(AlwaysAllow())
    spec = {"resourceAttributes": {"verb": "list", "resource": "pods"}}
    resp = await client.post(REVIEW_PATH, json=review(spec))
    assert resp.status == 401
