"""Who is asking: bearer tokens, client certificates, the front proxy, TokenReview.

Tokens come from a file in kube-apiserver's static token format
(token,user,uid,"group1,group2"; --token-auth-file), or a file that holds one bare
token. Client certificates must be issued by a configured CA; the user is the CN
and the groups the O fields, as in kube-apiserver. The TLS handshake already refuses a
certificate that none of the server's CAs verifies (see kubepulse.tlsauth): each
authenticator here still accepts only a certificate that one of its own CAs issued.

Against a cluster, the server authenticates as an aggregated API server does
(k8s.io/apiserver/pkg/authentication/authenticatorfactory/delegating.go): the
front proxy's client certificate with the user in its request headers, then client
certificates, then bearer tokens, each by a TokenReview the cluster answers. The first
that names a user wins; none does: 401.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import orjson
from aiohttp import web
from cryptography import x509

from kubepulse import tlsauth
from kubepulse.kube.client import ApiError, KubeClient, Unreachable

log = logging.getLogger(__name__)

AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    # user.Info's Extra, as sorted (key, values) pairs so that a User stays hashable.
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def user_info(user: User) -> dict[str, Any]:
    """authentication/v1 UserInfo as JSON: every field omitempty."""
    info: dict[str, Any] = {"username": user.name}
    if user.uid:
        info["uid"] = user.uid
    if user.groups:
        info["groups"] = list(user.groups)
    if user.extra:
        info["extra"] = {key: list(values) for key, values in user.extra}
    return info


# Where the authentication middleware leaves the user for the authorization one.
USER_KEY: web.RequestKey[User] = web.RequestKey("kubepulse.user", User)


class RequestAuthenticator(Protocol):
    """Anything the server's authentication middleware can ask who a request is from."""

    @property
    def wants_client_certificates(self) -> bool:
        """Whether the TLS handshake must ask clients for certificates."""
        ...

    @property
    def client_authorities_for_tls(self) -> list[x509.Certificate]:
        """Every CA whose client certificates this authenticator may accept: the serving
        context must verify client certificates against them (and only them)."""
        ...

    async def identify(self, request: web.Request) -> User | None: ...


ANONYMOUS = User("system:anonymous", groups=("system:unauthenticated",))


class TokenFileError(ValueError):
    pass


def load_tokens(path: Path) -> dict[str, User]:
    """Parse a static token file. Raises TokenFileError naming the line, never the token."""
    try:
        text = path.read_text()
    except OSError as err:
        raise TokenFileError(f"cannot read token file {path}: {err.strerror}") from err
    except UnicodeDecodeError:
        raise TokenFileError(f"{path} is not a token file: it is not text") from None
    tokens: dict[str, User] = {}
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) == 1 and "," not in lines[0]:
        return {lines[0].strip(): User("kubepulse:token", groups=("system:authenticated",))}
    try:
        for number, row in enumerate(csv.reader(io.StringIO("\n".join(lines))), start=1):
            if len(row) < 3 or not row[0] or not row[1]:
                raise TokenFileError(f'{path}: line {number}: want token,user,uid[,"groups"]')
            groups = (
                tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            )
            tokens[row[0]] = User(row[1], row[2], (*groups, "system:authenticated"))
    except csv.Error as err:
        raise TokenFileError(f"{path} is not a token file: {err}") from None
    return tokens


class AuthConfigError(ValueError):
    """The configured token file or client CA cannot be used."""


class NoAuthentication(AuthConfigError):
    """Neither tokens nor a client CA were given, and skipping was not asked for."""


def from_files(
    token_file: Path | None, client_ca_file: Path | None, skip: bool = False
) -> Authenticator:
    """An Authenticator from the usual flags; refuses to authenticate nobody by accident."""
    tokens = load_tokens(token_file) if token_file is not None else None
    authorities = None
    if client_ca_file is not None:
        try:
            authorities = tlsauth.load_authorities(client_ca_file.read_bytes())
        except (OSError, ValueError) as err:
            raise AuthConfigError(f"cannot load client CA file {client_ca_file}: {err}") from err
    if not tokens and not authorities and not skip:
        raise NoAuthentication("no authentication configured")
    return Authenticator(tokens, authorities, skip=skip)


