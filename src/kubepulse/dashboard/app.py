"""The dashboard as an aiohttp sub-application: `root.add_subapp(PREFIX, make_dashboard(parts))`
(or mount(root, parts), which also redirects /dashboard to /dashboard/).

    GET  /dashboard/             the page (static/index.html); the login form without a session
    GET  /dashboard/login        the login form
    POST /dashboard/login        token=<bearer token>: a session cookie, or 401 and why
    POST /dashboard/logout       ends the session (CSRF token required)
    GET  /dashboard/api/session  who is signed in, the CSRF token, the poll interval
    GET  /dashboard/api/...      the data (data.py); 401 without a session
    GET  /dashboard/static/...   the page's script, styles and the vendored uPlot

In Kubernetes mode (parts.cluster set) the session keeps the user's token, the data views
show what the user's RBAC lets them list (access.py), and the actions in actions.py call
the API server with that token.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from kubepulse.api.authn import RequestAuthenticator
from kubepulse.dashboard import security, sessions
from kubepulse.dashboard.access import AccessReviews
from kubepulse.dashboard.actions import MAX_BODY, ActionHandlers
from kubepulse.dashboard.answers import error_response
from kubepulse.dashboard.sessions import SESSION_KEY
from kubepulse.dashboard.throttle import SignInThrottle
from kubepulse.dashboard.views import ACCESS_KEY, DataHandlers, DataSources
from kubepulse.history.sources import SeriesSource
from kubepulse.kube.client import ApiError, Unreachable
from kubepulse.kube.inventory import Inventory
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.user_clients import UserClients
from kubepulse.store.reading import UsageStore

PREFIX = "/dashboard"
STATIC = Path(__file__).parent / "static"
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True)
class DashboardOptions:
    session_lifetime: float = 8 * 3600.0
    """Seconds a session lasts after login; then the user signs in again."""
    secure_cookies: bool = True
    """Off only for plain HTTP on the loopback interface: browsers drop Secure cookies there."""
    poll_interval: float = 5.0
    """Seconds between the page's refreshes when it polls."""
    live_updates: bool = False
    """The store is fed in cycles that end in the pod index's tick_done() (the scrape
    manager's, the metrics API poller's): the page refreshes as each one is ready
    (/api/cycles) instead of polling."""
    clock: Callable[[], float] = time.time
    token_hint: str = ""
    """Where to find a token, said on the sign-in page (up: its kubeconfig)."""


@dataclass
class DashboardParts:
    store: UsageStore
    inventory: Inventory
    history: SeriesSource | None
    """Where charts read from: SqliteSeries(History) or a PrometheusHistory."""
    authenticator: RequestAuthenticator
    cluster: Credentials | None = None
    """Kubernetes mode: the API server that the dashboard calls with each user's own token
    (their RBAC applies). None in local mode (`kubepulse up`, `--targets`)."""
    options: DashboardOptions = field(default_factory=DashboardOptions)


