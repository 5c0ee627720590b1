"""SelfSubjectReview: kubepulse's API answers it, and the dashboard asks it of a cluster."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from kubepulse.api import whoami
from kubepulse.api.app import authentication, errors_as_status
from kubepulse.api.authn import Authenticator, User
from kubepulse.kube.kubeconfig import Credentials
from tests.api.conftest import AUTH, TOKEN, MakeClient
from tests.support import free_port

ADMIN = User("admin", "1", ("system:masters",))
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
# What kubectl v1.32 sends for `kubectl auth whoami`: an empty review in protobuf.
KUBECTL_HEADERS = {
    **AUTH,
    "Accept": "application/vnd.kubernetes.protobuf,application/json",
    "Content-Type": "application/vnd.kubernetes.protobuf",
}
KUBECTL_BODY = (
    b"k8s\x00\n-\n\x18authentication.k8s.io/v1\x12\x11SelfSubjectReview\x12\x1a\n\x10\n"
    b'\x00\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x06\n\x04\n\x00\x12\x00\x1a\x00"\x00'
)


# ----- the route kubepulse's API serves


async def test_the_api_answers_a_self_subject_review_with_the_callers_user(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    resp = await client.post(REVIEW, data=KUBECTL_BODY, headers=KUBECTL_HEADERS)
    assert resp.status == 201
    assert resp.content_type == "application/json"
    assert await resp.json() == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {"username": "admin", "uid": "1", "groups": ["system:masters"]}},
    }


@pytest.mark.parametrize(
    ("method", "headers", "status", "reason"),
    [
        ("POST", {}, 401, "Unauthorized"),
        ("POST", {"Authorization": "Bearer not-the-token"}, 401, "Unauthorized"),
        ("GET", AUTH, 405, "MethodNotAllowed"),
    ],
)
async def test_the_review_route_refuses_as_the_api_server_does(
    make_client: MakeClient, method: str, headers: dict[str, str], status: int, reason: str
) -> None:
    client = await make_client()
    resp = await client.request(method, REVIEW, headers=headers)
    assert resp.status == status
    body = await resp.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", reason, status)


@pytest.mark.parametrize(
    ("user", "user_info"),
    [
        (User("bob"), {"username": "bob"}),
        (
            User("alice", "u-7", ("dev", "system:authenticated")),
            {"username": "alice", "uid": "u-7", "groups": ["dev", "system:authenticated"]},
        ),
        (
            User("carol", extra=(("scopes", ("a", "b")), ("team", ("x",)))),
            {"username": "carol", "extra": {"scopes": ["a", "b"], "team": ["x"]}},
        ),
    ],
)
def test_a_review_holds_the_user_and_reads_back_as_it(
    user: User, user_info: dict[str, Any]
) -> None:
    review = whoami.review(user)
    assert review["status"] == {"userInfo": user_info}
    assert whoami.user_of(review) == user


@pytest.mark.parametrize(
    "answer",
    [None, [], {}, {"status": {}}, {"status": {"userInfo": {}}}, {"status": {"userInfo": []}}],
)
def test_an_answer_without_a_username_names_nobody(answer: Any) -> None:
    assert whoami.user_of(answer) is None


def test_without_credentials_keeps_where_the_server_is_and_nothing_of_who() -> None:
    creds = Credentials(
        server="https://127.0.0.1:6443",
        ca_pem=b"CA",
        token="secret",
        client_cert_pem=b"CERT",
        client_key_pem=b"KEY",
        username="u",
        password="p",
        namespace="team",
        tls_server_name="kubernetes",
    )
    assert whoami.without_credentials(creds) == Credentials(
        server="https://127.0.0.1:6443",
        ca_pem=b"CA",
        namespace="team",
        tls_server_name="kubernetes",
    )


# ----- the dashboard's authenticator, against a server that answers reviews


def review_server(paths: tuple[str, ...], calls: list[str]) -> web.Application:
    """An API server that knows one token and answers SelfSubjectReview at paths."""

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        calls.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(
        middlewares=[count, errors_as_status, authentication(Authenticator({TOKEN: ADMIN}))]
    )
    for path in paths:
        app.router.add_post(path, whoami.answer)
    return app


MakeAuthenticator = Callable[
    ..., Awaitable[tuple[whoami.SelfSubjectReviewAuthenticator, list[str]]]
]


@pytest.fixture
def make_authenticator(aiohttp_client: Any) -> MakeAuthenticator:
    async def make(
        paths: tuple[str, ...] = (whoami.PATH,),
    ) -> tuple[whoami.SelfSubjectReviewAuthenticator, list[str]]:
        calls: list[str] = []
        client: TestClient[Any, Any] = await aiohttp_client(review_server(paths, calls))
        server = str(client.make_url("")).rstrip("/")
        # The kubeconfig's own token must never be what the review is made with.
        creds = Credentials(server=server, token="the-dashboards-own-token")
        return whoami.SelfSubjectReviewAuthenticator(creds), calls

    return make


def request_with(authorization: str | None) -> web.Request:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return make_mocked_request("POST", "/dashboard/login", headers=headers)


@pytest.mark.parametrize(
    ("authorization", "user", "reviews"),
    [
        (f"Bearer {TOKEN}", ADMIN, 1),
        (f"bearer {TOKEN}", ADMIN, 1),
        ("Bearer not-the-token", None, 1),
        (f"Basic {TOKEN}", None, 0),
        ("Bearer ", None, 0),
        (None, None, 0),
    ],
)
async def test_a_token_is_who_the_cluster_says_it_is(
    make_authenticator: MakeAuthenticator,
    authorization: str | None,
    user: User | None,
    reviews: int,
) -> None:
    auth, calls = await make_authenticator()
    assert await auth.identify(request_with(authorization)) == user
    assert calls == [whoami.PATH] * reviews


@pytest.mark.parametrize("token", [TOKEN, "not-the-token"])
async def test_answers_yes_and_no_are_kept_for_a_while(
    make_authenticator: MakeAuthenticator, token: str
) -> None:
    auth, calls = await make_authenticator()
    first = await auth.identify(request_with(f"Bearer {token}"))
    again = await auth.identify(request_with(f"Bearer {token}"))
    assert first == again
    assert calls == [whoami.PATH]


async def test_a_cluster_with_only_the_beta_api_is_asked_there(
    make_authenticator: MakeAuthenticator,
) -> None:
    auth, calls = await make_authenticator(paths=(whoami.BETA_PATH,))
    assert await auth.identify(request_with(f"Bearer {TOKEN}")) == ADMIN
    assert calls == [whoami.PATH, whoami.BETA_PATH]


async def test_an_unreachable_cluster_is_nobody_is_not_kept_and_the_token_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    creds = Credentials(server=f"http://127.0.0.1:{free_port()}")
    auth = whoami.SelfSubjectReviewAuthenticator(creds, timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="kubepulse.api.whoami"):
        assert await auth.identify(request_with(f"Bearer {TOKEN}")) is None
        assert await auth.identify(request_with(f"Bearer {TOKEN}")) is None
    failures = [r for r in caplog.records if "SelfSubjectReview failed" in r.getMessage()]
    assert len(failures) == 2  # asked again: a failure to ask is not an answer
    assert TOKEN not in caplog.text
