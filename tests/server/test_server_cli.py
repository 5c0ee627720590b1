"""`kubepulse server` as a real process, scraping real `kubepulse agent` processes."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubepulse import pki
from tests.support import KUBEPULSE, Running, free_port, run_kubepulse, wait_for

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


@dataclass
class Agent:
    name: str
    ip: str
    port: int
    running: Running

    def stop(self) -> None:
        self.running.proc.send_signal(signal.SIGTERM)
        self.running.proc.wait(timeout=10)


def _get(url: str, ctx: ssl.SSLContext, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), context=ctx, timeout=10
        ) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


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
                return _get(f"https://{agent.ip}:{agent.port}/healthz", ctx)[0] == 200

            wait_for(healthy, what=f"agent {agent.name} /healthz")
        yield started


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
        return _get(f"https://127.0.0.1:{self.port}{path}", self.ctx, token)

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


def scrape_errors(readyz: str) -> dict[str, str]:
    """node -> cause, from the [!]scrape lines of /readyz?verbose."""
    return dict(re.findall(r"^\[!\]scrape node/(\S+): ([\w-]+): ", readyz, re.M))


QUANTITY = re.compile(r"^\d+(n|u|m|k|Ki|Mi|Gi)?$")
DURATION = re.compile(r"^\d+(\.\d+)?(ms|s)$")


def test_server_serves_every_agents_node(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    with start_server(tmp_path, files, agents) as server:
        wait_for(lambda: server.node_names() == ["node-a", "node-b"], what="both nodes served")
        body = server.json(f"{M}/nodes")
        assert (body["kind"], body["apiVersion"]) == ("NodeMetricsList", "metrics.k8s.io/v1beta1")
        for item, node in zip(body["items"], NODES, strict=True):
            assert item["metadata"]["labels"] == {
                "kubernetes.io/hostname": node,
                "pool": NODES[node][1],
            }
            assert DURATION.match(item["window"]), item
            assert QUANTITY.match(item["usage"]["cpu"]), item
            assert QUANTITY.match(item["usage"]["memory"]), item
            assert item["usage"]["memory"] != "0"
        one = server.json(f"{M}/nodes/node-b")
        assert (one["kind"], one["metadata"]["name"]) == ("NodeMetrics", "node-b")
        assert scrape_errors(server.readyz()) == {}
        assert server.get(f"{M}/nodes", token=None)[0] == 401


def test_node_whose_agent_stops_is_dropped_and_named_in_readyz(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    with start_server(tmp_path, files, agents) as server:
        wait_for(lambda: server.node_names() == ["node-a", "node-b"], what="both nodes served")
        agents["node-b"].stop()

        def dropped_and_named() -> bool:
            return (
                server.node_names() == ["node-a"]
                and scrape_errors(server.readyz()).get("node-b") == "refused"
            )

        wait_for(dropped_and_named, what="node-b dropped with cause refused")
        status, body = server.get(f"{M}/nodes/node-b")
        assert status == 404
        assert json.loads(body)["message"] == 'nodes.metrics.k8s.io "node-b" not found'
        line = next(
            x for x in server.readyz().splitlines() if x.startswith("[!]scrape node/node-b")
        )
        assert f"{agents['node-b'].ip}:{agents['node-b'].port}" in line
        assert "connection refused" in line
        assert "node-a" not in scrape_errors(server.readyz())


@pytest.mark.parametrize("flag", ["-l", "--node-selector"])
def test_node_selector_limits_scraping_and_the_api(
    tmp_path: Path, files: Files, agents: dict[str, Agent], flag: str
) -> None:
    with start_server(tmp_path, files, agents, flag, "pool=blue") as server:
        wait_for(lambda: server.node_names() == ["node-a"], what="node-a served")
        assert server.get(f"{M}/nodes/node-b")[0] == 404
        assert server.node_names() == ["node-a"]
        # Every tick scrapes every target in parallel; node-a has two points, so the
        # ticks have run and node-b was never asked.
        status, metrics = server.get("/metrics")
        assert status == 200
        text = metrics.decode()
        assert 'kubepulse_kubelet_last_request_time_seconds{node="node-a"}' in text
        assert 'node="node-b"' not in text
        assert 'kubepulse_storage_points{type="node"} 1.0' in text


def test_server_that_does_not_trust_the_agents_names_the_tls_cause(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    extra = ("--kubelet-certificate-authority", str(files.other_ca))
    with start_server(tmp_path, files, agents, *extra, ca=False) as server:
        wait_for(
            lambda: (
                scrape_errors(server.readyz())
                == {"node-a": "tls-unknown-authority", "node-b": "tls-unknown-authority"}
            ),
            what="both nodes failing verification",
        )
        assert server.node_names() == []


def test_insecure_tls_scrapes_and_logs_a_warning(
    tmp_path: Path, files: Files, agents: dict[str, Agent]
) -> None:
    with start_server(tmp_path, files, agents, "--kubelet-insecure-tls", ca=False) as server:
        wait_for(lambda: server.node_names() == ["node-a", "node-b"], what="both nodes served")
        warnings = [
            line
            for line in server.running.log().splitlines()
            if " WARNING " in line and "--kubelet-insecure-tls" in line
        ]
        assert len(warnings) == 1, server.running.log()


# -- flag validation -----------------------------------------------------------------------


def _invalid_targets(tmp: Path) -> dict[str, Path]:
    bad = {
        "not-yaml.yaml": "kind: List\nitems: [\n  {kind: Node, metadata: {name: a}\n",
        "tabs.yaml": "kind: Node\n\tmetadata: {}\n",
        "scalar.yaml": "just some words\n",
        "no-nodes.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
        "nameless-node.yaml": "apiVersion: v1\nkind: Node\nmetadata: {}\n",
    }
    paths = {}
    for name, text in bad.items():
        (tmp / name).write_text(text)
        paths[name] = tmp / name
    (tmp / "binary.yaml").write_bytes(b"\xff\xfe\x00kind")
    paths["binary.yaml"] = tmp / "binary.yaml"
    return paths


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            [
                "--kubelet-insecure-tls",
                "--kubelet-certificate-authority",
                "{ca}",
                "--targets",
                "{good}",
            ],
            "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls",
            id="insecure-tls-with-ca",
        ),
        pytest.param(
            ["--metric-resolution", "2s", "--kubelet-request-timeout", "2s", "--targets", "{good}"],
            "metric-resolution should be larger than kubelet-request-timeout",
            id="timeout-above-90-percent-of-resolution",
        ),
        pytest.param(
            [
                "--metric-resolution",
                "10s",
                "--kubelet-request-timeout",
                "9.5s",
                "--targets",
                "{good}",
            ],
            "metric-resolution should be larger than kubelet-request-timeout",
            id="timeout-just-above-90-percent",
        ),
        pytest.param([], "no nodes to scrape: give --targets", id="missing-targets"),
        pytest.param(["--targets", "{tmp}/not-yaml.yaml"], "is not valid YAML", id="not-yaml"),
        pytest.param(["--targets", "{tmp}/tabs.yaml"], "is not valid YAML", id="tab-indented"),
        pytest.param(
            ["--targets", "{tmp}/scalar.yaml"], "expected a Kubernetes object", id="scalar"
        ),
        pytest.param(["--targets", "{tmp}/no-nodes.yaml"], "holds no Node objects", id="no-nodes"),
        pytest.param(
            ["--targets", "{tmp}/nameless-node.yaml"], "no metadata.name", id="nameless-node"
        ),
        pytest.param(["--targets", "{tmp}/binary.yaml"], "", id="binary-file"),
        pytest.param(["--targets", "{tmp}/missing.yaml"], "cannot read", id="missing-file"),
        pytest.param(
            ["--targets", "{good}", "--kubelet-client-certificate", "{ca}"],
            "must be given together",
            id="client-cert-without-key",
        ),
        pytest.param(
            ["--targets", "{good}", "-l", "pool in (blue"],
            "invalid --node-selector",
            id="bad-node-selector",
        ),
        pytest.param(
            ["--targets", "{good}", "--history-file", "{tmp}/h.db", "--history-tiers", "1m=1h"],
            "--history-tiers",
            id="bad-history-tiers",
        ),
        pytest.param(
            ["--targets", "{good}", "--history-file", "{tmp}/h.db", "--history-max-size", "1Mi"],
            "--history-max-size must be at least 16Mi, or 0 for no cap",
            id="history-cap-too-small",
        ),
    ],
)
def test_invalid_configuration_is_one_error_line(
    tmp_path: Path, files: Files, args: list[str], message: str
) -> None:
    _invalid_targets(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n"
        "status: {addresses: [{type: InternalIP, address: 127.0.0.2}]}\n"
    )
    values = {"ca": str(files.ca), "good": str(good), "tmp": str(tmp_path)}
    argv = [a.format(**values) for a in args]
    command = [
        *KUBEPULSE, "server",
        "--token-auth-file", str(files.server_tokens),
        "--bind-address", "127.0.0.1",
        "--secure-port", str(free_port()),
        "--cert-dir", str(tmp_path / "server-pki"),
        *argv,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


@pytest.mark.parametrize("flag", [(), ("--dashboard",)], ids=["without", "with"])
def test_the_dashboard_is_served_only_when_asked_for(
    tmp_path: Path, files: Files, agents: dict[str, Agent], flag: tuple[str, ...]
) -> None:
    with start_server(tmp_path, files, agents, *flag) as server:
        status, body = server.get("/dashboard/login", token=None)
        if flag:
            assert status == 200 and b'name="token"' in body  # its own sign-in form
            # Its data needs its session, and the metrics API still needs a token.
            assert server.get("/dashboard/api/overview", token=None)[0] == 401
            assert server.get(f"{M}/nodes", token=None)[0] == 401
        else:
            assert status == 401  # not a dashboard path: the API's authentication
