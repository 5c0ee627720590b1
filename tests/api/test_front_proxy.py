"""The aggregation layer's front proxy: the test plays kube-apiserver's aggregator.

The aggregator proxies with its front-proxy-client certificate (signed by the front-proxy
CA, published with the allowed names and header names in kube-system/
extension-apiserver-authentication) and names the user in X-Remote-* headers. The server
must believe those headers only on such a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse import pki
from tests.fakeapi.served import M, served
from tests.fakeapi.server import FakeKubeAPI


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        api.allow("alice", "list", "nodes.metrics.k8s.io")
        api.allow("admins", "list", "pods.metrics.k8s.io")
        api.add_token("bob-token", "bob")
        yield api


def aggregator(fake: FakeKubeAPI, name: str = "front-proxy-client") -> pki.KeyPair:
    return pki.issue(fake.front_proxy_ca, name, client=True)


STRANGER_CA = pki.new_ca("front-proxy-ca")  # the same name as the real one, another key
STRANGER = pki.issue(STRANGER_CA, "front-proxy-client", client=True)


@pytest.mark.parametrize(
    ("case", "path", "headers", "expected"),
    [
        ("allowed user", "nodes", {"X-Remote-User": "alice"}, 200),
        ("denied user", "pods", {"X-Remote-User": "alice"}, 403),
        ("allowed by group", "pods", {"X-Remote-User": "eve", "X-Remote-Group": "admins"}, 200),
        ("no user header", "nodes", {"X-Remote-Group": "admins"}, 401),
    ],
)
async def test_aggregator_requests_are_the_user_in_the_headers(
    fake: FakeKubeAPI,
    tmp_path: Path,
    case: str,
    path: str,
    headers: dict[str, str],
    expected: int,
) -> None:
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/{path}", cert=aggregator(fake), headers=headers)
        assert answer.status == expected, (case, answer.body)
        if expected != 401:
            review = fake.access_reviews[-1]
            assert review["user"] == headers["X-Remote-User"]
            assert "system:authenticated" in review["groups"]


async def test_denial_names_the_user_from_the_headers(fake: FakeKubeAPI, tmp_path: Path) -> None:
    async with served(fake, tmp_path) as server:
        answer = await server.get(
            f"{M}/namespaces/kube-system/pods",
            cert=aggregator(fake),
            headers={"X-Remote-User": "alice"},
        )
    assert answer.status == 403
    assert answer.body["reason"] == "Forbidden"
    assert answer.body["message"] == (
        'pods.metrics.k8s.io is forbidden: User "alice" cannot list resource "pods" '
        'in API group "metrics.k8s.io" in the namespace "kube-system"'
    )


async def test_groups_and_extra_headers_reach_the_access_review(
    fake: FakeKubeAPI, tmp_path: Path
) -> None:
    headers = {
        "X-Remote-User": "alice",
        "X-Remote-Group": "team-a",
        "X-Remote-Extra-Scopes": "view",
        "X-Remote-Extra-Acme.com%2Fproject": "kube",
    }
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/nodes", cert=aggregator(fake), headers=headers)
    assert answer.status == 200
    spec = fake.access_reviews[-1]
    assert spec["groups"] == ["team-a", "system:authenticated"]
    assert spec["extra"] == {"scopes": ["view"], "acme.com/project": ["kube"]}


@pytest.mark.parametrize(
    ("case", "cert"),
    [
        ("no certificate", None),
        (
            "a certificate from another CA",
            pki.issue(STRANGER_CA, "front-proxy-client", client=True),
        ),
        ("the front-proxy CA, a name not allowed", "not-allowed"),
    ],
)
async def test_headers_without_the_front_proxy_certificate_are_ignored(
    fake: FakeKubeAPI, tmp_path: Path, case: str, cert: pki.KeyPair | str | None
) -> None:
    client = aggregator(fake, cert) if isinstance(cert, str) else cert
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/nodes", cert=client, headers={"X-Remote-User": "alice"})
        assert answer.status == 401, case
        assert answer.body["message"] == "Unauthorized"
        # With a bearer token as well, the token decides who it is, never the header.
        answer = await server.get(
            f"{M}/nodes", cert=client, token="bob-token", headers={"X-Remote-User": "alice"}
        )
        assert answer.status == 403, case
        assert 'User "bob" cannot list' in answer.body["message"]
    assert {r["user"] for r in fake.access_reviews} == {"bob"}


async def test_requestheader_flags_replace_the_configmap(fake: FakeKubeAPI, tmp_path: Path) -> None:
    own = pki.new_ca("my-front-proxy")
    own.write(tmp_path / "fp-ca.crt", tmp_path / "fp-ca.key")
    flags = (
        "--requestheader-client-ca-file", str(tmp_path / "fp-ca.crt"),
        "--requestheader-allowed-names", "my-proxy",
        "--requestheader-username-headers", "X-Who",
        "--requestheader-group-headers", "X-Teams",
    )  # fmt: skip
    async with served(fake, tmp_path, *flags) as server:
        mine = pki.issue(own, "my-proxy", client=True)
        ok = await server.get(f"{M}/pods", cert=mine, headers={"X-Who": "x", "X-Teams": "admins"})
        assert ok.status == 200, ok.body
        header = await server.get(f"{M}/nodes", cert=mine, headers={"X-Remote-User": "alice"})
        assert header.status == 401
        theirs = await server.get(
            f"{M}/nodes", cert=aggregator(fake), headers={"X-Remote-User": "alice"}
        )
        assert theirs.status == 401


async def test_cluster_client_certificates_are_accepted(fake: FakeKubeAPI, tmp_path: Path) -> None:
    """The ConfigMap's client-ca-file (the cluster CA) signs users' certificates."""
    fake.allow("carol", "list", "nodes.metrics.k8s.io")
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/nodes", cert=fake.client_certificate("carol", ("devs",)))
    assert answer.status == 200, answer.body
    assert fake.access_reviews[-1]["user"] == "carol"
    assert fake.access_reviews[-1]["groups"] == ["devs", "system:authenticated"]
