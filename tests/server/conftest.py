"""Fixtures of the server tests: certificates and tokens, and running agents."""

from __future__ import annotations

import ipaddress
import secrets
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from kubepulse import pki
from tests.server.fleet import NODES, SERVER_TOKEN, Agent, Files, get
from tests.support import free_port, run_kubepulse, wait_for


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    base = tmp_path_factory.mktemp("pki")
    ca = pki.new_ca("kubelet-ca")
    ca.write(base / "ca.crt", base / "ca.key")
    pki.new_ca("someone-elses-ca").write(base / "other-ca.crt", base / "other-ca.key")
    for node, (ip, _pool) in NODES.items():
        pair = pki.issue(ca, node, dns_names=[node], ips=[ipaddress.ip_address(ip)])
        pair.write(base / f"{node}.crt", base / f"{node}.key")
    (base / "agent-token").write_text(secrets.token_hex(16) + "\n")
    (base / "tokens.csv").write_text(f'{SERVER_TOKEN},admin,1,"system:masters"\n')
    return Files(
        base, base / "ca.crt", base / "other-ca.crt", base / "agent-token", base / "tokens.csv"
    )


@pytest.fixture
def agents(tmp_path: Path, files: Files) -> Iterator[dict[str, Agent]]:
    ctx = ssl.create_default_context(cafile=str(files.ca))
    with ExitStack() as stack:
        started: dict[str, Agent] = {}
        for node, (ip, _pool) in NODES.items():
            port = free_port(ip)
            cert, key = files.cert(node)
            args = [
                "agent",
                "--address", ip,
                "--port", str(port),
                "--hostname-override", node,
                "--tls-cert-file", str(cert),
                "--tls-private-key-file", str(key),
                "--cert-dir", str(tmp_path / f"{node}-pki"),
                "--token-file", str(files.agent_token),
                "--housekeeping-interval", "1s",
            ]  # fmt: skip
            running = stack.enter_context(run_kubepulse(args, tmp_path / f"{node}.log"))
            started[node] = Agent(node, ip, port, running)
        for agent in started.values():

            def healthy(agent: Agent = agent) -> bool:
                if agent.running.proc.poll() is not None:
                    raise AssertionError(f"agent {agent.name} exited: {agent.running.log()}")
                return get(f"https://{agent.ip}:{agent.port}/healthz", ctx)[0] == 200

            wait_for(healthy, what=f"agent {agent.name} /healthz")
        yield started
