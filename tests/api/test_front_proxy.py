"""The aggregation layer's front proxy: the test plays kube-apiserver's aggregator.

The aggregator proxies with its front-proxy-client certificate (signed by the front-proxy
CA, published with the allowed names and header names in kube-system/
extension-apiserver-authentication) and names the user in X-Remote-* headers. The server
must believe those headers only on such a connection.

A certificate that none of the server's client CAs verifies fails the TLS handshake
rather than getting a 401, as it would from a Go server: Python's ssl has no verify
callback to let it through to the authenticator (see kubepulse.tlsauth).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
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
        ("the front-proxy CA, a name not allowed", "not-allowed"),
        # The cluster CA verifies it in the handshake; it is a user's, not the front proxy's.
        ("a client certificate of the cluster CA", "cluster-ca"),
    ],
)
async def test_headers_without_the_front_proxy_certificate_are_ignored(
    fake: FakeKubeAPI, tmp_path: Path, case: str, cert: pki.KeyPair | str | None
) -> None:
    if cert == "cluster-ca":
        client: pki.KeyPair | None = fake.client_certificate("front-proxy-client")
    else:
        client = aggregator(fake, cert) if isinstance(cert, str) else cert
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/nodes", cert=client, headers={"X-Remote-User": "alice"})
        if cert == "cluster-ca":  # the certificate's own user, whom nobody allowed anything
            assert answer.status == 403, case
            assert 'User "front-proxy-client" cannot list' in answer.body["message"]
        else:
            assert answer.status == 401, case
            assert answer.body["message"] == "Unauthorized"
        # With a bearer token as well, the token decides who it is, never the header.
        answer = await server.get(
            f"{M}/nodes", cert=client, token="bob-token", headers={"X-Remote-User": "alice"}
        )
        assert answer.status == 403, case
        assert 'User "bob" cannot list' in answer.body["message"]
    assert {r["user"] for r in fake.access_reviews} <= {"bob", "front-proxy-client"}
    assert "alice" not in {r["user"] for r in fake.access_reviews}


async def test_the_front_proxy_certificate_is_no_users_certificate(
    fake: FakeKubeAPI, tmp_path: Path
) -> None:
    """Without the user headers, the front proxy's certificate names nobody: its CN is not
    taken for a user, as it would be if the client-certificate authenticator took it."""
    fake.allow("front-proxy-client", "list", "nodes.metrics.k8s.io")
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/nodes", cert=aggregator(fake))
    assert answer.status == 401, answer.body
    assert fake.access_reviews == []


@pytest.mark.parametrize("token", [None, "bob-token"])
async def test_a_certificate_from_another_ca_fails_the_handshake(
    fake: FakeKubeAPI, tmp_path: Path, token: str | None
) -> None:
    """kube-apiserver would answer 401 (or let the token decide); the server's context
    verifies client certificates against the cluster's CAs in the handshake, since
    Python's ssl cannot hand an unverified one to the authenticator, so the connection
    fails before any request is read. STRANGER_CA even has the front-proxy CA's name."""
    async with served(fake, tmp_path) as server:
        with pytest.raises(aiohttp.ClientConnectionError):
            await server.get(
                f"{M}/nodes", cert=STRANGER, token=token, headers={"X-Remote-User": "alice"}
            )
        assert (await server.get(f"{M}/nodes", token="bob-token")).status == 403
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
        # The cluster's front-proxy CA is no longer trusted at all: its certificate fails
        # the handshake (Python's ssl cannot answer it with a 401, see kubepulse.tlsauth).
        with pytest.raises(aiohttp.ClientConnectionError):
            await server.get(
                f"{M}/nodes", cert=aggregator(fake), headers={"X-Remote-User": "alice"}
            )


async def test_cluster_client_certificates_are_accepted(fake: FakeKubeAPI, tmp_path: Path) -> None:
    """The ConfigMap's client-ca-file (the cluster CA) signs users' certificates."""
    fake.allow("carol", "list", "nodes.metrics.k8s.io")
    async with served(fake, tmp_path) as server:
        answer = await server.get(f"{M}/nodes", cert=fake.client_certificate("carol", ("devs",)))
    assert answer.status == 200, answer.body
    assert fake.access_reviews[-1]["user"] == "carol"
    assert fake.access_reviews[-1]["groups"] == ["devs", "system:authenticated"]
