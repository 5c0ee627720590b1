"""A small read client for the Kubernetes API, from kubeconfig credentials."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict

from kubepulse.kube import exec_plugin
from kubepulse.kube.exec_plugin import CredentialPluginError, ExecPlugin, PluginCredential
from kubepulse.kube.kubeconfig import Credentials, KubeconfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_REREAD = 60.0
MAX_EVENT_BYTES = 64 * 1024 * 1024
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """The server answered with an error Status."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class Unreachable(Exception):
    """The server could not be reached at all."""


def ssl_context(creds: Credentials, plugin_pair: PluginCredential | None = None) -> ssl.SSLContext:
    """Trust in the API server, and the client certificate: the kubeconfig's, else the
    one an exec plugin gave (plugin_pair)."""
    ctx = ssl.create_default_context()
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca_pem:
        ctx.load_verify_locations(cadata=creds.ca_pem.decode())
    if creds.client_cert_pem and creds.client_key_pem:
        load_key_pair(ctx, creds.client_cert_pem, creds.client_key_pem)
    elif plugin_pair and plugin_pair.client_cert_pem and plugin_pair.client_key_pem:
        load_key_pair(ctx, plugin_pair.client_cert_pem, plugin_pair.client_key_pem)
    return ctx


def load_key_pair(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """ssl loads key pairs only from files: it is given files in memory (memfd), so a
    private key never reaches a disk, and they are gone once closed."""
    fds: list[int] = []
    try:
        for name, data in (("tls.crt", cert_pem), ("tls.key", key_pem)):
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
            fds.append(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
    finally:
        for fd in fds:
            os.close(fd)


def plugin_for(creds: Credentials) -> ExecPlugin | None:
    """The exec plugin to ask, unless the user has a token, password or certificate,
    which win over it (client-go's exec Authenticator.UpdateTransportConfig)."""
    if creds.exec_plugin is None or creds.token or creds.username or creds.client_cert_pem:
        return None
    cluster = exec_plugin.ClusterInfo(
        server=creds.server,
        tls_server_name=creds.tls_server_name,
        insecure=creds.insecure,
        ca_pem=creds.ca_pem,
        proxy_url=creds.proxy_url,
        config=creds.exec_plugin.cluster_config,
    )
    return exec_plugin.plugin(creds.exec_plugin, cluster)


async def sign_in(creds: Credentials) -> None:
    """Run the user's exec plugin now, if it has one and no kept answer is valid: an
    interactive plugin then prompts before a full-screen view takes the terminal.
    Raises Unreachable with kubectl's words when the plugin fails."""
    plugin = plugin_for(creds)
    if plugin is not None:
        try:
            await plugin.credential()
        except CredentialPluginError as err:
            raise _not_signed_in(err) from err


def http_proxy(creds: Credentials) -> str | None:
    """proxy-url when it is an http or https proxy, which aiohttp dials itself (CONNECT
    for the API's TLS); a socks5 one is the connector's (connector())."""
    if creds.proxy_url is None or creds.proxy_url.startswith("socks5:"):
        return None
    return creds.proxy_url


def connector(creds: Credentials, ctx: ssl.SSLContext) -> aiohttp.BaseConnector:
    """Connections to the API server: direct, or through a socks5 proxy-url (kubeconfig
    checked that aiohttp-socks is there)."""
    if creds.proxy_url is not None and creds.proxy_url.startswith("socks5:"):
        from aiohttp_socks import ProxyConnector  # an optional dependency: kubepulse[socks]

        return ProxyConnector.from_url(creds.proxy_url, ssl=ctx)
    return aiohttp.TCPConnector(ssl=ctx)


def _not_signed_in(err: CredentialPluginError) -> Unreachable:
    # kubectl's words for a request that could not be sent (a url.Error).
    return Unreachable(f"Unable to connect to the server: {err}")


def impersonation_headers(creds: Credentials) -> list[tuple[str, str]]:
    """client-go's impersonatingRoundTripper: Impersonate-User, one Impersonate-Group per
    group, Impersonate-Uid, Impersonate-Extra-<key, %-escaped> per value."""
    who = creds.impersonate
    if who is None:
        return []
    headers = [("Impersonate-User", who.user)]
    headers += [("Impersonate-Group", group) for group in who.groups]
    if who.uid:
        headers.append(("Impersonate-Uid", who.uid))
    for key, values in who.extra:
        headers += [(f"Impersonate-Extra-{quote(key, safe='')}", v) for v in values]
    return headers


class KubeClient:
    """An aiohttp session with the credentials; token_file, when given, is the token's
    source (read again every minute) instead of creds.token.

    session, when given, is one the caller owns and keeps open (its connector trusts
    creds' CA): many short-lived clients, e.g. one per signed-in user's call, then share
    its connections. Such a client sends only creds.token, never basic auth.

    A user with an exec plugin and nothing else gets the plugin's token or certificate
    (exec_plugin.py); after a 401 with it the plugin is run again and the request sent
    once more with the new credentials. A new client certificate from the plugin means a
    new connection pool, as client-go closes every connection when it rotates.
    creds.request_timeout (--request-timeout), when set, is every request's timeout."""

    def __init__(
        self,
        creds: Credentials,
        timeout: float = 30.0,
        token_file: Path | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.creds = creds
        self.timeout = timeout if creds.request_timeout is None else creds.request_timeout
        self.token_file = token_file
        self._token: str | None = None
        self._token_read = 0.0
        self._session: aiohttp.ClientSession | None = session
        self._owns_session = session is None
        self._plugin = plugin_for(creds) if session is None and token_file is None else None
        self._session_pair: PluginCredential | None = None
        """The plugin's answer whose client certificate the session presents."""

    async def __aenter__(self) -> KubeClient:
        if self._owns_session:
            self._session = self._new_session(None)
        return self

    def _new_session(self, plugin_pair: PluginCredential | None) -> aiohttp.ClientSession:
        auth = None
        # A token goes with each request (_headers), so that a re-read token file is used.
        if self.creds.username is not None and not (self.creds.token or self.token_file):
            auth = aiohttp.BasicAuth(self.creds.username, self.creds.password or "")
        return aiohttp.ClientSession(
            headers={"User-Agent": "kubepulse"},
            auth=auth,
            connector=connector(self.creds, ssl_context(self.creds, plugin_pair)),
            timeout=aiohttp.ClientTimeout(total=self.timeout or None),
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()

    def _headers(
        self, accept: str = "application/json", plugin: PluginCredential | None = None
    ) -> CIMultiDict[str]:
        headers = CIMultiDict([("Accept", accept), *impersonation_headers(self.creds)])
        token = plugin.token if plugin is not None else self._current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _plugin_credential(
        self, after_401: PluginCredential | None = None
    ) -> PluginCredential | None:
        """The exec plugin's credential (None without a plugin), its certificate put in
        the session; after_401: the one the server refused."""
        if self._plugin is None:
            return None
        try:
            if after_401 is None:
                found = await self._plugin.credential()
            else:
                found = await self._plugin.unauthorized(after_401)
        except CredentialPluginError as err:
            raise _not_signed_in(err) from err
        if found.client_cert_pem and found is not self._session_pair and self._owns_session:
            old, self._session = self._session, self._new_session(found)
            self._session_pair = found
            if old is not None:
                await old.close()
        return found

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        *,
        accept: str = "application/json",
        content_type: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request with the credentials, impersonation and proxy; sent again once
        when the plugin's credential was refused and the plugin gave a new one."""
        plugin = await self._plugin_credential()
        for again in (False, True):
            headers = self._headers(accept, plugin)
            if content_type is not None:
                headers["Content-Type"] = content_type
            async with self._open().request(
                method,
                self.creds.server + path,
                headers=headers,
                proxy=http_proxy(self.creds),
                # kubeconfig's tls-server-name: the name the certificate is checked against
                # when the server is dialled by another name or by IP.
                server_hostname=self.creds.tls_server_name,
                **kwargs,
            ) as resp:
                if resp.status == 401 and plugin is not None and not again:
                    fresh = await self._plugin_credential(after_401=plugin)
                    if fresh is not plugin:
                        plugin = fresh
                        continue
                yield resp
                return

    def _current_token(self) -> str | None:
        """The bearer token; a token file is read again every minute, as client-go does,
        because the kubelet rotates projected service-account tokens (rest.InClusterConfig
        sets BearerTokenFile, transport.NewCachedFileTokenSource)."""
        if self.token_file is None:
            return self.creds.token
        now = time.monotonic()
        if self._token is None or now - self._token_read >= TOKEN_FILE_REREAD:
            try:
                self._token = self.token_file.read_text().strip()
                self._token_read = now
            except OSError:
                if self._token is None:
                    self._token = self.creds.token
        return self._token

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = {k: v for k, v in (params or {}).items() if v}
        return await self._send("GET", path, params=query)

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """Create an object: the answer's body, or ApiError with the server's Status."""
        return await self._send("POST", path, body=body)

    async def put(self, path: str, body: Mapping[str, Any]) -> Any:
        """Replace an object (or a subresource such as a CSR's /approval)."""
        return await self._send("PUT", path, body=body)

    async def patch(
        self, path: str, body: Mapping[str, Any], content_type: str = MERGE_PATCH
    ) -> Any:
        """Patch an object; content_type says which kind of patch body is (kubectl sends
        strategic merge patches for built-in kinds, JSON merge patches for the rest)."""
        return await self._send("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Delete an object; body is DeleteOptions (e.g. propagationPolicy)."""
        return await self._send("DELETE", path, body=body)

    async def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """A plain-text answer, such as a container's log (pods/{name}/log)."""
        query = {k: v for k, v in (params or {}).items() if v}
        data: bytes = await self._send("GET", path, params=query, accept="text/plain", raw=True)
        return data.decode(errors="replace")

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        raw: bool = False,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        with self._translate_errors():
            async with self._request(
                method,
                path,
                params=params,
                data=data,
                accept=accept,
                content_type=None if body is None else content_type,
            ) as resp:
                answer = await resp.read()
                if resp.status >= 400:
                    raise _api_error(resp.status, answer)
                return answer if raw else _json(answer)

    async def watch(
        self, path: str, params: Mapping[str, str], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch, one dict each ({"type": ..., "object": ...}).

        The stream ends when the server ends it (timeoutSeconds is up); an ERROR event is
        raised as ApiError (410 Expired means: list again), a dropped connection as
        Unreachable. timeout bounds the whole request, so a connection that went silent
        without being closed is given up eventually.
        """
        query = {k: v for k, v in params.items() if v}
        query["watch"] = "true"
        with self._translate_errors():
            async with self._request(
                "GET",
                path,
                params=query,
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self.timeout or None),
            ) as resp:
                if resp.status >= 400:
                    raise _api_error(resp.status, await resp.read())
                async for event in _events(resp.content):
                    if event.get("type") == "ERROR":
                        raise _status_error(event.get("object"))
                    yield event

    def _open(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use KubeClient as an async context manager"
        return self._session

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except aiohttp.ClientConnectorCertificateError as err:
            raise Unreachable(
                f"the server's certificate is not trusted: {err.certificate_error}"
            ) from err
        except aiohttp.ClientConnectorError as err:
            raise Unreachable(
                f"The connection to the server {err.host}:{err.port} was refused - "
                "did you specify the right host or port?"
            ) from err
        except TimeoutError as err:
            # The timeout (--request-timeout) ran out: kubectl's words, from Go's
            # http.Client.Timeout.
            raise Unreachable(
                "Unable to connect to the server: net/http: request canceled "
                "(Client.Timeout exceeded while awaiting headers)"
            ) from err
        except aiohttp.ClientError as err:
            raise Unreachable(
                f"cannot reach the server {self.creds.server}: {err or type(err).__name__}"
            ) from err


async def _events(stream: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """Newline-delimited JSON objects, split here rather than with readline(), whose line
    limit (128 KiB) a Node with many images can pass."""
    buffer = b""
    async for chunk in stream.iter_any():
        buffer += chunk
        if len(buffer) > MAX_EVENT_BYTES:
            raise ApiError(500, "InternalError", "a watch event is larger than 64 MiB")
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                event = _json(line)
                if not isinstance(event, dict):
                    raise ApiError(500, "InternalError", "a watch event is not a JSON object")
                yield event
    if buffer.strip():
        raise aiohttp.ClientPayloadError("the watch stream ended in the middle of an event")


def in_cluster(
    service_account_dir: Path = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The pod's own credentials, as client-go's rest.InClusterConfig finds them: the API
    at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the service account's token and
    CA in service_account_dir. Pass token_file=service_account_dir / "token" to KubeClient
    so the rotated token is picked up."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError(
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT must be defined"
        )
    try:
        token = (service_account_dir / "token").read_text().strip()
        ca_pem = (service_account_dir / "ca.crt").read_bytes()
    except OSError as err:
        raise KubeconfigError(
            f"cannot read the service account's {Path(err.filename or '').name} in "
            f"{service_account_dir}: {err.strerror}"
        ) from err
    # An IPv6 service address needs brackets (Go's net.JoinHostPort).
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    namespace = "default"
    with contextlib.suppress(OSError):
        namespace = (service_account_dir / "namespace").read_text().strip() or "default"
    return Credentials(server=server, ca_pem=ca_pem, token=token, namespace=namespace)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as err:
        raise ApiError(500, "InternalError", "the server sent something that is not JSON") from err


def _api_error(code: int, body: bytes) -> ApiError:
    try:
        status = _json(body)
    except ApiError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return _status_error(status, code)
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 503: "ServiceUnavailable"}
    return ApiError(code, reasons.get(code, "Unknown"), body.decode(errors="replace").strip()[:200])


def _status_error(status: Any, code: int | None = None) -> ApiError:
    """An ApiError from a Status object (an error answer's body, or an ERROR event's)."""
    if not isinstance(status, dict):
        return ApiError(500, "InternalError", "the server sent an error without a Status")
    return ApiError(
        int(code or status.get("code") or 500),
        str(status.get("reason") or ""),
        str(status.get("message") or ""),
    )