def login_page(message: str = "", hint: str = "") -> str:
    alert = (
        f'<p class="login-error" role="alert" id="login-error">{html.escape(message)}</p>'
        if message
        else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kubepulse: sign in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/app.css">
<script src="static/login.js" defer></script>
</head>
<body class="login-body">
<main class="login">
<h1>kubepulse</h1>
<form method="post" action="login" class="login-form">
<label for="token">Bearer token</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<input id="next" name="next" type="hidden" value="">
<button type="submit">Sign in</button>
</form>
{alert}
<p class="hint">A token the server accepts, e.g. <code>kubectl -n NS create token SA</code>.</p>
{f'<p class="hint" id="token-hint">{html.escape(hint)}</p>' if hint else ""}
</main>
</body>
</html>
"""


class _Dashboard:
    def __init__(self, parts: DashboardParts) -> None:
        self.parts = parts
        self.options = parts.options
        self.sessions = sessions.Sessions(parts.options.session_lifetime, parts.options.clock)
        self.sign_in = sessions.token_authenticator(parts.authenticator)
        self.throttle = SignInThrottle(clock=parts.options.clock)
        self.calls = UserClients(parts.cluster) if parts.cluster is not None else None
        self.access = (
            AccessReviews(self.calls, lambda: {p.namespace for p in parts.inventory.pods()})
            if self.calls is not None
            else None
        )
        self.data_handlers: set[object] = set()
        """The data views' handlers: in Kubernetes mode each gets the user's Access."""

    def session_of(self, request: web.Request) -> sessions.Session | None:
        return self.sessions.get(request.cookies.get(sessions.COOKIE))

    @web.middleware
    async def auth_middleware(
        self, request: web.Request, handler: security.Handler
    ) -> web.StreamResponse:
        name = request.match_info.route.name
        if request.match_info.http_exception is not None or name in (
            "login",
            "login_form",
            "static",
            "index",
        ):
            return await handler(request)
        session = self.session_of(request)
        if session is None:
            raise web.HTTPUnauthorized(
                text='{"error":"not signed in"}', content_type="application/json"
            )
        if request.method in security.UNSAFE_METHODS:
            presented = await security.presented_csrf(request)
            if not security.csrf_ok(session.csrf_token, presented):
                raise web.HTTPForbidden(
                    text='{"error":"missing or wrong CSRF token"}',
                    content_type="application/json",
                )
        request[SESSION_KEY] = session
        if self.access is not None and request.match_info.handler in self.data_handlers:
            try:
                request[ACCESS_KEY] = await self.access.access(session)
            except (ApiError, Unreachable) as err:
                if isinstance(err, ApiError) and err.code == 401:
                    self.end_session(session)
                    raise web.HTTPUnauthorized(
                        text='{"error":"not signed in"}', content_type="application/json"
                    ) from None
                return error_response(503, f"cannot ask the cluster what you may see: {err}")
        return await handler(request)

    def end_session(self, session: sessions.Session) -> None:
        """The cluster no longer takes the session's token: the page must sign in again."""
        self.sessions.delete(session.id)

    async def index(self, request: web.Request) -> web.StreamResponse:
        if self.session_of(request) is None:
            raise web.HTTPSeeOther("login")
        return web.FileResponse(STATIC / "index.html")

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if self.session_of(request) is not None:
            raise web.HTTPSeeOther("./")
        return web.Response(text=login_page(hint=self.options.token_hint), content_type="text/html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not security.same_origin(request):
            return web.Response(
                status=403,
                text=login_page("Sign-in must come from this page.", self.options.token_hint),
                content_type="text/html",
            )
        if (request.content_length or 0) > MAX_TOKEN_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_TOKEN_BYTES, request.content_length or 0)
        address = request.remote or "unknown"
        wait = self.throttle.wait(address)
        if wait:
            return web.Response(
                status=429,
                text=login_page(
                    f"Too many failed sign-ins from your address: try again in "
                    f"{math.ceil(wait)} seconds."
                ),
                content_type="text/html",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        # A copy made before the body is read: the token is checked on a clone of it.
        pristine = request.clone()
        form = await request.post()
        token = form.get("token")
        user = None
        if isinstance(token, str):
            user = await sessions.check_token(self.sign_in, pristine, token)
        if user is None:
            self.throttle.failed(address)
            return web.Response(
                status=401,
                text=login_page(
                    "That token was not accepted. Check it and try again.", self.options.token_hint
                ),
                content_type="text/html",
            )
        self.throttle.succeeded(address)
        old = request.cookies.get(sessions.COOKIE)
        if old:
            self.sessions.delete(old)
        # Kubernetes mode keeps the token for calls as the user; local mode has no use for it.
        kept = token.strip() if self.calls is not None and isinstance(token, str) else None
        session = self.sessions.create(user, kept)
        after = form.get("next")
        safe = isinstance(after, str) and after.startswith("#/") and after.isprintable()
        response = web.HTTPSeeOther("./" + (after if safe and isinstance(after, str) else ""))
        sessions.set_cookie(response, session, self._path(request), self.options.secure_cookies)
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.delete(request[SESSION_KEY].id)
        response = web.json_response({"signed_out": True})
        sessions.clear_cookie(response, self._path(request), self.options.secure_cookies)
        return response

    async def session_info(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]
        return web.json_response(
            {
                "user": session.user.name,
                "csrf_token": session.csrf_token,
                "expires": session.expires,
                "poll_interval": self.options.poll_interval,
                "live_updates": self.options.live_updates,
                "cluster": self.calls is not None,
            }
        )

    @staticmethod
    def _path(request: web.Request) -> str:
        """Where the sub-application is mounted: the cookie goes to nothing else."""
        base = request.app.router["index"].url_for().path
        return base.rstrip("/") or "/"


STATIC_FILES = frozenset(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
"""What /static serves: the files shipped, nothing else (no listing, no traversal)."""


async def static_file(request: web.Request) -> web.StreamResponse:
    path = request.match_info["path"]
    if path not in STATIC_FILES:
        raise web.HTTPForbidden() if not path or path.endswith("/") else web.HTTPNotFound()
    return web.FileResponse(STATIC / path)


def make_dashboard(parts: DashboardParts) -> web.Application:
    dashboard = _Dashboard(parts)
    app = web.Application(
        middlewares=[security.headers_middleware, dashboard.auth_middleware],
        # Local mode takes nothing larger than a login form; Kubernetes mode takes YAML.
        client_max_size=MAX_TOKEN_BYTES * 2 if dashboard.calls is None else MAX_BODY,
    )
    app.router.add_get("/", dashboard.index, name="index")
    app.router.add_get("/login", dashboard.login_form, name="login_form")
    app.router.add_post("/login", dashboard.login, name="login")
    app.router.add_post("/logout", dashboard.logout, name="logout")
    app.router.add_get("/api/session", dashboard.session_info, name="session")
    src = DataSources(parts.store, parts.inventory, parts.history, parts.options.clock)
    handlers = DataHandlers(src)
    data_routes = handlers.routes()
    app.on_shutdown.append(handlers.close_streams)
    dashboard.data_handlers = {route.handler for route in data_routes}
    app.router.add_routes(data_routes)
    if dashboard.calls is not None:
        calls = dashboard.calls
        actions = ActionHandlers(calls, dashboard.end_session, parts.options.clock)
        app.router.add_routes(actions.routes())

        async def close_calls(_app: web.Application) -> None:
            await calls.close()

        app.on_cleanup.append(close_calls)
    app.router.add_get("/static/{path:.*}", static_file, name="static")
    return app


def mount(root: web.Application, parts: DashboardParts) -> web.Application:
    """Mount the dashboard at PREFIX; /dashboard redirects to /dashboard/."""
    dashboard = make_dashboard(parts)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(PREFIX + "/")

    root.router.add_get(PREFIX, redirect)  # before the sub-application, which would 404 it
    root.add_subapp(PREFIX, dashboard)
    return dashboard
