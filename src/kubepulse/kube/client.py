"""A small read client for the Kubernetes API, from kubeconfig credentials."""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from kubepulse.kube.kubeconfig import Credentials


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
    def __init__(self, creds: Credentials, timeout: float = 30.0) -> None:
        self.creds = creds
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeClient:
        headers = {"User-Agent": "kubepulse"}
        auth = None
        if self.creds.token:
            headers["Authorization"] = f"Bearer {self.creds.token}"
        elif self.creds.username is not None:
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
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        assert self._session is not None, "use KubeClient as an async context manager"
        url = self.creds.server + path
        query = {k: v for k, v in (params or {}).items() if v}
        try:
            async with self._session.get(
                url, params=query, headers={"Accept": "application/json"}
            ) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise _api_error(resp.status, body)
                return _json(body)
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


def _json(body: bytes) -> Any:
    import json

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
        return ApiError(code, str(status.get("reason") or ""), str(status.get("message") or ""))
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 503: "ServiceUnavailable"}
    return ApiError(code, reasons.get(code, "Unknown"), body.decode(errors="replace").strip()[:200])
