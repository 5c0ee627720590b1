"""A cluster's proxy-url: kubepulse and kubectl 1.32 reach the API through an HTTP
CONNECT proxy (plain, or itself behind TLS: an https proxy-url) and a SOCKS5 proxy on
loopback, written here."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from kubepulse import pki
from tests.kube.plugins.cluster import ADMIN, PluginCluster, kubectl, kubepulse, plugin_cluster


class LoopbackProxy:
    """A proxy in its own thread and event loop that tunnels only to loopback addresses
    and remembers each target asked for; `_handshake` is the protocol's part."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        """The proxy's own TLS (an https:// proxy-url), None for plain TCP."""
        self.targets: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._tunnel, "127.0.0.1", 0, ssl=self.tls)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.started.set()
        self.loop.run_forever()
        server.close()
        # Tunnels still open are ended here, not left to the garbage collector.
        tunnels = asyncio.all_tasks(self.loop)
        for tunnel in tunnels:
            tunnel.cancel()
        self.loop.run_until_complete(asyncio.gather(*tunnels, return_exceptions=True))
        self.loop.close()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        raise NotImplementedError

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = await self._handshake(reader, writer)
        if target is None:
            writer.close()
            return
        self.targets.append(f"{target[0]}:{target[1]}")
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        self._established(writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    def _established(self, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    def __enter__(self) -> LoopbackProxy:
        self.thread.start()
        assert self.started.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class ConnectProxy(LoopbackProxy):
    """HTTP CONNECT (RFC 9110 9.3.6)."""

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return None
        return host, int(port)

    def _established(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")


class Socks5Proxy(LoopbackProxy):
    """SOCKS5 (RFC 1928) without authentication, CONNECT to an IPv4 address or a name."""

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5 or 0 not in methods:
            writer.write(b"\x05\xff")
            return None
        writer.write(b"\x05\x00")
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        elif kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            host = ""
        port = int.from_bytes(await reader.readexactly(2), "big")
        if command != 1 or host not in ("127.0.0.1", "localhost"):
            writer.write(b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00")  # not allowed
            return None
        return host, port

    def _established(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PluginCluster]:
    yield from plugin_cluster(tmp_path)


def proxy(scheme: str, cluster: PluginCluster) -> LoopbackProxy:
    """A proxy for proxy-url's scheme; an https one has a certificate from the cluster's
    CA, which client-go (and aiohttp) verify the proxy with as they verify the API."""
    if scheme == "socks5":
        return Socks5Proxy()
    if scheme == "http":
        return ConnectProxy()
    pair = pki.issue(cluster.ca, "proxy", ips=[ip_address("127.0.0.1")])
    pair.write(cluster.dir / "proxy.crt", cluster.dir / "proxy.key")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cluster.dir / "proxy.crt", cluster.dir / "proxy.key")
    return ConnectProxy(tls)


@pytest.mark.parametrize("scheme", ["http", "https", "socks5"])
def test_top_goes_through_the_proxy_url_as_kubectl_does(
    cluster: PluginCluster, scheme: str
) -> None:
    cluster.tokens["proxied-token"] = ADMIN
    target = cluster.url.removeprefix("https://")
    with proxy(scheme, cluster) as running:
        config = cluster.kubeconfig(
            {"token": "proxied-token"},
            cluster={"proxy-url": f"{scheme}://127.0.0.1:{running.port}"},
        )
        ours = kubepulse(config, "top", "pods", "-A")
        through_ours = len(running.targets)
        theirs = kubectl(config, "top", "pods", "-A")
    assert ours.returncode == 0, ours.stderr
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        theirs.stdout,
        theirs.stderr,
        theirs.returncode,
    )
    assert through_ours >= 1
    assert len(running.targets) > through_ours
    assert set(running.targets) == {target}


def test_a_proxy_url_of_another_scheme_is_refused_in_kubectl_words(cluster: PluginCluster) -> None:
    config = cluster.kubeconfig({"token": "t"}, cluster={"proxy-url": "ftp://127.0.0.1:1"})
    ours = kubepulse(config, "top", "nodes")
    theirs = kubectl(config, "top", "nodes")
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        theirs.stdout,
        theirs.stderr,
        theirs.returncode,
    )
    assert 'unsupported scheme "ftp", must be http, https, or socks5' in ours.stderr
