"""Login and logout: server-side sessions keyed by a random id, each with an expiry.

The browser holds only the session id, in an HttpOnly, SameSite=Strict cookie. The bearer
token the user typed is checked at login; in Kubernetes mode the session also keeps it,
in this process's memory only, because every call to the cluster is made with it (the
user's own RBAC applies). It is never put in the cookie, a page or a log.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from kubepulse.api.authn import (
    ANONYMOUS,
    Authenticator,
    ChainAuthenticator,
    FrontProxyAuthenticator,
    RequestAuthenticator,
    User,
)

COOKIE = "kubepulse_session"
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class Session:
    id: str
    user: User
    csrf_token: str
    expires: float
    token: str | None = field(default=None, repr=False)
    """Kubernetes mode: the user's bearer token, for calls made as them (repr leaves it
    out, so a logged session never shows it). None in local mode."""


# Where the dashboard's auth middleware leaves the signed-in session for the handlers.
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("kubepulse.dashboard.session", Session)


class Sessions:
    def __init__(
        self, lifetime: float, clock: Callable[[], float], max_sessions: int = MAX_SESSIONS
    ) -> None:
        self.lifetime, self.clock, self.max_sessions = lifetime, clock, max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, user: User, token: str | None = None) -> Session:
        now = self.clock()
        # Expired sessions go at every sign-in, so that no token outlives its session
        # for long in memory.
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= self.max_sessions:  # oldest first
            del self._sessions[next(iter(self._sessions))]
        session = Session(
            secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now + self.lifetime, token
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires <= self.clock():
            del self._sessions[session_id]
            return None
        return session

    def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)


def token_authenticator(authenticator: RequestAuthenticator) -> RequestAuthenticator | None:
    """The parts of the server's authenticator that judge a bearer token by itself.

    Sign-in is decided by the typed token alone. The login request's connection may carry
    a client certificate, or be the front proxy's, and kube-apiserver's order tries x509
    before tokens (k8s.io/apiserver/pkg/authentication/request/union): asked whole, the
    chain could vouch for the connection whatever token was typed. Kept: static tokens
    (without their client CAs), TokenReview and any other authenticator that does not ask
    for client certificates; dropped: the front proxy and anything that reads
    certificates. None when nothing is left: no token can sign in."""
    if isinstance(authenticator, ChainAuthenticator):
        parts = [
            kept
            for part in authenticator.authenticators
            if (kept := token_authenticator(part)) is not None
        ]
        return ChainAuthenticator(parts) if parts else None
    if isinstance(authenticator, FrontProxyAuthenticator):
        return None
    if isinstance(authenticator, Authenticator):
        return Authenticator(authenticator.tokens) if authenticator.tokens else None
    return None if authenticator.wants_client_certificates else authenticator


async def check_token(
    authenticator: RequestAuthenticator | None, request: web.Request, token: str
) -> User | None:
    """Who the bearer token belongs to, asked of token_authenticator(server's) exactly as
    an API request carrying only that token would be; anonymous is nobody. `request`
    must not have had its body read (aiohttp cannot clone it then)."""
    token = token.strip()
    if authenticator is None or not token or any(c in token for c in "\r\n"):
        return None
    # Only the Authorization header: no X-Remote-* or other header of the login request.
    probe = request.clone(headers={"Authorization": f"Bearer {token}"})
    user = await authenticator.identify(probe)
    if user is None or user.name == ANONYMOUS.name:
        return None
    return user


def set_cookie(response: web.StreamResponse, session: Session, path: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        path=path,
        httponly=True,
        secure=secure,
        samesite="Strict",
    )


def clear_cookie(response: web.StreamResponse, path: str, secure: bool) -> None:
    response.del_cookie(COOKIE, path=path, secure=secure, httponly=True, samesite="Strict")
