"""Delegated authentication (TokenReview) and authorization (SubjectAccessReview).

The attribute and wording tables check the rules on their own; the rest runs the server
against the fake kube-apiserver, whose reviews answer from fake.allow(...) and count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse.api.authn import User
from kubepulse.api.authz import Attributes, forbidden, request_attributes, review_spec
from tests.fakeapi.served import M, Served, served
from tests.fakeapi.server import FakeKubeAPI

G = "metrics.k8s.io"


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", f"{M}/nodes", {}, Attributes("list", f"{M}/nodes", True, G, "v1beta1", "nodes")),
        (
            "GET",
            f"{M}/nodes/node-a",
            {},
            Attributes("get", f"{M}/nodes/node-a", True, G, "v1beta1", "nodes", name="node-a"),
        ),
        (
            "GET",
            f"{M}/nodes",
            {"watch": "true"},
            Attributes("watch", f"{M}/nodes", True, G, "v1beta1", "nodes"),
        ),
        ("GET", f"{M}/pods", {}, Attributes("list", f"{M}/pods", True, G, "v1beta1", "pods")),
        (
            "GET",
            f"{M}/namespaces/kube-system/pods",
            {},
            Attributes(
                "list", f"{M}/namespaces/kube-system/pods", True, G, "v1beta1", "pods",
                namespace="kube-system",
            ),
        ),
        (
            "GET",
            f"{M}/namespaces/default/pods/web-1",
            {"watch": "1"},
            Attributes(
                "get", f"{M}/namespaces/default/pods/web-1", True, G, "v1beta1", "pods",
                namespace="default", name="web-1",
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/default",
            {},
            Attributes(
                "get", "/api/v1/namespaces/default", True, "", "v1", "namespaces",
                namespace="default", name="default",
            ),
        ),
        (
            "DELETE",
            "/api/v1/nodes",
            {},
            Attributes("deletecollection", "/api/v1/nodes", True, "", "v1", "nodes"),
        ),
        ("GET", M, {}, Attributes("get", M, False)),
        ("GET", "/apis", {}, Attributes("get", "/apis", False)),
        ("GET", "/metrics", {}, Attributes("get", "/metrics", False)),
        ("POST", "/openapi/v2", {}, Attributes("post", "/openapi/v2", False)),
    ],
)  # fmt: skip
def test_request_attributes_follow_the_apiservers_request_info(
    method: str, path: str, query: dict[str, str], expected: Attributes
) -> None:
    assert request_attributes(method, path, query) == expected


BOB = User("bob", "u-1", ("dev", "system:authenticated"))


@pytest.mark.parametrize(
    ("attributes", "reason", "message", "details"),
    [
        (
            request_attributes("GET", f"{M}/nodes", {}),
            "",
            'nodes.metrics.k8s.io is forbidden: User "bob" cannot list resource "nodes" '
            'in API group "metrics.k8s.io" at the cluster scope',
            {"group": G, "kind": "nodes"},
        ),
        (
            request_attributes("GET", f"{M}/namespaces/ns1/pods/p", {}),
            "no RBAC policy matched",
            'pods.metrics.k8s.io "p" is forbidden: User "bob" cannot get resource "pods" '
            'in API group "metrics.k8s.io" in the namespace "ns1": no RBAC policy matched',
            {"name": "p", "group": G, "kind": "pods"},
        ),
        (
            request_attributes("GET", "/metrics", {}),
            "",
            'forbidden: User "bob" cannot get path "/metrics"',
            {},
        ),
    ],
)
def test_denials_are_worded_as_kube_apiserver_words_them(
    attributes: Attributes, reason: str, message: str, details: dict[str, str]
) -> None:
    response = forbidden(BOB, attributes, reason)
    assert response.status == 403
    assert isinstance(response.body, bytes)
    body = json.loads(response.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
    assert body["message"] == message
    assert body["details"] == details


def test_review_spec_carries_the_user_and_resource_attributes() -> None:
    user = User("alice", "u-2", ("g",), (("scopes", ("view",)),))
    spec = review_spec(user, request_attributes("GET", f"{M}/namespaces/ns1/pods", {}))
    assert spec == {
        "user": "alice",
        "uid": "u-2",
        "groups": ["g"],
        "extra": {"scopes": ["view"]},
        "resourceAttributes": {
            "namespace": "ns1",
            "verb": "list",
            "group": G,
            "version": "v1beta1",
            "resource": "pods",
        },
    }


# ----- against the fake kube-apiserver


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        api.add_token("bob-token", "bob", ("dev",))
        api.add_token("root-token", "root", ("system:masters",))
        api.allow("bob", "list", "nodes.metrics.k8s.io")
        api.allow("bob", "get", "/apis")
        yield api


@pytest.mark.parametrize(
    ("case", "token", "path", "status"),
    [
        ("allowed", "bob-token", f"{M}/nodes", 200),
        ("denied resource", "bob-token", f"{M}/pods", 403),
        ("allowed path", "bob-token", "/apis", 200),
        ("denied path", "bob-token", "/metrics", 403),
        ("unknown token", "nobody-token", f"{M}/nodes", 401),
        ("no credentials", None, f"{M}/nodes", 401),
        ("system:masters needs no review", "root-token", f"{M}/pods", 200),
    ],
)
async def test_requests_are_authenticated_and_authorized_by_the_cluster(
    fake: FakeKubeAPI, tmp_path: Path, case: str, token: str | None, path: str, status: int
) -> None:
    async with served(fake, tmp_path) as server:
        answer = await server.get(path, token=token)
    assert answer.status == status, (case, answer.body)
    if status == 401:
        assert answer.body["message"] == "Unauthorized"
        assert fake.access_reviews == []
    if token == "root-token":
        assert fake.access_reviews == []
    if status == 403:
        assert 'User "bob" cannot' in answer.body["message"]


async def test_denied_list_of_nodes_reads_like_kube_apiserver(
    fake: FakeKubeAPI, tmp_path: Path
) -> None:
    fake.add_token("eve-token", "eve")
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/nodes", token="eve-token")
    assert answer.status == 403
    assert answer.body["message"] == (
        'nodes.metrics.k8s.io is forbidden: User "eve" cannot list resource "nodes" '
        'in API group "metrics.k8s.io" at the cluster scope'
    )
    assert fake.access_reviews[-1]["resourceAttributes"] == {
        "verb": "list",
        "group": G,
        "version": "v1beta1",
        "resource": "nodes",
    }


async def _three_times(server: Served, token: str, path: str) -> list[int]:
    return [(await server.get(path, token=token)).status for _ in range(3)]


@pytest.mark.parametrize(
    ("case", "path", "flags", "statuses", "reviews"),
    [
        ("allowed, cached", f"{M}/nodes", (), [200] * 3, 1),
        ("denied, cached", f"{M}/pods", (), [403] * 3, 1),
        (
            "allowed, not cached",
            f"{M}/nodes",
            ("--authorization-webhook-cache-authorized-ttl", "0"),
            [200] * 3,
            3,
        ),
        (
            "denied, not cached",
            f"{M}/pods",
            ("--authorization-webhook-cache-unauthorized-ttl", "0"),
            [403] * 3,
            3,
        ),
        (
            "denied not cached does not change the allowed cache",
            f"{M}/nodes",
            ("--authorization-webhook-cache-unauthorized-ttl", "0"),
            [200] * 3,
            1,
        ),
    ],
)
async def test_access_reviews_are_cached_for_their_ttl(
    fake: FakeKubeAPI,
    tmp_path: Path,
    case: str,
    path: str,
    flags: tuple[str, ...],
    statuses: list[int],
    reviews: int,
) -> None:
    async with served(fake, tmp_path, *flags) as server:
        assert await _three_times(server, "bob-token", path) == statuses, case
    assert len(fake.access_reviews) == reviews, case
    assert len(fake.token_reviews) == 1, case  # the token's review is cached all along


@pytest.mark.parametrize(
    ("flags", "token_reviews"),
    [((), 1), (("--authentication-token-webhook-cache-ttl", "0"), 3)],
)
async def test_token_reviews_are_cached_for_their_ttl(
    fake: FakeKubeAPI, tmp_path: Path, flags: tuple[str, ...], token_reviews: int
) -> None:
    async with served(fake, tmp_path, *flags) as server:
        assert await _three_times(server, "bob-token", f"{M}/nodes") == [200] * 3
        assert await _three_times(server, "nobody-token", f"{M}/nodes") == [401] * 3
    tokens = [r["token"] for r in fake.token_reviews]
    assert tokens.count("bob-token") == token_reviews
    assert tokens.count("nobody-token") == token_reviews


async def test_a_cached_answer_expires(fake: FakeKubeAPI, tmp_path: Path) -> None:
    flags = ("--authorization-webhook-cache-authorized-ttl", "300ms")
    async with served(fake, tmp_path, *flags) as server:
        assert (await server.get(f"{M}/nodes", token="bob-token")).status == 200
        assert (await server.get(f"{M}/nodes", token="bob-token")).status == 200
        assert len(fake.access_reviews) == 1
        # Ask until the cache lets the answer go and the cluster is asked again.
        statuses, deadline = [], time.monotonic() + 5
        while len(fake.access_reviews) < 2 and time.monotonic() < deadline:
            statuses.append((await server.get(f"{M}/nodes", token="bob-token")).status)
        assert len(fake.access_reviews) == 2
        assert set(statuses) == {200}


@pytest.mark.parametrize(
    ("flags", "path", "status"),
    [
        ((), "/healthz", 200),
        ((), "/livez", 200),
        ((), "/metrics", 401),
        (("--authorization-always-allow-paths", "/healthz,/metrics*"), "/metrics", 200),
        (("--authorization-always-allow-paths", "/healthz,/metrics*"), "/livez", 401),
    ],
)
async def test_always_allowed_paths_need_no_identity_and_no_review(
    fake: FakeKubeAPI, tmp_path: Path, flags: tuple[str, ...], path: str, status: int
) -> None:
    async with served(fake, tmp_path, *flags) as server:
        answer = await server.get(path)
    assert answer.status == status, answer.body
    assert fake.access_reviews == []
    assert fake.token_reviews == []
