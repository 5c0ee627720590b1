"""A small read client for the Kubernetes API, from kubeconfig credentials."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

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


def ssl_context(creds: Credentials) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca_pem:
        ctx.load_verify_locations(cadata=creds.ca_pem.decode())
    if creds.client_cert_pem and creds.client_key_pem:
        # ssl only loads key pairs from files: write them owner-only and drop them at once.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert.write_bytes(creds.client_cert_pem)
            key.touch(mode=0o600)
            key.write_bytes(creds.client_key_pem)
            ctx.load_cert_chain(cert, key)
    return ctx


class KubeClient:
    """An aiohttp session with the credentials; token_file, when given, is the token's
    source (read again every minute) instead of creds.token.

    session, when given, is one the caller owns and keeps open (its connector trusts
    creds' CA): many short-lived clients, e.g. one per signed-in user's call, then share
    its connections. Such a client sends only creds.token, never basic auth."""

    def __init__(
        self,
        creds: Credentials,
        timeout: float = 30.0,
        token_file: Path | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.creds = creds
        self.timeout = timeout
        self.token_file = token_file
        self._token: str | None = None
        self._token_read = 0.0
        self._session: aiohttp.ClientSession | None = session
        self._owns_session = session is None

    async def __aenter__(self) -> KubeClient:
        if not self._owns_session:
            return self
        headers = {"User-Agent": "kubepulse"}
        auth = None
        # A token goes with each request (_headers), so that a re-read token file is used.
        if self.creds.username is not None and not (self.creds.token or self.token_file):
            auth = aiohttp.BasicAuth(self.creds.username, self.creds.password or "")
        connector = aiohttp.TCPConnector(ssl=ssl_context(self.creds))
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        token = self._current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

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
        session = self._open()
        headers = self._headers(accept)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        with self._translate_errors():
            async with session.request(
                method,
                self.creds.server + path,
                params=params,
                data=data,
                headers=headers,
                # kubeconfig's tls-server-name: the name the certificate is checked against
                # when the server is dialled by another name or by IP.
                server_hostname=self.creds.tls_server_name,
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
        session = self._open()
        query = {k: v for k, v in params.items() if v}
        query["watch"] = "true"
        with self._translate_errors():
            async with session.get(
                self.creds.server + path,
                params=query,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self.timeout),
                server_hostname=self.creds.tls_server_name,
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
        except (aiohttp.ClientError, TimeoutError) as err:
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
