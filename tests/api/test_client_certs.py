"""Client certificates over real TLS on 127.0.0.1, through the server's own serving
context and authenticator chain (--token-auth-file, --client-ca-file and
--requestheader-client-ca-file).

kube-apiserver verifies a client certificate in its authenticator, after the handshake,
so a certificate no CA of its verifies gets a 401. Python 3.11's ssl has no verify
callback: the serving context holds the CAs of the whole chain and OpenSSL verifies in
the handshake (kubepulse.tlsauth). So a certificate from an unknown CA, an expired one
and one whose extended key usage lacks clientAuth fail the handshake here, where Go
would answer 401; the authenticator still checks each (a 401 for a certificate that
expires while its connection is kept alive), and still tells which set of CAs issued a
certificate, so that a user's certificate never passes for the front proxy's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubepulse import pki, tlsauth
from kubepulse.api.app import authentication
from kubepulse.api.authn import (
    USER_KEY,
    Authenticator,
    ChainAuthenticator,
    FrontProxyAuthenticator,
    RequestHeaderConfig,
    User,
)
from kubepulse.server import auth as server_auth
from kubepulse.server.config import AuthOptions, ConfigError, ServingOptions

TOKEN = "tom-token-5f2a9c"
CLIENT_CA = pki.new_ca("kubernetes")
FRONT_CA = pki.new_ca("front-proxy-ca")
# Named as the cluster's CAs, with other keys: only a signature tells them apart.
STRANGER_CA = pki.new_ca("kubernetes")
FRONT_NAMED_LIKE_CLIENT_CA = pki.new_ca("kubernetes")

NOW = dt.datetime.now(dt.UTC)
AUTH = "system:authenticated"
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER = ExtendedKeyUsageOID.SERVER_AUTH


@dataclass(frozen=True)
class Cert:
    """A client's certificate, the intermediates it sends with it, and its key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def write(self, path: Path) -> tuple[Path, Path]:
        cert, key = path.with_suffix(".crt"), path.with_suffix(".key")
        pki.KeyPair(self.cert, self.key).write(cert, key)
        pem = serialization.Encoding.PEM
        cert.write_bytes(b"".join(c.public_bytes(pem) for c in (self.cert, *self.chain)))
        return cert, key


