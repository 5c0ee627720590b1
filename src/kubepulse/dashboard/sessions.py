"""Login and logout: server-side sessions keyed by a random id, each with an expiry.

The browser holds only the session id, in an HttpOnly, SameSite=Strict cookie; the bearer
token the user typed is checked once, at login, and never stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from kubepulse.api.authn import ANONYMOUS, RequestAuthenticator, User

COOKIE = "kubepulse_session"
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class Session:
    id: str
    user: User
    csrf_token: str
    expires: float


class Sessions:
    def __init__(
        self, lifetime: float, clock: Callable[[], float], max_sessions: int = MAX_SESSIONS
    ) -> None:
        self.lifetime, self.clock, self.max_sessions = lifetime, clock, max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, user: User) -> Session:
        now = self.clock()
        if len(self._sessions) >= self.max_sessions:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            while len(self._sessions) >= self.max_sessions:  # oldest first
                del self._sessions[next(iter(self._sessions))]
        session = Session(
            secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now + self.lifetime
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


async def check_token(
    authenticator: RequestAuthenticator, request: web.Request, token: str
) -> User | None:
    """Who the bearer token belongs to, asked of the server's authenticator exactly as an
    API request carrying only that token would be; anonymous is nobody. `request` must
    not have had its body read (aiohttp cannot clone it then)."""
    token = token.strip()
    if not token or any(c in token for c in "\r\n"):
        return None
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
