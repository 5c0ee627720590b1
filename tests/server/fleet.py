"""A real `kubepulse server` scraping real `kubepulse agent` processes, for the tests
of tests/server (the fixtures are in conftest.py)."""

from __future__ import annotations

import json
import signal
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import Running, free_port, run_kubepulse, wait_for

M = "/apis/metrics.k8s.io/v1beta1"
NODES = {"node-a": ("127.0.0.2", "blue"), "node-b": ("127.0.0.3", "green")}
SERVER_TOKEN = "9f2d6c1e0a8b4f3e"


@dataclass(frozen=True)
class Files:
    dir: Path
    ca: Path
    other_ca: Path
    agent_token: Path
    server_tokens: Path

    def cert(self, node: str) -> tuple[Path, Path]:
        return self.dir / f"{node}.crt", self.dir / f"{node}.key"


@dataclass
class Agent:
    name: str
    ip: str
    port: int
    running: Running

    def stop(self) -> None:
        self.running.proc.send_signal(signal.SIGTERM)
        self.running.proc.wait(timeout=10)


def get(url: str, ctx: ssl.SSLContext, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), context=ctx, timeout=10
        ) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def targets_file(path: Path, agents: dict[str, Agent]) -> Path:
    items = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": a.name,
                "labels": {"kubernetes.io/hostname": a.name, "pool": NODES[a.name][1]},
            },
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": a.ip},
                    {"type": "Hostname", "address": a.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": a.port}},
            },
        }
        for a in agents.values()
    ]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


@dataclass
class Server:
    port: int
    running: Running
    ctx: ssl.SSLContext

    def get(self, path: str, token: str | None = SERVER_TOKEN) -> tuple[int, bytes]:
        return get(f"https://127.0.0.1:{self.port}{path}", self.ctx, token)

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, body
        return json.loads(body)

    def node_names(self) -> list[str]:
        return [i["metadata"]["name"] for i in self.json(f"{M}/nodes")["items"]]

    def readyz(self) -> str:
        """Scrape errors name addresses: /readyz?verbose shows them to callers with a
        token only."""
        return self.get("/readyz?verbose")[1].decode()


@contextmanager
def start_server(
    tmp: Path, files: Files, agents: dict[str, Agent], *extra: str, ca: bool = True
) -> Iterator[Server]:
    port = free_port()
    args = [
        "server",
        "--targets", str(targets_file(tmp / "targets.yaml", agents)),
        "--bind-address", "127.0.0.1",
        "--secure-port", str(port),
        "--cert-dir", str(tmp / "server-pki"),
        "--token-auth-file", str(files.server_tokens),
        "--kubelet-token-file", str(files.agent_token),
        "--kubelet-use-node-status-port",
        "--metric-resolution", "2s",
        "--kubelet-request-timeout", "1s",
        *(["--kubelet-certificate-authority", str(files.ca)] if ca else []),
        *extra,
    ]  # fmt: skip
    with run_kubepulse(args, tmp / "server.log") as running:

        def serving() -> bool:
            if running.proc.poll() is not None:
                raise AssertionError(f"server exited: {running.log()}")
            return f"kubepulse server: https://127.0.0.1:{port}" in running.log()

        wait_for(serving, what="kubepulse server to serve")
        ctx = ssl.create_default_context(cafile=str(tmp / "server-pki" / "ca.crt"))
        yield Server(port, running, ctx)


def node(name: str, ip: str, port: int) -> dict[str, object]:
    """A Node whose kubelet is at ip:port (for --kubelet-use-node-status-port)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        },
    }


def server_args(tmp: Path, port: int) -> list[str]:
    """`server` on loopback, scraping tmp/targets.yaml, with one admin token."""
    (tmp / "tokens.csv").write_text(f'{SERVER_TOKEN},admin,1,"system:masters"\n')
    return [
        "server", "--targets", str(tmp / "targets.yaml"), "--token-auth-file",
        str(tmp / "tokens.csv"), "--bind-address", "127.0.0.1", "--secure-port", str(port),
        "--cert-dir", str(tmp / "pki"),
    ]  # fmt: skip
