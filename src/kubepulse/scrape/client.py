"""Fetch one node's CPU and memory from its kubelet, as metrics-server does.

This follows metrics-server's pkg/scraper/client/resource/client.go and
pkg/utils/address_resolver.go: the first node address of a preferred type, the
configured port or the node's status port, the path from the node annotation
`metrics.k8s.io/resource-metrics-path` or `/metrics/resource`, a bearer token and/or a
client certificate, and the request time as the default sample time.

Every failure comes out as a ScrapeError whose `cause` is a short machine word (for
metrics labels and tests) and whose message reads like metrics-server's Go errors, so
that what users search for (docs, issues: "x509: cannot validate certificate for <IP>
because it doesn't contain any IP SANs", "no such host") is what they see.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from yarl import URL

from kubepulse import __version__
from kubepulse.kube.client import load_key_pair
from kubepulse.kube.exec_plugin import CredentialPluginError, ExecPlugin, PluginCredential
from kubepulse.kube.objects import RESOURCE_METRICS_PATH_ANNOTATION, Node
from kubepulse.model import NodeSample, PodSample
from kubepulse.scrape.bounds import ScrapeResult, within_node
from kubepulse.scrape.decode import DecodeError, decode_resource_metrics, decode_summary
from kubepulse.scrape.endpoint import (
    DEFAULT_PREFERRED_ADDRESS_TYPES,
    certificate_failure,
    choose_address,
    kubelet_port,
)
from kubepulse.scrape.http import BodyTooLarge, ConnectionPool, HTTPResponse, ProtocolError

__all__ = [
    "DEFAULT_PREFERRED_ADDRESS_TYPES",
    "RESOURCE_METRICS_PATH",
    "SUMMARY_PATH",
    "ClientConfig",
    "KubeletClient",
    "ScrapeError",
    "ScrapeResult",
    "node_address",
    "ssl_context",
]

RESOURCE_METRICS_PATH = "/metrics/resource"
SUMMARY_PATH = "/stats/summary"
CADVISOR_PATH = "/metrics/cadvisor"
# The kubelet trims the Summary to CPU and memory with this (kubelet stats/handler.go;
# metrics-server v0.5 client.go RawQuery "only_cpu_and_memory=true").
SUMMARY_QUERY = {"only_cpu_and_memory": "true"}
# What metrics-server's manifests and Helm chart set (the binary's own default leads
# with Hostname, which cluster DNS often cannot resolve: MS #223, #143).
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

log = logging.getLogger(__name__)

Decoded = tuple[NodeSample | None, tuple[PodSample, ...]]


class ResourceDecoder(Protocol):
    def __call__(
        self, body: bytes, node_name: str, default_time: float, rejected: list[str]
    ) -> Decoded: ...


"""What scrape() returns: the node (None if incomplete) and its complete pods."""

_ERROR_SNIPPET_BYTES = 512
TOKEN_REREAD_SECONDS = 60.0


class ScrapeError(Exception):
    """A scrape that failed; `cause` is one word, `message` is for people.

    Causes: no-address, dns, refused, timeout, tls-unknown-authority, tls-no-ip-san,
    tls-hostname, tls-expired, tls-other, unauthorized, forbidden, http, bad-payload,
    too-large, other.
    """

    def __init__(self, cause: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message
        self.status = status
        """The HTTP status, for unauthorized, forbidden and http."""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ScrapeError({self.cause!r}, {self.message!r})"


def node_address(node: Node, preferred_types: Sequence[str]) -> str:
    """The kubelet's address (endpoint.choose_address), or a ScrapeError."""
    chosen = choose_address(node, preferred_types)
    if chosen is None:
        raise ScrapeError("no-address", f"no address matched types [{' '.join(preferred_types)}]")
    return chosen[1]


