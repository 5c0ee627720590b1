from __future__ import annotations

import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.fakehost import FakeHost
from tests.support import Running, free_port, run_kubepulse, wait_for


@dataclass
class Agent:
    url: str
    ca_file: Path
    token: str
    running: Running

    def context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx

    def get(
        self,
        path: str,
        token: str | None = "default",
        cert: tuple[Path, Path] | None = None,
    ) -> tuple[int, bytes]:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, context=self.context(cert), timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


def start_agent(tmp: Path, *extra: str, ca_file: Path | None = None) -> Iterator[Agent]:
    """An agent on a free port; ca_file verifies it, by default the CA it makes itself."""
    port = free_port()
    token = secrets.token_hex(16)
    (tmp / "token").write_text(token + "\n")
    args = [
        "agent",
        "--address",
        "127.0.0.1",
        "--port",
        str(port),
        "--cert-dir",
        str(tmp / "pki"),
        "--token-file",
        str(tmp / "token"),
        "--housekeeping-interval",
        "1s",
        *extra,
    ]
    with run_kubepulse(args, tmp / "agent.log") as running:
        ca = ca_file or tmp / "pki" / "ca.crt"
        agent = Agent(f"https://127.0.0.1:{port}", ca, token, running)

        def healthy() -> bool:
            if running.proc.poll() is not None:
                raise AssertionError(f"agent exited: {running.log()}")
            return agent.get("/healthz", token=None)[0] == 200

        wait_for(healthy, what="agent /healthz")
        yield agent


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    yield from start_agent(tmp_path)


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)