class Authenticator:
    """Static tokens and client certificates from one set of CAs: no network needed."""

    def __init__(
        self,
        tokens: dict[str, User] | None = None,
        client_authorities: list[x509.Certificate] | None = None,
        skip: bool = False,
    ) -> None:
        self.tokens = tokens or {}
        self.client_authorities = client_authorities or []
        self.skip = skip

    def authenticate(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self._token(token.strip())
        if self.client_authorities and request.transport is not None:
            cert = tlsauth.peer_certificate(request.transport.get_extra_info("ssl_object"))
            if cert is not None:
                who = tlsauth.verify_client(cert, self.client_authorities)
                if who is not None:
                    return User(who[0], groups=(*who[1], "system:authenticated"))
                return None
        return ANONYMOUS if self.skip else None

    @property
    def wants_client_certificates(self) -> bool:
        return bool(self.client_authorities)

    @property
    def client_authorities_for_tls(self) -> list[x509.Certificate]:
        return list(self.client_authorities)

    async def identify(self, request: web.Request) -> User | None:
        return self.authenticate(request)

    def _token(self, presented: str) -> User | None:
        # Compare in constant time so that response timing does not reveal token prefixes.
        found: User | None = None
        for token, user in self.tokens.items():
            if hmac.compare_digest(token.encode(), presented.encode()):
                found = user
        return found


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def with_authenticated_group(user: User) -> User:
    """Every authenticated user is in system:authenticated (the apiserver's
    group.AuthenticatedGroupAdder wraps the whole authenticator chain)."""
    if AUTHENTICATED in user.groups or user.name == ANONYMOUS.name:
        return user
    return User(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


class ChainAuthenticator:
    """The first authenticator that names a user wins (the apiserver's union
    authenticator); a request no one vouches for is anonymous to none of them: 401."""

    def __init__(self, authenticators: Sequence[RequestAuthenticator]) -> None:
        self.authenticators = list(authenticators)

    @property
    def wants_client_certificates(self) -> bool:
        return any(a.wants_client_certificates for a in self.authenticators)

    @property
    def client_authorities_for_tls(self) -> list[x509.Certificate]:
        """The CAs of every authenticator, each once. The handshake accepts a certificate
        any of them verifies; each authenticator then takes only its own CAs' ones."""
        return tlsauth.distinct(*(a.client_authorities_for_tls for a in self.authenticators))

    async def identify(self, request: web.Request) -> User | None:
        for authenticator in self.authenticators:
            user = await authenticator.identify(request)
            if user is not None:
                return with_authenticated_group(user)
        return None


# ----- the front proxy (the aggregation layer's request headers)


@dataclass(frozen=True)
class RequestHeaderConfig:
    """--requestheader-* flags, or the same keys of extension-apiserver-authentication."""

    authorities: list[x509.Certificate]
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_headers_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)


class FrontProxyAuthenticator:
    """kube-apiserver's aggregator proxies a request with its own client certificate
    (front-proxy-client, signed by the front-proxy CA) and puts the user it
    authenticated in X-Remote-User, X-Remote-Group and X-Remote-Extra-* headers.

    Those headers are believed only on a connection whose client certificate that CA
    signed, and whose CN is in allowed_names when that list is not empty
    (k8s.io/apiserver/pkg/authentication/request/headerrequest); from anyone else they
    are ignored, or any client could claim to be anyone. The serving context also
    verifies certificates of the client CA, so that CA issuing the certificate itself is
    checked here: a user's certificate never passes for the front proxy.
    """

    def __init__(self, config: RequestHeaderConfig) -> None:
        self.config = config

    @property
    def wants_client_certificates(self) -> bool:
        return True

    @property
    def client_authorities_for_tls(self) -> list[x509.Certificate]:
        return list(self.config.authorities)

    async def identify(self, request: web.Request) -> User | None:
        if request.transport is None:
            return None
        cert = tlsauth.peer_certificate(request.transport.get_extra_info("ssl_object"))
        if cert is None:
            return None
        verified = tlsauth.verify_client(cert, self.config.authorities)
        if verified is None:
            return None
        if self.config.allowed_names and verified[0] not in self.config.allowed_names:
            log.debug("front-proxy certificate CN=%s is not in the allowed names", verified[0])
            return None
        headers = request.headers
        name = next(
            (
                value.strip()
                for header in self.config.username_headers
                for value in headers.getall(header, [])
                if value.strip()
            ),
            "",
        )
        if not name:
            return None
        groups = tuple(
            value
            for header in self.config.group_headers
            for value in headers.getall(header, [])
            if value.strip()
        )
        extra: dict[str, list[str]] = {}
        for header, value in headers.items():
            for prefix in self.config.extra_headers_prefixes:
                if prefix and header.lower().startswith(prefix.lower()):
                    # Lower-cased, then unescaped: keys may hold %-escaped characters.
                    key = urllib.parse.unquote(header[len(prefix) :].lower())
                    extra.setdefault(key, []).append(value)
        return User(
            name,
            groups=groups,
            extra=tuple(sorted((k, tuple(v)) for k, v in extra.items())),
        )


# ----- delegation to the cluster: TokenReview (and SubjectAccessReview, in authz)

V = TypeVar("V")


class ReviewCache(Generic[V]):
    """Answers by key for a time each answer sets; concurrent asks for one key share
    one review (client-go's cached token authenticator uses singleflight the same way)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, V]] = {}
        self._inflight: dict[str, asyncio.Task[tuple[V, float]]] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        task = self._inflight.get(key)
        if task is None:

            async def run() -> tuple[V, float]:
                return await fetch()

            task = asyncio.ensure_future(run())
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        value, ttl = await asyncio.shield(task)
        if ttl > 0:
            self._store(key, time.monotonic() + ttl, value)
        return value

    def _store(self, key: str, expires: float, value: V) -> None:
        self._entries[key] = (expires, value)
        if len(self._entries) > self.max_entries:
            now = time.monotonic()
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            while len(self._entries) > self.max_entries:  # oldest first
                del self._entries[next(iter(self._entries))]


class ReviewClient(KubeClient):
    """The API client with the one thing reviews need: creating an object."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The apiserver's webhook clients give up after 10 s (DelegatingAuthenticationOptions).
        kwargs.setdefault("timeout", 10.0)
        super().__init__(*args, **kwargs)

    async def create(self, path: str, body: Mapping[str, Any]) -> Any:
        with self._translate_errors():
            async with self._request(
                "POST", path, data=orjson.dumps(body), content_type="application/json"
            ) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    text = data.decode(errors="replace").strip()[:200]
                    raise ApiError(resp.status, resp.reason or "", text)
                return orjson.loads(data)


TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


class CachedTokenAuthenticator:
    """Bearer tokens checked by a review that a subclass makes (_review). Answers, yes or
    no, are kept for the time _review gives under the token's SHA-256, so the token
    itself is neither kept nor logged; a review that fails gives 0 and is not kept."""

    def __init__(self) -> None:
        self.cache: ReviewCache[User | None] = ReviewCache()

    @property
    def wants_client_certificates(self) -> bool:
        return False

    @property
    def client_authorities_for_tls(self) -> list[x509.Certificate]:
        return []

    async def identify(self, request: web.Request) -> User | None:
        token = bearer_token(request)
        if token is None:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        return await self.cache.get(key, lambda: self._review(token))

    async def _review(self, token: str) -> tuple[User | None, float]:
        """(who the token belongs to or None, seconds to keep that answer)."""
        raise NotImplementedError


class TokenReviewAuthenticator(CachedTokenAuthenticator):
    """Bearer tokens the cluster vouches for by TokenReview (the apiserver's webhook
    token authenticator); answers are kept for ttl
    (--authentication-token-webhook-cache-ttl, 10 s upstream)."""

    def __init__(self, client: ReviewClient, ttl: float = 10.0) -> None:
        super().__init__()
        self.client, self.ttl = client, ttl

    async def _review(self, token: str) -> tuple[User | None, float]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        try:
            answer = await self.client.create(TOKEN_REVIEW_PATH, body)
        except (ApiError, Unreachable, ValueError) as err:
            log.warning("TokenReview failed: %s", err)
            return None, 0.0
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, dict) or not status.get("authenticated"):
            return None, self.ttl
        user = status.get("user") or {}
        extra = user.get("extra") or {}
        return (
            User(
                str(user.get("username", "")),
                str(user.get("uid", "")),
                tuple(str(g) for g in user.get("groups") or ()),
                tuple(sorted((str(k), tuple(str(x) for x in v)) for k, v in extra.items())),
            ),
            self.ttl,
        )