@dataclass
class ClientConfig:
    """How to reach kubelets: metrics-server's --kubelet-* flags."""

    preferred_address_types: Sequence[str] = DEFAULT_PREFERRED_ADDRESS_TYPES
    port: int = 10250
    use_node_status_port: bool = False
    """Use .status.daemonEndpoints.kubeletEndpoint.Port when the node sets it."""
    timeout: float = 10.0
    """Per-node budget for the whole request: connect, TLS, headers and body."""
    ca_file: Path | None = None
    """CA bundle for kubelet serving certificates; the system's CAs when None."""
    ca_pem: bytes | None = None
    """The same as text (--kubelet-certificate-authority-text), with or instead of ca_file."""
    insecure_tls: bool = False
    plain_http: bool = False
    """--deprecated-kubelet-completely-insecure: http://, and no token or certificate
    (metrics-server sends no credentials where anyone may read them)."""
    client_cert: Path | None = None
    client_key: Path | None = None
    token: str | None = None
    token_file: Path | None = None
    """Read the bearer token from here instead, and again every minute: a projected
    service-account token rotates (client-go's cachingTokenSource re-reads it too)."""
    exec_plugin: ExecPlugin | None = None
    """The cluster's exec credential plugin, whose token every request carries and whose
    client certificate every connection presents, unless client_cert is given (the one
    the API client uses, run again on expiry and after a kubelet's 401): metrics-server's
    kubelet client is a copy of its rest.Config, exec provider included."""
    path: str = RESOURCE_METRICS_PATH
    use_summary: bool = False
    """Scrape /stats/summary?only_cpu_and_memory=true instead (metrics-server <= v0.5)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        # The same checks as metrics-server's options/kubelet_client.go Validate.
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("a kubelet client certificate and key must be given together")
        if self.insecure_tls and (self.ca_file is not None or self.ca_pem is not None):
            raise ValueError("insecure TLS and a kubelet CA file are mutually exclusive")
        if self.timeout <= 0:
            raise ValueError("the kubelet request timeout must be positive")
        if self.plain_http and (self.token or self.token_file or self.client_cert):
            raise ValueError("plain HTTP to kubelets carries no token or client certificate")
        if self.max_body_bytes <= 0:
            raise ValueError("the kubelet body limit must be positive")


def ssl_context(config: ClientConfig, ca_pem: str | None = None) -> ssl.SSLContext:
    """The one TLS client context every kubelet connection shares; ca_pem: the CA's text,
    read before (the file may be gone by now). ValueError says which file or text could
    not be loaded."""
    what = f"kubelet CA file {config.ca_file}" if config.ca_file else "kubelet CA text"
    try:
        # A CA given replaces the system's, as client-go's CAFile/CAData do.
        if ca_pem is not None:
            context = ssl.create_default_context(cadata=ca_pem)
        else:
            context = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file is not None else None,
                cadata=config.ca_pem.decode() if config.ca_pem is not None else None,
            )
        if config.client_cert is not None and config.client_key is not None:
            what = f"kubelet client certificate {config.client_cert} and its key"
            context.load_cert_chain(str(config.client_cert), str(config.client_key))
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        # OpenSSL's reason, or the OS's, without where in _ssl.c it was raised.
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or str(err)
        reason = re.sub(r"^\[SSL\] | \(_ssl\.c:\d+\)$", "", reason)
        raise ValueError(f"cannot load the {what}: {reason}") from err
    if config.insecure_tls:
        # --kubelet-insecure-tls: no CA or name check ("testing only", MS README).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class KubeletClient:
    """Scrapes kubelets over one shared connection pool; see scrape()."""

    def __init__(
        self, config: ClientConfig, decode: ResourceDecoder = decode_resource_metrics
    ) -> None:
        """decode: how /metrics/resource answers are read (a benchmark may leave it out
        to see what the transport alone costs)."""
        self.config = config
        self.decode = decode
        self._pool: ConnectionPool | None = None
        self._pool_pair: PluginCredential | None = None
        """The plugin's answer whose client certificate the pool's connections present."""
        self._ca_pem: str | None = None
        """The CA, kept for the pools of the plugin's certificates (the server removes the
        file it wrote for an inline kubeconfig CA once the client has started)."""
        self._scheme = "http" if config.plain_http else "https"
        self._headers = ""
        self._token_read_at = 0.0
        # Nodes whose kubelet answered 404 on /metrics/resource (kubelets before 1.18
        # have none) and answered /stats/summary instead: go there directly from now on.
        self._summary_nodes: set[str] = set()

    async def start(self) -> None:
        """Build the TLS context and the pool; errors here are configuration errors."""
        if self._pool is not None:
            return
        if self.config.exec_plugin is not None:
            if self.config.ca_pem is not None:
                self._ca_pem = self.config.ca_pem.decode()
            elif self.config.ca_file is not None:
                self._ca_pem = self.config.ca_file.read_text()
        # Built once, shared by every connection; none for plain HTTP.
        context = None if self.config.plain_http else ssl_context(self.config, self._ca_pem)
        # Keep-alive connections (Go's Transport keeps idle ones for 90 s, longer than
        # a resolution), so every scrape after the first skips the TLS handshake.
        self._pool = ConnectionPool(context, self.config.max_body_bytes)
        self._set_headers(self.config.token)
        if self.config.token_file is not None:
            self._refresh_token(first=True)

    def _set_headers(self, token: str | None) -> None:
        self._headers = _header_lines(token)

    def _refresh_token(self, first: bool = False) -> None:
        """Read the token file (again). Unreadable at start is a configuration error;
        later, the token in use is kept and the next request tries again."""
        path = self.config.token_file
        assert path is not None
        try:
            token = path.read_text().strip() or None
        except OSError as err:
            if first:
                raise ValueError(f"cannot read kubelet token file {path}: {err.strerror}") from err
            log.warning("cannot read kubelet token file %s again: %s", path, err.strerror)
            return
        self._token_read_at = time.monotonic()
        self._set_headers(token)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()

    async def __aenter__(self) -> KubeletClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def url_for(self, node: Node) -> URL:
        """The URL scrape() asks first for this node."""
        address, port = self._endpoint(node)
        if self.config.use_summary or node.name in self._summary_nodes:
            return _url(address, port, SUMMARY_PATH, SUMMARY_QUERY, self._scheme)
        return _url(address, port, self._resource_path(node), None, self._scheme)

    async def scrape(self, node: Node) -> ScrapeResult:
        """The node's and its pods' usage; raises ScrapeError and nothing else.

        Cancellation (asyncio.CancelledError) is let through: it is the caller's doing.
        """
        try:
            return within_node(node, await self._scrape(node))
        except ScrapeError:
            raise
        except Exception as err:  # the promise: every failure is a ScrapeError
            raise ScrapeError("other", f"scraping node {node.name}: {err!r}") from err

    async def _scrape(self, node: Node) -> ScrapeResult:
        if self._pool is None:
            await self.start()
        address, port = self._endpoint(node)
        if self.config.use_summary or node.name in self._summary_nodes:
            return await self._scrape_summary(node, address, port)
        url = _url(address, port, self._resource_path(node), None, self._scheme)
        request_time = time.time()
        try:
            body = await self._get(url, address, port, "text/plain;version=0.0.4,*/*;q=0.1")
        except ScrapeError as err:
            if err.status != 404:
                raise
            # Kubelets before 1.18 have no /metrics/resource, and so may a custom path
            # from the annotation; every kubelet has the Summary API.
            return await self._fall_back_to_summary(node, address, port, url)
        rejected: list[str] = []
        try:
            node_sample, pods = self.decode(body, node.name, request_time, rejected)
            return ScrapeResult(node_sample, pods, tuple(rejected))
        except DecodeError as err:
            raise ScrapeError("bad-payload", f"failed parsing metrics from {url}: {err}") from err

    async def cadvisor(self, node: Node) -> bytes:
        """The node's /metrics/cadvisor answer (scrape/pressure.py reads three of its
        families); raises ScrapeError and nothing else."""
        if self._pool is None:
            await self.start()
        address, port = self._endpoint(node)
        url = _url(address, port, CADVISOR_PATH, None, self._scheme)
        try:
            return await self._get(url, address, port, "text/plain;version=0.0.4,*/*;q=0.1")
        except ScrapeError:
            raise
        except Exception as err:  # the promise, as scrape()'s
            raise ScrapeError("other", f"reading {url}: {err!r}") from err

    async def _fall_back_to_summary(
        self, node: Node, address: str, port: int, url: URL
    ) -> ScrapeResult:
        try:
            result = await self._scrape_summary(node, address, port)
        except ScrapeError as err:
            raise ScrapeError(
                err.cause,
                f'{url} answered "404 Not Found" and the /stats/summary fallback failed: '
                f"{err.message}",
                status=err.status,
            ) from err
        self._summary_nodes.add(node.name)
        return result

    async def _scrape_summary(self, node: Node, address: str, port: int) -> ScrapeResult:
        url = _url(address, port, SUMMARY_PATH, SUMMARY_QUERY, self._scheme)
        body = await self._get(url, address, port, "application/json")
        rejected: list[str] = []
        try:
            node_sample, pods = decode_summary(body, node.name, rejected)
            return ScrapeResult(node_sample, pods, tuple(rejected))
        except DecodeError as err:
            raise ScrapeError("bad-payload", f"failed decoding {url}: {err}") from err

    def _endpoint(self, node: Node) -> tuple[str, int]:
        port = kubelet_port(node, self.config.port, self.config.use_node_status_port)
        return node_address(node, self.config.preferred_address_types), port

    def _resource_path(self, node: Node) -> str:
        path = node.annotations.get(RESOURCE_METRICS_PATH_ANNOTATION) or self.config.path
        return path if path.startswith("/") else "/" + path

    async def _get(self, url: URL, address: str, port: int, accept: str) -> bytes:
        """The 200 body of a GET within the timeout, or a classified ScrapeError; with
        an exec plugin, sent once more with its new token after a 401."""
        plugin = self.config.exec_plugin
        if plugin is None:
            stale = time.monotonic() - self._token_read_at >= TOKEN_REREAD_SECONDS
            if self.config.token_file is not None and stale:
                self._refresh_token()
            return await self._get_once(url, address, port, accept, self._headers)
        used = await _plugin_answer(plugin.credential(), url)
        self._present(used)
        try:
            return await self._get_once(url, address, port, accept, _header_lines(used.token))
        except ScrapeError as err:
            if err.status != 401:
                raise
            fresh = await _plugin_answer(plugin.unauthorized(used), url)
            if fresh is used:
                raise
        self._present(fresh)
        return await self._get_once(url, address, port, accept, _header_lines(fresh.token))

    def _present(self, answer: PluginCredential) -> None:
        """A client certificate from the plugin that the pool does not present yet: a new
        pool with it, as client-go closes every connection when the plugin rotates it."""
        cert, key = answer.client_cert_pem, answer.client_key_pem
        if cert is None or key is None or self.config.client_cert is not None:
            return
        if answer is self._pool_pair:
            return
        context = ssl_context(self.config, self._ca_pem)
        load_key_pair(context, cert, key)
        old, self._pool = self._pool, ConnectionPool(context, self.config.max_body_bytes)
        self._pool_pair = answer
        if old is not None:
            old.close()

    async def _get_once(
        self, url: URL, address: str, port: int, accept: str, headers: str
    ) -> bytes:
        assert self._pool is not None
        deadline = time.monotonic() + self.config.timeout
        request = (
            f"GET {url.raw_path_qs} HTTP/1.1\r\nHost: {url.raw_authority}\r\n"
            f"{headers}Accept: {accept}\r\n\r\n"
        ).encode()
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self._pool.get(address, port, request)
            body = response.body() if response.status == 200 else b""
        except TimeoutError as err:
            raise ScrapeError(
                "timeout",
                f'Get "{url}": context deadline exceeded '
                f"(no answer within {self.config.timeout:g}s)",
            ) from err
        except ssl.SSLCertVerificationError as err:
            remaining = max(0.5, deadline - time.monotonic())
            raise await _certificate_error(url, address, port, err, remaining) from err
        except socket.gaierror as err:
            raise _dns_error(url, address, err) from err
        except BodyTooLarge:
            limit = self.config.max_body_bytes
            raise ScrapeError(
                "too-large", f"response from {url} is larger than {limit} bytes"
            ) from None
        except ProtocolError as err:
            raise ScrapeError("bad-payload", f'Get "{url}": {err}') from err
        except OSError as err:
            raise _transport_error(url, address, port, err) from err
        if response.status != 200:
            raise _status_error(url, response)
        return body


def _header_lines(token: str | None) -> str:
    headers = f"User-Agent: kubepulse/{__version__}\r\nAccept-Encoding: gzip\r\n"
    if token:
        headers += f"Authorization: Bearer {token}\r\n"
    return headers


async def _plugin_answer(
    asked: Coroutine[Any, Any, PluginCredential], url: URL
) -> PluginCredential:
    try:
        return await asked
    except CredentialPluginError as err:
        raise ScrapeError("unauthorized", f'Get "{url}": {err}') from err


async def _certificate_error(
    url: URL,
    address: str,
    port: int,
    cert_error: ssl.SSLCertVerificationError,
    probe_timeout: float,
) -> ScrapeError:
    """Name a failed certificate check the way Go's crypto/x509 would.

    OpenSSL reports X509_V_ERR_* codes; Go reports UnknownAuthorityError,
    CertificateInvalidError (Expired) and HostnameError. Users and the metrics-server
    docs know the Go texts, so those are what we say.
    """
    detail = str(getattr(cert_error, "verify_message", "") or cert_error)
    prefix = f'Get "{url}": tls: failed to verify certificate: '
    failure = certificate_failure(cert_error)
    if failure == "unknown-authority":
        return ScrapeError(
            "tls-unknown-authority", prefix + "x509: certificate signed by unknown authority"
        )
    if failure == "expired":
        return ScrapeError(
            "tls-expired",
            prefix + f"x509: certificate has expired or is not yet valid: {detail}",
        )
    if failure == "name-mismatch":
        # OpenSSL does not say why the name did not match; Go does, and the two
        # causes have different fixes. Look at the certificate to tell them apart.
        cert = await _peer_certificate(address, port, probe_timeout)
        return _mismatch_error(prefix, address, cert, detail)
    return ScrapeError("tls-other", prefix + f"x509: {detail}")


def _url(
    address: str, port: int, path: str, query: dict[str, str] | None, scheme: str = "https"
) -> URL:
    # yarl brackets IPv6 addresses ("[fd00::1]:10250") as Go's net.JoinHostPort does,
    # and escapes the path the way url.URL{Path: ...} does.
    return URL.build(scheme=scheme, host=address, port=port, path=path, query=query)


def _status_error(url: URL, response: HTTPResponse) -> ScrapeError:
    """metrics-server's `request failed, status: "403 Forbidden"`, plus the kubelet's words.

    The body matters: a kubelet's 403 names the user and the missing permission
    ("Forbidden (user=..., verb=get, resource=nodes, subresource=metrics)").
    """
    status = response.status
    try:
        body = response.body()
    except (BodyTooLarge, ProtocolError):
        body = b""
    snippet = body[:_ERROR_SNIPPET_BYTES].decode("utf-8", "replace").strip()
    status_text = f"{status} {response.reason or ''}".strip()
    message = f'Get "{url}": request failed, status: "{status_text}"'
    if snippet:
        message += f": {snippet}"
    cause = {401: "unauthorized", 403: "forbidden"}.get(status, "http")
    return ScrapeError(cause, message, status=status)


def _dns_error(url: URL, host: str, gai: socket.gaierror) -> ScrapeError:
    no_such_host = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
    # "no such host" is Go's net.DNSError text for NXDOMAIN.
    reason = "no such host" if gai.errno in no_such_host else gai.strerror or str(gai)
    return ScrapeError("dns", f'Get "{url}": dial tcp: lookup {host}: {reason}')


def _transport_error(url: URL, address: str, port: int, err: OSError) -> ScrapeError:
    """Connection-level failures other than timeouts, DNS and certificate checks."""
    dial = f'Get "{url}": dial tcp {_join_host_port(address, port)}: '
    if isinstance(err, ConnectionRefusedError):
        return ScrapeError("refused", dial + "connect: connection refused")
    if isinstance(err, ssl.SSLError):
        return ScrapeError("tls-other", f'Get "{url}": tls: {err}')
    if isinstance(err, ConnectionError):
        return ScrapeError("other", f'Get "{url}": {err.strerror or err}')
    return ScrapeError("other", dial + f"connect: {err.strerror or err}")


def _join_host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def _mismatch_error(
    prefix: str, address: str, cert: x509.Certificate | None, detail: str
) -> ScrapeError:
    """Go's x509.HostnameError texts (crypto/x509/verify.go), from the certificate."""
    if cert is None:
        return ScrapeError(
            "tls-hostname", prefix + f"x509: certificate is not valid for {address}: {detail}"
        )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        names = list(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        ips, names = [], []
    if _ip(address) is not None:
        if not ips:
            return ScrapeError(
                "tls-no-ip-san",
                prefix + f"x509: cannot validate certificate for {address} "
                "because it doesn't contain any IP SANs",
            )
        return ScrapeError(
            "tls-hostname",
            prefix + f"x509: certificate is valid for {', '.join(ips)}, not {address}",
        )
    if not names:
        return ScrapeError(
            "tls-hostname",
            prefix + f"x509: certificate is not valid for any names, but wanted to match {address}",
        )
    return ScrapeError(
        "tls-hostname", prefix + f"x509: certificate is valid for {', '.join(names)}, not {address}"
    )


async def _peer_certificate(address: str, port: int, timeout: float) -> x509.Certificate | None:
    """The kubelet's certificate, fetched without verifying it; None if that fails.

    Only used after a failed name check, to say which names the certificate has.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(address, port, ssl=context)
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        return x509.load_der_x509_certificate(der) if der else None
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
