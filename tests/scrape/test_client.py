"""The kubelet client against real TLS servers on 127.0.0.1, one per failure cause."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from kubepulse import pki
from kubepulse.agent import resource_metrics, summary
from kubepulse.kube.objects import RESOURCE_METRICS_PATH_ANNOTATION, Node, NodeAddress
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Usage
from kubepulse.scrape import client as client_module
from kubepulse.scrape.client import (
    ClientConfig,
    KubeletClient,
    ScrapeError,
    _mismatch_error,
    node_address,
)

LOCALHOST = ipaddress.ip_address("127.0.0.1")
TOKEN = "good-token"
WEAK_TOKEN = "token-without-nodes-metrics"  # authenticates, but is not authorized
NOW = 1_700_000_000.0

STATS = NodeStats(
    NodeSample("node1", 0.0, Usage(NOW, 123_456_000_000, 2_000_000_000)),
    (
        PodSample(
            "kube-system",
            "coredns-1",
            "uid-1",
            NOW - 600,
            (ContainerSample("coredns", NOW - 500, Usage(NOW, 4_710_169_000, 12_533_760)),),
        ),
    ),
)
METRICS = resource_metrics.render(STATS).encode()
SUMMARY = summary.render(STATS, only_cpu_and_memory=True).encode()


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    server: tuple[Path, Path]  # for 127.0.0.1, signed by ca_file's CA
    other_ca: tuple[Path, Path]  # for 127.0.0.1, signed by a CA the client does not know
    dns_only: tuple[Path, Path]  # names only "localhost": kubeadm's self-signed kubelet kind
    wrong_ip: tuple[Path, Path]  # for 127.0.0.2 only
    expired: tuple[Path, Path]
    expired_ca_file: Path
    client: tuple[Path, Path]  # a client certificate signed by ca_file's CA


def _write(pair: pki.KeyPair, directory: Path, stem: str) -> tuple[Path, Path]:
    paths = directory / f"{stem}.crt", directory / f"{stem}.key"
    pair.write(*paths)
    return paths


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = pki.new_ca("kubernetes"), pki.new_ca("someone else")
    (directory / "ca.crt").write_bytes(ca.cert_pem())
    # trustme can backdate a certificate, which pki.issue (rightly) cannot.
    old_ca = trustme.CA()
    old_ca.cert_pem.write_to_path(str(directory / "old-ca.crt"))
    now = dt.datetime.now(dt.UTC)
    expired = old_ca.issue_cert(
        "127.0.0.1", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    expired.cert_chain_pems[0].write_to_path(str(directory / "expired.crt"))
    expired.private_key_pem.write_to_path(str(directory / "expired.key"))
    return Pki(
        ca_file=directory / "ca.crt",
        server=_write(pki.issue(ca, "node1", ips=[LOCALHOST]), directory, "server"),
        other_ca=_write(pki.issue(other, "node1", ips=[LOCALHOST]), directory, "other"),
        dns_only=_write(pki.issue(ca, "node1", dns_names=["localhost"]), directory, "dns"),
        wrong_ip=_write(
            pki.issue(ca, "node1", ips=[ipaddress.ip_address("127.0.0.2")]), directory, "wrong"
        ),
        expired=(directory / "expired.crt", directory / "expired.key"),
        expired_ca_file=directory / "old-ca.crt",
        client=_write(pki.issue(ca, "metrics-server", client=True), directory, "client"),
    )


# --- a fake kubelet -----------------------------------------------------------------------


@dataclass
class FakeKubelet:
    """Answers like a kubelet: 401 without a known token, 403 for the weak one."""

    resource: bytes | None = METRICS
    summary: bytes | None = SUMMARY
    resource_path: str = "/metrics/resource"
    requests: list[str] = field(default_factory=list)
    peers: list[Any] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        auth = request.headers.get("Authorization")
        self.authorizations.append(auth)
        if auth == f"Bearer {WEAK_TOKEN}":
            return web.Response(
                status=403,
                text="Forbidden (user=system:serviceaccount:kube-system:metrics-server, "
                "verb=get, resource=nodes, subresource=metrics)",
            )
        if auth != f"Bearer {TOKEN}":
            return web.Response(status=401, text="Unauthorized")
        if request.path == self.resource_path and self.resource is not None:
            return web.Response(body=self.resource, content_type="text/plain")
        if (
            request.path == "/stats/summary"
            and request.query.get("only_cpu_and_memory") == "true"
            and self.summary is not None
        ):
            return web.Response(body=self.summary, content_type="application/json")
        return web.Response(status=404, text="404 page not found")


def _server_context(cert: tuple[Path, Path], client_ca: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, cert))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(client_ca))
    return context


@contextlib.asynccontextmanager
async def serve(
    handler: Callable[[web.Request], Any],
    cert: tuple[Path, Path],
    client_ca: Path | None = None,
) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 at an ephemeral port; yields the port."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock, ssl_context=_server_context(cert, client_ca))
    await site.start()
    try:
        yield sock.getsockname()[1]
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, with no race."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def node(port: int | None = None, address: str = "127.0.0.1", **kwargs: Any) -> Node:
    return Node(
        name="node1",
        addresses=(NodeAddress("InternalIP", address),),
        kubelet_port=port,
        **kwargs,
    )


def config(certs: Pki, port: int, **kwargs: Any) -> ClientConfig:
    defaults: dict[str, Any] = {"port": port, "ca_file": certs.ca_file, "token": TOKEN}
    return ClientConfig(**{**defaults, **kwargs})


async def scrape(cfg: ClientConfig, target: Node) -> Any:
    async with KubeletClient(cfg) as client:
        return await client.scrape(target)


async def scrape_error(cfg: ClientConfig, target: Node) -> ScrapeError:
    with pytest.raises(ScrapeError) as caught:
        await scrape(cfg, target)
    return caught.value


def _summary_of(result: Any) -> tuple[Any, ...]:
    node_sample, pods, _ = result
    return (
        node_sample.usage.cpu_usage_core_nanoseconds,
        node_sample.usage.working_set_bytes,
        [
            (
                p.namespace,
                p.name,
                [(c.name, c.usage.cpu_usage_core_nanoseconds) for c in p.containers],
            )
            for p in pods
        ],
    )


EXPECTED = (
    123_456_000_000,
    2_000_000_000,
    [("kube-system", "coredns-1", [("coredns", 4_710_169_000)])],
)


# --- success ------------------------------------------------------------------------------


async def test_scrape_verifies_the_kubelet_and_sends_the_token(certs: Pki) -> None:
    kubelet = FakeKubelet()
    async with serve(kubelet.handle, certs.server) as port:
        result = await scrape(config(certs, port), node())
    assert _summary_of(result) == EXPECTED
    node_sample, _, _ = result
    assert node_sample.name == "node1"
    assert node_sample.usage.timestamp == NOW
    assert kubelet.requests == ["/metrics/resource"]
    assert kubelet.authorizations == [f"Bearer {TOKEN}"]


async def test_connections_are_kept_alive(certs: Pki) -> None:
    kubelet = FakeKubelet()
    async with (
        serve(kubelet.handle, certs.server) as port,
        KubeletClient(config(certs, port)) as client,
    ):
        await client.scrape(node())
        await client.scrape(node())
    assert len(kubelet.peers) == 2 and kubelet.peers[0] == kubelet.peers[1]


async def test_client_certificate(certs: Pki) -> None:
    kubelet = FakeKubelet()
    async with serve(kubelet.handle, certs.server, client_ca=certs.ca_file) as port:
        cfg = config(certs, port, client_cert=certs.client[0], client_key=certs.client[1])
        assert _summary_of(await scrape(cfg, node())) == EXPECTED
        # Without one the kubelet's TLS layer turns us away (TLS 1.3: after the handshake).
        error = await scrape_error(config(certs, port), node())
    assert error.cause in ("tls-other", "other")
    assert kubelet.requests == ["/metrics/resource"]


async def test_scrape_starts_the_client_on_first_use(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.server) as port:
        client = KubeletClient(config(certs, port))
        try:
            assert _summary_of(await client.scrape(node())) == EXPECTED
        finally:
            await client.close()


async def test_insecure_tls_accepts_a_certificate_from_another_ca(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.other_ca) as port:
        cfg = config(certs, port, ca_file=None, insecure_tls=True)
        assert _summary_of(await scrape(cfg, node())) == EXPECTED


async def test_annotation_overrides_the_path(certs: Pki) -> None:
    kubelet = FakeKubelet(resource_path="/custom/resource")
    annotated = node(annotations={RESOURCE_METRICS_PATH_ANNOTATION: "/custom/resource"})
    async with serve(kubelet.handle, certs.server) as port:
        assert _summary_of(await scrape(config(certs, port), annotated)) == EXPECTED
    assert kubelet.requests == ["/custom/resource"]


async def test_node_status_port(certs: Pki) -> None:
    kubelet = FakeKubelet()
    with closed_port() as unused:
        async with serve(kubelet.handle, certs.server) as port:
            cfg = config(certs, unused, use_node_status_port=True)
            assert _summary_of(await scrape(cfg, node(port=port))) == EXPECTED
            # Without the flag, the configured port is used, and nobody listens there.
            error = await scrape_error(replace(cfg, use_node_status_port=False), node(port=port))
            # With the flag but no port in the node's status, the configured one, too.
            fallback = await scrape_error(cfg, node(port=None))
    assert error.cause == "refused" and fallback.cause == "refused"
    assert f"127.0.0.1:{unused}" in error.message


async def test_404_falls_back_to_the_summary_and_remembers(certs: Pki) -> None:
    kubelet = FakeKubelet(resource=None)
    async with (
        serve(kubelet.handle, certs.server) as port,
        KubeletClient(config(certs, port)) as client,
    ):
        first = await client.scrape(node())
        second = await client.scrape(node())
    assert _summary_of(first) == _summary_of(second) == EXPECTED
    _, pods, _ = first
    assert pods[0].uid == "uid-1"  # the Summary knows pod UIDs; /metrics/resource does not
    assert kubelet.requests == [
        "/metrics/resource",
        "/stats/summary?only_cpu_and_memory=true",
        "/stats/summary?only_cpu_and_memory=true",
    ]


async def test_404_without_a_summary_either(certs: Pki) -> None:
    kubelet = FakeKubelet(resource=None, summary=None)
    async with serve(kubelet.handle, certs.server) as port:
        error = await scrape_error(config(certs, port), node())
    assert (error.cause, error.status) == ("http", 404)
    assert "/stats/summary fallback failed" in error.message
    assert '"404 Not Found"' in error.message


async def test_use_summary(certs: Pki) -> None:
    kubelet = FakeKubelet(resource=None)
    async with serve(kubelet.handle, certs.server) as port:
        cfg = config(certs, port, use_summary=True)
        assert _summary_of(await scrape(cfg, node())) == EXPECTED
    assert kubelet.requests == ["/stats/summary?only_cpu_and_memory=true"]


# --- failures -----------------------------------------------------------------------------


def test_no_address() -> None:
    target = Node(name="node1", addresses=(NodeAddress("InternalDNS", "node1.cluster"),))
    with pytest.raises(ScrapeError) as caught:
        node_address(target, ("InternalIP", "ExternalIP", "Hostname"))
    assert caught.value.cause == "no-address"
    assert str(caught.value) == "no address matched types [InternalIP ExternalIP Hostname]"


def test_address_priority_follows_the_preferred_types() -> None:
    target = Node(
        name="node1",
        addresses=(
            NodeAddress("Hostname", "node1"),
            NodeAddress("ExternalIP", "203.0.113.7"),
            NodeAddress("InternalIP", "10.0.0.7"),
            NodeAddress("InternalIP", "10.0.0.8"),
        ),
    )
    assert node_address(target, ("InternalIP", "ExternalIP", "Hostname")) == "10.0.0.7"
    assert node_address(target, ("Hostname", "InternalIP")) == "node1"
    assert node_address(target, ("ExternalDNS", "ExternalIP")) == "203.0.113.7"


async def test_no_address_from_scrape(certs: Pki) -> None:
    target = Node(name="node1", addresses=(NodeAddress("Hostname", "node1"),))
    error = await scrape_error(config(certs, 1, preferred_address_types=("InternalIP",)), target)
    assert error.cause == "no-address"


def test_ipv6_addresses_are_bracketed() -> None:
    client = KubeletClient(ClientConfig())
    assert (
        str(client.url_for(node(address="fd00::7"))) == "https://[fd00::7]:10250/metrics/resource"
    )
    assert (
        str(client.url_for(node(address="10.0.0.7"))) == "https://10.0.0.7:10250/metrics/resource"
    )
    summary_client = KubeletClient(ClientConfig(use_summary=True, port=4194))
    assert (
        str(summary_client.url_for(node(address="fd00::7")))
        == "https://[fd00::7]:4194/stats/summary?only_cpu_and_memory=true"
    )


async def test_dns(certs: Pki) -> None:
    # .invalid never resolves (RFC 6761); the lookup fails at the resolver.
    target = Node(name="node1", addresses=(NodeAddress("Hostname", "no-such-node.invalid"),))
    error = await scrape_error(config(certs, 10250, preferred_address_types=("Hostname",)), target)
    assert error.cause == "dns"
    # "no such host" for NXDOMAIN; a resolver that cannot be reached says so instead.
    assert "dial tcp: lookup no-such-node.invalid: " in error.message


async def test_refused(certs: Pki) -> None:
    with closed_port() as port:
        error = await scrape_error(config(certs, port), node())
    assert error.cause == "refused"
    assert error.message.endswith(f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_timeout_waiting_for_headers(certs: Pki) -> None:
    release = asyncio.Event()

    async def never_answers(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late")

    async with serve(never_answers, certs.server) as port:
        try:
            error = await scrape_error(config(certs, port, timeout=0.3), node())
        finally:
            release.set()
    assert error.cause == "timeout"
    assert "context deadline exceeded" in error.message


async def test_timeout_in_the_handshake(certs: Pki) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # accepts the connection, never speaks TLS
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        error = await scrape_error(config(certs, port, timeout=0.3), node())
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert error.cause == "timeout"


async def test_unknown_authority(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.other_ca) as port:
        error = await scrape_error(config(certs, port), node())
    assert error.cause == "tls-unknown-authority"
    assert "x509: certificate signed by unknown authority" in error.message


async def test_unknown_authority_with_system_cas(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.server) as port:
        error = await scrape_error(config(certs, port, ca_file=None), node())
    assert error.cause == "tls-unknown-authority"


async def test_no_ip_san(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.dns_only) as port:
        error = await scrape_error(config(certs, port), node())
    assert error.cause == "tls-no-ip-san"
    assert (
        "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"
        in error.message
    )


async def test_ip_not_among_the_ip_sans(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.wrong_ip) as port:
        error = await scrape_error(config(certs, port), node())
    assert error.cause == "tls-hostname"
    assert "x509: certificate is valid for 127.0.0.2, not 127.0.0.1" in error.message


def test_hostname_mismatch_messages(certs: Pki) -> None:
    # Dialling a name would leave 127.0.0.0/8 (localhost may be ::1), so this is offline.
    named = pki.KeyPair.load(*certs.dns_only).cert
    by_ip = pki.KeyPair.load(*certs.server).cert
    wrong = _mismatch_error("", "node1.example", named, "Hostname mismatch")
    assert (wrong.cause, wrong.message) == (
        "tls-hostname",
        "x509: certificate is valid for localhost, not node1.example",
    )
    no_names = _mismatch_error("", "node1.example", by_ip, "Hostname mismatch")
    assert no_names.message == (
        "x509: certificate is not valid for any names, but wanted to match node1.example"
    )
    unknown = _mismatch_error("", "127.0.0.1", None, "IP address mismatch")
    assert unknown.cause == "tls-hostname"


async def test_expired(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.expired) as port:
        error = await scrape_error(config(certs, port, ca_file=certs.expired_ca_file), node())
    assert error.cause == "tls-expired"
    assert "x509: certificate has expired or is not yet valid" in error.message


async def test_unauthorized(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.server) as port:
        error = await scrape_error(config(certs, port, token=None), node())
    assert (error.cause, error.status) == ("unauthorized", 401)
    assert 'request failed, status: "401 Unauthorized"' in error.message


async def test_forbidden(certs: Pki) -> None:
    async with serve(FakeKubelet().handle, certs.server) as port:
        error = await scrape_error(config(certs, port, token=WEAK_TOKEN), node())
    assert (error.cause, error.status) == ("forbidden", 403)
    assert "subresource=metrics" in error.message  # the kubelet's explanation is kept


async def test_other_status(certs: Pki) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    async with serve(broken, certs.server) as port:
        error = await scrape_error(config(certs, port), node())
    assert (error.cause, error.status) == ("http", 500)
    assert '"500 Internal Server Error"' in error.message


async def test_redirects_are_not_followed(certs: Pki) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://127.0.0.1:1/elsewhere")

    async with serve(redirect, certs.server) as port:
        error = await scrape_error(config(certs, port), node())
    assert (error.cause, error.status) == ("http", 302)


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_too_large(certs: Pki, streamed: bool) -> None:
    body = METRICS * 20

    async def large(request: web.Request) -> web.StreamResponse:
        if not streamed:
            return web.Response(body=body, content_type="text/plain")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 4096):
            await response.write(body[start : start + 4096])
        await response.write_eof()
        return response

    async with serve(large, certs.server) as port:
        error = await scrape_error(config(certs, port, max_body_bytes=len(METRICS) * 2), node())
        # And the same body is fine under the default limit.
        fine = await scrape(config(certs, port), node())
    assert error.cause == "too-large"
    assert _summary_of(fine) == EXPECTED


async def test_bad_payload(certs: Pki) -> None:
    kubelet = FakeKubelet(resource=b"<html><body>It works!</body></html>")
    async with serve(kubelet.handle, certs.server) as port:
        error = await scrape_error(config(certs, port), node())
    assert error.cause == "bad-payload"
    assert "not Prometheus text" in error.message


async def test_bad_summary_payload(certs: Pki) -> None:
    kubelet = FakeKubelet(summary=b"not json")
    async with serve(kubelet.handle, certs.server) as port:
        error = await scrape_error(config(certs, port, use_summary=True), node())
    assert error.cause == "bad-payload"


def test_scrape_error_shape() -> None:
    error = ScrapeError("refused", "connection refused")
    assert (error.cause, error.message, str(error)) == (
        "refused",
        "connection refused",
        "connection refused",
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_cert": Path("a.crt")},
        {"client_key": Path("a.key")},
        {"insecure_tls": True, "ca_file": Path("ca.crt")},
        {"timeout": 0},
        {"max_body_bytes": 0},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ClientConfig(**kwargs)


def test_config_defaults() -> None:
    cfg = ClientConfig()
    assert tuple(cfg.preferred_address_types) == ("InternalIP", "ExternalIP", "Hostname")
    assert (cfg.port, cfg.timeout, cfg.path, cfg.max_body_bytes) == (
        10250,
        10.0,
        "/metrics/resource",
        10 * 1024 * 1024,
    )


async def test_a_rotated_token_file_is_read_again(
    certs: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(WEAK_TOKEN + "\n")
    kubelet = FakeKubelet()
    async with (
        serve(kubelet.handle, certs.server) as port,
        KubeletClient(config(certs, port, token=None, token_file=token_file)) as client,
    ):
        assert (await scrape_error_of(client)).cause == "forbidden"
        token_file.write_text(TOKEN)  # the kubelet's projected token, rotated
        assert (await scrape_error_of(client)).cause == "forbidden"  # read once a minute
        monkeypatch.setattr(client_module, "TOKEN_REREAD_SECONDS", 0.0)
        assert _summary_of(await client.scrape(node())) == EXPECTED
        token_file.unlink()  # unreadable later: the token in use is kept
        assert _summary_of(await client.scrape(node())) == EXPECTED
    assert kubelet.authorizations == [f"Bearer {WEAK_TOKEN}"] * 2 + [f"Bearer {TOKEN}"] * 2


async def test_an_unreadable_token_file_at_start_is_a_configuration_error(
    certs: Pki, tmp_path: Path
) -> None:
    client = KubeletClient(config(certs, 1, token=None, token_file=tmp_path / "missing"))
    with pytest.raises(ValueError, match="cannot read kubelet token file"):
        await client.start()


async def scrape_error_of(client: KubeletClient) -> ScrapeError:
    with pytest.raises(ScrapeError) as caught:
        await client.scrape(node())
    return caught.value
