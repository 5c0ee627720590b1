"""`kubepulse server` against the fake kube-apiserver, in the test's own event loop.

The fake runs in its own thread, so the server (list, watch, TokenReview,
SubjectAccessReview) and the test's HTTP client can share one loop. Tests that need a
separate process use tests/support.run_kubepulse instead.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kubepulse import pki
from kubepulse.cli import server
from kubepulse.cli.main import build_parser
from kubepulse.server import run as server_run
from kubepulse.server.config import ServerConfig
from tests.fakeapi.server import FakeKubeAPI

M = "/apis/metrics.k8s.io/v1beta1"


def server_args(*argv: str) -> ServerConfig:
    """The configuration `kubepulse server ARGV` runs with."""
    parser = build_parser("server")
    config = server.config(parser.parse_args(["server", *argv]))
    config.complete()
    return config


@dataclass
class Answer:
    status: int
    body: Any


@dataclass
class Served:
    port: int
    ca: Path
    tmp: Path

    def context(self, cert: pki.KeyPair | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            name = f"client-{id(cert)}"
            cert.write(self.tmp / f"{name}.crt", self.tmp / f"{name}.key")
            ctx.load_cert_chain(self.tmp / f"{name}.crt", self.tmp / f"{name}.key")
        return ctx

    async def get(
        self,
        path: str,
        *,
        token: str | None = None,
        cert: pki.KeyPair | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        connector = aiohttp.TCPConnector(ssl=self.context(cert))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"https://127.0.0.1:{self.port}{path}", headers=sent) as resp,
        ):
            text = await resp.text()
            body: Any = text
            if resp.content_type == "application/json":
                body = await resp.json()
            return Answer(resp.status, body)


@asynccontextmanager
async def served(
    fake: FakeKubeAPI, tmp: Path, *argv: str, token: str | None = None
) -> AsyncIterator[Served]:
    """The server with a kubeconfig for the fake (the admin's token unless token)."""
    config = fake.write_kubeconfig(tmp / "server-kubeconfig", token=token)
    args = server_args(
        "--kubeconfig", str(config),
        "--bind-address", "127.0.0.1",
        "--secure-port", "0",
        "--cert-dir", str(tmp / "server-pki"),
        "--cache-sync-timeout", "10s",
        *argv,
    )  # fmt: skip
    running = await server_run.start_cluster_server(args.complete(), server_run.cluster(args))
    try:
        yield Served(running.port, tmp / "server-pki" / "ca.crt", tmp)
    finally:
        await running.stop()