def issue(
    ca: pki.KeyPair,
    cn: str | None,
    organizations: Sequence[str] = (),
    *,
    usages: Sequence[x509.ObjectIdentifier] | None = (CLIENT,),
    not_before: dt.datetime = NOW - dt.timedelta(hours=1),
    not_after: dt.datetime = NOW + dt.timedelta(days=1),
    is_ca: bool = False,
) -> pki.KeyPair:
    """A certificate ca signs; usages None: no extended key usage extension at all; cn
    None: no common name."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    if cn is not None:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return pki.KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def root_ca(name: str) -> pki.KeyPair:
    """A CA that may sign an intermediate CA (pki.new_ca's may not: pathlen 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return pki.KeyPair(cert, key)


def client(pair: pki.KeyPair, *chain: pki.KeyPair) -> Cert:
    return Cert(pair.cert, pair.key, tuple(c.cert for c in chain))


@dataclass
class Answer:
    status: int
    body: Any


@dataclass
class Served:
    url: str
    server_ca: Path
    tmp: Path
    context: ssl.SSLContext

    def client_context(self, cert: Cert | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if cert is not None:
            ctx.load_cert_chain(*cert.write(self.tmp / f"client-{id(cert)}"))
        return ctx

    async def get(
        self,
        cert: Cert | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if session is None:
            connector = aiohttp.TCPConnector(ssl=self.client_context(cert))
            async with aiohttp.ClientSession(connector=connector) as own:
                return await self.get(cert, token, headers, own)
        async with session.get(self.url, headers=sent) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return Answer(resp.status, body)


async def whoami(request: web.Request) -> web.Response:
    user = request[USER_KEY]
    return web.json_response({"user": user.name, "groups": list(user.groups)})


@asynccontextmanager
async def served(
    tmp: Path, front_ca: pki.KeyPair = FRONT_CA, client_ca: pki.KeyPair = CLIENT_CA
) -> AsyncIterator[Served]:
    """The server's authenticator and serving context, from its flags, over TLS."""
    (tmp / "tokens.csv").write_text(f'{TOKEN},tom,1001,"ops"\n')
    (tmp / "client-ca.crt").write_bytes(client_ca.cert_pem())
    (tmp / "front-proxy-ca.crt").write_bytes(front_ca.cert_pem())
    options = AuthOptions(
        token_auth_file=tmp / "tokens.csv",
        client_ca_file=tmp / "client-ca.crt",
        requestheader_client_ca_file=tmp / "front-proxy-ca.crt",
        requestheader_allowed_names=("front-proxy-client",),
    )
    chain = server_auth.authenticator(options)
    serving = ServingOptions(bind_address="127.0.0.1", cert_dir=tmp / "pki")
    ctx = server_auth.serving_context(serving, chain)
    app = web.Application(middlewares=[authentication(chain)])
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield Served(f"https://127.0.0.1:{port}/whoami", tmp / "pki" / "ca.crt", tmp, ctx)
    finally:
        await runner.cleanup()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as it:
        yield it


def user(name: str, *groups: str) -> dict[str, Any]:
    return {"user": name, "groups": [*groups, AUTH]}


# ----- what the handshake lets through, and who the authenticator says it is


async def test_the_context_verifies_client_certificates_against_the_chains_cas(
    server: Served,
) -> None:
    assert server.context.verify_mode == ssl.CERT_OPTIONAL
    assert server.context.cert_store_stats()["x509_ca"] == 2  # client and front-proxy CA


async def test_a_token_client_without_a_certificate_is_served(server: Served) -> None:
    answer = await server.get(token=TOKEN)
    assert (answer.status, answer.body) == (200, user("tom", "ops"))
    assert (await server.get()).status == 401
    assert (await server.get(token="not-the-token")).status == 401


@pytest.mark.parametrize(
    ("case", "usages"),
    [("clientAuth", (CLIENT,)), ("clientAuth among others", (SERVER, CLIENT)), ("no EKU", None)],
)
async def test_a_client_ca_certificate_is_its_cn_and_o(
    server: Served, case: str, usages: Sequence[x509.ObjectIdentifier] | None
) -> None:
    cert = client(issue(CLIENT_CA, "jane", ["devs", "ops"], usages=usages))
    answer = await server.get(cert)
    assert (answer.status, answer.body) == (200, user("jane", "devs", "ops")), case


async def test_a_front_proxy_certificate_is_the_front_proxy(server: Served) -> None:
    proxy = client(issue(FRONT_CA, "front-proxy-client"))
    answer = await server.get(proxy, headers={"X-Remote-User": "alice", "X-Remote-Group": "qa"})
    assert (answer.status, answer.body) == (200, user("alice", "qa"))


async def test_a_front_proxy_certificate_is_no_users_certificate(server: Served) -> None:
    # No user headers: the front proxy names nobody, and its CN is no user of the client CA.
    assert (await server.get(client(issue(FRONT_CA, "front-proxy-client")))).status == 401
    # Nor is a front-proxy certificate with a name the front proxy may not have.
    other = client(issue(FRONT_CA, "someone"))
    assert (await server.get(other, headers={"X-Remote-User": "alice"})).status == 401


async def test_a_client_ca_certificate_is_not_the_front_proxy(server: Served) -> None:
    """Even with the front proxy's allowed name, a certificate of the client CA is a user's:
    the headers are ignored and the user is its CN."""
    cert = client(issue(CLIENT_CA, "front-proxy-client"))
    answer = await server.get(cert, headers={"X-Remote-User": "admin", "X-Remote-Group": "x"})
    assert (answer.status, answer.body) == (200, user("front-proxy-client"))


async def test_cas_with_one_name_are_told_apart_by_their_signatures(tmp_path: Path) -> None:
    """The front-proxy CA named as the client CA ("kubernetes"): which one issued a
    certificate is its signature's to say, never its issuer's name."""
    async with served(tmp_path, FRONT_NAMED_LIKE_CLIENT_CA) as server:
        proxy = client(issue(FRONT_NAMED_LIKE_CLIENT_CA, "front-proxy-client"))
        answer = await server.get(proxy, headers={"X-Remote-User": "alice"})
        assert (answer.status, answer.body) == (200, user("alice"))
        assert (await server.get(proxy)).status == 401
        mine = client(issue(CLIENT_CA, "front-proxy-client", ["devs"]))
        answer = await server.get(mine, headers={"X-Remote-User": "alice"})
        assert (answer.status, answer.body) == (200, user("front-proxy-client", "devs"))


async def test_a_certificate_from_an_intermediate_ca_is_refused(tmp_path: Path) -> None:
    """The handshake builds the chain through the intermediate the client sends, but the
    authenticator takes only a certificate that one of its own CAs issued itself (put
    intermediates in the CA file): 401."""
    root = root_ca("kubernetes")
    intermediate = issue(root, "kubernetes-intermediate", is_ca=True, usages=None)
    async with served(tmp_path, client_ca=root) as server:
        chained = client(issue(intermediate, "jane"), intermediate)
        assert (await server.get(chained)).status == 401
        assert (await server.get(chained, headers={"X-Remote-User": "alice"})).status == 401
        direct = client(issue(root, "jane"))
        assert (await server.get(direct)).body == user("jane")


@pytest.mark.parametrize(
    ("case", "cert"),
    [
        ("an unknown CA with the client CA's name", client(issue(STRANGER_CA, "jane"))),
        ("an unknown CA, the front proxy's name", client(issue(STRANGER_CA, "front-proxy-client"))),
        # OpenSSL checks these itself when the handshake verifies the certificate:
        (
            "expired",
            client(
                issue(
                    CLIENT_CA,
                    "jane",
                    not_before=NOW - dt.timedelta(days=2),
                    not_after=NOW - dt.timedelta(days=1),
                )
            ),
        ),
        ("not yet valid", client(issue(CLIENT_CA, "jane", not_before=NOW + dt.timedelta(days=1)))),
        ("serverAuth only", client(issue(CLIENT_CA, "jane", usages=(SERVER,)))),
    ],
)
async def test_a_certificate_the_cas_do_not_verify_fails_the_handshake(
    server: Served, case: str, cert: Cert
) -> None:
    """kube-apiserver answers these with 401 (or lets a good token decide); Python's ssl
    cannot hand them to the authenticator, so the connection fails, token or not."""
    for token in (None, TOKEN):
        with pytest.raises(aiohttp.ClientConnectionError):
            await server.get(cert, token=token, headers={"X-Remote-User": "alice"})
    assert (await server.get(token=TOKEN)).status == 200, case  # the server is still up


async def test_a_certificate_that_expires_on_a_kept_alive_connection_gets_401(
    server: Served,
) -> None:
    """The handshake checked the certificate when the connection opened; each request is
    checked again by the authenticator, as Go's is."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires = now + dt.timedelta(seconds=4)
    cert = client(
        issue(CLIENT_CA, "jane", not_before=now - dt.timedelta(hours=1), not_after=expires)
    )
    connector = aiohttp.TCPConnector(ssl=server.client_context(cert), limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert (await server.get(session=session)).body == user("jane")
        await asyncio.sleep((expires - dt.datetime.now(dt.UTC)).total_seconds() + 1.5)
        answer = await server.get(session=session)  # the same connection: no new handshake
    assert answer.status == 401


# ----- the authenticators on their own (what reaches them past the handshake)


class SSLObject:
    def __init__(self, cert: x509.Certificate | None) -> None:
        self.der = cert.public_bytes(serialization.Encoding.DER) if cert else None

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.der


class Transport:
    def __init__(self, cert: x509.Certificate | None) -> None:
        self.ssl_object = SSLObject(cert)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.ssl_object if name == "ssl_object" else default


def request_with(cert: x509.Certificate | None, **headers: str) -> web.Request:
    return make_mocked_request("GET", "/", headers=headers, transport=Transport(cert))


STATIC = Authenticator({TOKEN: User("tom")}, [CLIENT_CA.cert])
FRONT = FrontProxyAuthenticator(RequestHeaderConfig([FRONT_CA.cert], ("front-proxy-client",)))


@pytest.mark.parametrize(
    ("case", "cert", "expected"),
    [
        ("good", issue(CLIENT_CA, "jane", ["devs"]), User("jane", groups=("devs", AUTH))),
        ("no EKU", issue(CLIENT_CA, "jane", usages=None), User("jane", groups=(AUTH,))),
        (
            "expired",
            issue(CLIENT_CA, "jane", not_before=NOW - dt.timedelta(days=2), not_after=NOW),
            None,
        ),
        ("not yet valid", issue(CLIENT_CA, "jane", not_before=NOW + dt.timedelta(days=1)), None),
        ("serverAuth only", issue(CLIENT_CA, "jane", usages=(SERVER,)), None),
        ("no CN", issue(CLIENT_CA, None, ["devs"]), None),
        ("the front-proxy CA's", issue(FRONT_CA, "front-proxy-client"), None),
        ("an unknown CA with the client CA's name", issue(STRANGER_CA, "jane"), None),
    ],
)
async def test_the_client_certificate_authenticator(
    case: str, cert: pki.KeyPair, expected: User | None
) -> None:
    assert await STATIC.identify(request_with(cert.cert)) == expected, case


async def test_the_front_proxy_authenticator_takes_only_its_own_cas_certificates() -> None:
    headers = {"X-Remote-User": "alice"}
    proxy = issue(FRONT_CA, "front-proxy-client")
    assert await FRONT.identify(request_with(proxy.cert, **headers)) == User("alice")
    for case, cert in [
        ("the client CA's, with the allowed name", issue(CLIENT_CA, "front-proxy-client")),
        ("named as the front-proxy CA, another key", issue(pki.new_ca("front-proxy-ca"), "x")),
        ("expired", issue(FRONT_CA, "front-proxy-client", not_after=NOW)),
        ("serverAuth only", issue(FRONT_CA, "front-proxy-client", usages=(SERVER,))),
    ]:
        assert await FRONT.identify(request_with(cert.cert, **headers)) is None, case
    assert await FRONT.identify(request_with(None, **headers)) is None


def test_the_chain_gives_every_ca_once_for_the_handshake() -> None:
    chain = ChainAuthenticator([FRONT, STATIC, Authenticator(None, [CLIENT_CA.cert])])
    assert chain.client_authorities_for_tls == [FRONT_CA.cert, CLIENT_CA.cert]
    assert Authenticator({TOKEN: User("tom")}).client_authorities_for_tls == []


def test_asking_for_certificates_without_a_ca_is_an_error(tmp_path: Path) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(ValueError, match="no CA"):
        tlsauth.request_client_certificates(ctx, [])
    assert ctx.verify_mode == ssl.CERT_NONE

    class CertificatesWithoutCAs(Authenticator):
        @property
        def wants_client_certificates(self) -> bool:
            return True

    serving = ServingOptions(bind_address="127.0.0.1", cert_dir=tmp_path)
    with pytest.raises(ConfigError, match="no client CA"):
        server_auth.serving_context(serving, CertificatesWithoutCAs())
