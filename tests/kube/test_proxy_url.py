"""A cluster's proxy-url: kubepulse and kubectl 1.32 reach the API through an HTTP
CONNECT proxy on loopback, written here."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.plugins.cluster import ADMIN, PluginCluster, kubectl, kubepulse, plugin_cluster


class ConnectProxy:
    """Tunnels CONNECT requests to loopback addresses; remembers each target asked for."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._tunnel, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.started.set()
        self.loop.run_forever()
        server.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            writer.close()
            return
        self.targets.append(target)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

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

    def __enter__(self) -> ConnectProxy:
        self.thread.start()
        assert self.started.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PluginCluster]:
    yield from plugin_cluster(tmp_path)


def test_top_goes_through_the_proxy_url_as_kubectl_does(cluster: PluginCluster) -> None:
    cluster.tokens["proxied-token"] = ADMIN
    target = cluster.url.removeprefix("https://")
    with ConnectProxy() as proxy:
        config = cluster.kubeconfig(
            {"token": "proxied-token"}, cluster={"proxy-url": f"http://127.0.0.1:{proxy.port}"}
        )
        ours = kubepulse(config, "top", "pods", "-A")
        through_ours = len(proxy.targets)
        theirs = kubectl(config, "top", "pods", "-A")
    assert ours.returncode == 0, ours.stderr
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        theirs.stdout,
        theirs.stderr,
        theirs.returncode,
    )
    assert through_ours >= 1
    assert len(proxy.targets) > through_ours
    assert set(proxy.targets) == {target}


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
