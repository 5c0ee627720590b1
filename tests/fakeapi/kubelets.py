"""Kubelets for a server to scrape: /metrics/resource over TLS on 127.0.0.x, in a thread.

Each node answers only `Authorization: Bearer <token>` or, when the kubelets are given a
client CA, a client certificate it signed (401 otherwise), with the text
kubepulse.agent.resource_metrics.render makes. Samples are taken at whole seconds with
counters that grow at exactly RATE_CORES per second from a fixed origin, so any two
scrapers compute the same rate, to the nanocore, whenever they scrape: two replicas of
the server must then give the same answers.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from aiohttp import web

from kubepulse import pki
from kubepulse.agent.resource_metrics import render
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Usage

RATE_CORES = 0.25  # of each node
CONTAINER_RATE_CORES = 0.125
NODE_WORKING_SET = 512 * 1024 * 1024
CONTAINER_WORKING_SET = 64 * 1024 * 1024


@dataclass
class Kubelet:
    name: str
    ip: str
    port: int
    pods: Sequence[tuple[str, str]]  # namespace, name
    runner: web.AppRunner
    requests: int = 0
    tokens: set[str] = field(default_factory=set)
    client_names: set[str] = field(default_factory=set)
    """Common names of the client certificates it accepted."""
    tamper: Callable[[str], str] | None = None
    """What a hostile or broken kubelet does to its answer."""
    plain: bool = False
    """Plain HTTP, answering anyone (the kubelet's old read-only port)."""
    authorizations: list[str] = field(default_factory=list)
    """Every Authorization header it was sent."""


class FakeKubelets:
    """`with FakeKubelets(ca, token) as kubelets: port = kubelets.add("node-a", "127.0.0.2")`."""

    def __init__(self, ca: pki.KeyPair, token: str, client_ca: pki.KeyPair | None = None) -> None:
        self.ca, self.token, self.client_ca = ca, token, client_ca
        self.accepted_tokens = {token}
        """The bearer tokens every kubelet answers; a test adds and revokes them."""
        self.origin = float(int(time.time()))
        self.nodes: dict[str, Kubelet] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeKubelets:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for kubelet in list(self.nodes.values()):
            self.stop(kubelet.name)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(20)

    def add(
        self,
        name: str,
        ip: str,
        *,
        pods: Sequence[tuple[str, str]] = (),
        ca: pki.KeyPair | None = None,
        tamper: Callable[[str], str] | None = None,
        plain: bool = False,
    ) -> int:
        """Start a kubelet for node name on ip; its serving certificate names both and is
        signed by ca (the kubelets' CA by default); plain: HTTP, without authentication.
        Returns its port."""
        serving = pki.issue(ca or self.ca, name, dns_names=[name], ips=[ip_address(ip)])
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            serving.write(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
            ctx.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
        if self.client_ca is not None:
            ctx.load_verify_locations(cadata=self.client_ca.cert_pem().decode())
            ctx.verify_mode = ssl.CERT_OPTIONAL  # a token will do as well
        sock = socket.socket()
        sock.bind((ip, 0))
        sock.listen(64)
        port = int(sock.getsockname()[1])
        app = web.Application()
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        kubelet = Kubelet(name, ip, port, pods, runner, tamper=tamper, plain=plain)

        async def answer(request: web.Request) -> web.Response:
            return await self._answer(request, kubelet)

        app.router.add_get("/metrics/resource", answer)

        async def start() -> None:
            await runner.setup()
            await web.SockSite(runner, sock, ssl_context=None if plain else ctx).start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(20)
        self.nodes[name] = kubelet
        return port

    def stop(self, name: str) -> None:
        kubelet = self.nodes.pop(name)
        asyncio.run_coroutine_threadsafe(kubelet.runner.cleanup(), self._loop).result(20)

    async def _answer(self, request: web.Request, kubelet: Kubelet) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        kubelet.requests += 1
        if "Authorization" in request.headers:
            kubelet.authorizations.append(request.headers["Authorization"])
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:  # verified against client_ca by the handshake
            subject = dict(pair[0] for pair in peer["subject"])
            kubelet.client_names.add(subject["commonName"])
        elif not kubelet.plain and (scheme != "Bearer" or token not in self.accepted_tokens):
            return web.Response(status=401, text="Unauthorized")
        else:
            kubelet.tokens.add(token)
        text = render(self.stats(kubelet))
        return web.Response(text=kubelet.tamper(text) if kubelet.tamper else text)

    def stats(self, kubelet: Kubelet) -> NodeStats:
        now = float(int(time.time()))  # whole seconds: exact differences
        elapsed = now - self.origin + 1.0

        def usage(rate: float, working_set: int) -> Usage:
            return Usage(now, round(rate * elapsed * 1e9), working_set)

        pods = tuple(
            PodSample(
                namespace,
                pod,
                f"uid-{namespace}-{pod}",
                self.origin,
                (
                    ContainerSample(
                        "main", self.origin, usage(CONTAINER_RATE_CORES, CONTAINER_WORKING_SET)
                    ),
                ),
                usage(CONTAINER_RATE_CORES, CONTAINER_WORKING_SET),
            )
            for namespace, pod in kubelet.pods
        )
        node = NodeSample(kubelet.name, self.origin, usage(RATE_CORES, NODE_WORKING_SET))
        return NodeStats(node, pods)