# ----- kube-system/extension-apiserver-authentication

EXTENSION_AUTH_PATH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"


@dataclass(frozen=True)
class ClusterAuthentication:
    """What kube-apiserver publishes for aggregated API servers to trust: its client CA
    and its front proxy's (pkg/controlplane/controller/clusterauthenticationtrust)."""

    client_authorities: list[x509.Certificate]
    request_header: RequestHeaderConfig | None


def _names(value: str) -> tuple[str, ...]:
    """The ConfigMap holds lists as JSON arrays; a plain comma list is read too."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = value.split(",")
    if isinstance(parsed, str):
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise AuthConfigError(f"not a list of names: {value[:80]!r}")
    return tuple(str(v).strip() for v in parsed if str(v).strip())


def _authorities(pem: str, what: str) -> list[x509.Certificate]:
    try:
        return tlsauth.load_authorities(pem.encode())
    except ValueError as err:
        raise AuthConfigError(f"the {what} of extension-apiserver-authentication: {err}") from err


def cluster_authentication(data: Mapping[str, Any]) -> ClusterAuthentication:
    """Read the ConfigMap's data; raises AuthConfigError for what cannot be used."""
    client = data.get("client-ca-file") or ""
    front = data.get("requestheader-client-ca-file") or ""
    request_header = None
    if front:
        request_header = RequestHeaderConfig(
            _authorities(str(front), "requestheader-client-ca-file"),
            _names(str(data.get("requestheader-allowed-names") or "[]")),
            _names(str(data.get("requestheader-username-headers") or "[]")),
            _names(str(data.get("requestheader-group-headers") or "[]")),
            _names(str(data.get("requestheader-extra-headers-prefix") or "[]")),
        )
    authorities = _authorities(str(client), "client-ca-file") if client else []
    return ClusterAuthentication(authorities, request_header)


async def read_cluster_authentication(client: KubeClient) -> ClusterAuthentication | None:
    """The cluster's ConfigMap, or None when the cluster has none (as upstream, which then
    goes on without it). Raises ApiError, Unreachable or AuthConfigError."""
    try:
        configmap = await client.get(EXTENSION_AUTH_PATH)
    except ApiError as err:
        if err.code == 404:
            log.warning(
                "the cluster has no kube-system/extension-apiserver-authentication ConfigMap: "
                "no front-proxy or client-certificate authentication from it"
            )
            return None
        raise
    data = configmap.get("data") if isinstance(configmap, dict) else None
    return cluster_authentication(data if isinstance(data, dict) else {})
