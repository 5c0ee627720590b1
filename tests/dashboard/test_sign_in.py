"""Sign-in is decided by the typed token alone, whatever else the connection carries.

The dashboard is served over TLS asking for client certificates, behind the same kind
of authenticator chain as `kubepulse server` against a cluster: the front proxy, client
certificates, then tokens. kube-apiserver tries x509 before tokens, so a chain asked
whole would let a client certificate (or the front proxy's, with X-Remote-User) sign in
with any token typed; here every such attempt is refused."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from kubepulse import pki, tlsauth
from kubepulse.api.authn import (
    Authenticator,
    ChainAuthenticator,
    FrontProxyAuthenticator,
    RequestAuthenticator,
    RequestHeaderConfig,
    User,
)
from kubepulse.dashboard.sessions import token_authenticator
from tests.dashboard.conftest import parts, root_app

GOOD = "alice-token-0c1d2e3f"
CLIENT_CA = pki.new_ca("kubernetes")
FRONT_CA = pki.new_ca("front-proxy-ca")


class ApiserverX509:
    """kube-apiserver's x509 request authenticator: a verified client certificate names
    the user, whatever the Authorization header says (and it comes first in the chain)."""

    @property
    def wants_client_certificates(self) -> bool:
        return True

    @property
    def client_authorities_for_tls(self) -> list[x509.Certificate]:
        return [CLIENT_CA.cert]

    async def identify(self, request: web.Request) -> User | None:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        cert = tlsauth.peer_certificate(ssl_object)
        who = tlsauth.verify_client(cert, [CLIENT_CA.cert]) if cert is not None else None
        return User(who[0], groups=who[1]) if who else None


class TokenOnly:
    """An authenticator that reads nothing but the token (TokenReview, SelfSubjectReview)."""

    @property
    def wants_client_certificates(self) -> bool:
        return False

    @property
    def client_authorities_for_tls(self) -> list[x509.Certificate]:
        return []

    async def identify(self, request: web.Request) -> User | None:
        return None


FRONT = FrontProxyAuthenticator(RequestHeaderConfig([FRONT_CA.cert], ("front-proxy-client",)))
STATIC = Authenticator({GOOD: User("alice")}, [CLIENT_CA.cert], skip=True)
TOKEN_ONLY = TokenOnly()


def chain() -> ChainAuthenticator:
    return ChainAuthenticator([FRONT, ApiserverX509(), STATIC])


def describe(found: RequestAuthenticator | None) -> Any:
    """A comparable picture of what token_authenticator kept."""
    if isinstance(found, ChainAuthenticator):
        return [describe(a) for a in found.authenticators]
    if isinstance(found, Authenticator):
        return ("static", sorted(found.tokens), len(found.client_authorities), found.skip)
    return found


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (STATIC, ("static", [GOOD], 0, False)),  # its tokens; no client CA, no skip
        (Authenticator(None, [CLIENT_CA.cert]), None),  # certificates only: no token signs in
        (FRONT, None),
        (ApiserverX509(), None),
        (TOKEN_ONLY, TOKEN_ONLY),
        (
            ChainAuthenticator([FRONT, ApiserverX509(), STATIC, TOKEN_ONLY]),
            [("static", [GOOD], 0, False), TOKEN_ONLY],
        ),
        (ChainAuthenticator([FRONT, ApiserverX509()]), None),
    ],
)
def test_sign_in_keeps_only_the_authenticators_that_judge_a_token(
    given: RequestAuthenticator, kept: Any
) -> None:
    assert describe(token_authenticator(given)) == kept


@dataclass
class Served:
    url: str
    tmp: Path
    ca: pki.KeyPair

    async def sign_in(
        self, token: str, cert: pki.KeyPair | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """The login's status and, when signed in, who the session says is signed in."""
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem().decode())
        if cert is not None:
            cert.write(self.tmp / "client.crt", self.tmp / "client.key")
            ctx.load_cert_chain(self.tmp / "client.crt", self.tmp / "client.key")
        connector = aiohttp.TCPConnector(ssl=ctx)
        # unsafe: the jar then keeps cookies from an IP address (127.0.0.1).
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
            async with session.post(
                self.url + "login", data={"token": token}, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
            if status != 303:
                return status, ""
            async with session.get(self.url + "api/session") as info:
                return status, str((await info.json())["user"])


@asynccontextmanager
async def over_tls(authenticator: RequestAuthenticator, tmp: Path) -> AsyncIterator[Served]:
    ca = pki.new_ca("dashboard")
    serving = pki.issue(ca, "localhost", ips=[ip_address("127.0.0.1")])
    serving.write(tmp / "serving.crt", tmp / "serving.key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "serving.crt", tmp / "serving.key")
    tlsauth.request_client_certificates(ctx, authenticator.client_authorities_for_tls)
    dashboard = parts(None)
    dashboard.authenticator = authenticator
    runner = web.AppRunner(root_app(dashboard))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    try:
        yield Served(f"https://127.0.0.1:{runner.addresses[0][1]}/dashboard/", tmp, ca)
    finally:
        await runner.cleanup()


MALLORY = pki.issue(CLIENT_CA, "mallory", organizations=["system:masters"], client=True)
PROXY = pki.issue(FRONT_CA, "front-proxy-client", client=True)


@pytest.mark.parametrize(
    ("case", "token", "cert", "headers", "expected"),
    [
        ("a client certificate with a wrong token", "wrong", MALLORY, None, (401, "")),
        (
            "the front proxy's certificate and headers with a wrong token",
            "wrong",
            PROXY,
            {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"},
            (401, ""),
        ),
        ("the good token with someone's certificate", GOOD, MALLORY, None, (303, "alice")),
        ("the good token alone", GOOD, None, None, (303, "alice")),
        ("a wrong token alone", "wrong", None, None, (401, "")),
    ],
)
async def test_the_typed_token_alone_decides_the_sign_in(
    tmp_path: Path,
    case: str,
    token: str,
    cert: pki.KeyPair | None,
    headers: dict[str, str] | None,
    expected: tuple[int, str],
) -> None:
    async with over_tls(chain(), tmp_path) as served:
        assert await served.sign_in(token, cert, headers) == expected, case
