"""`kubepulse server` as a real process, scraping real `kubepulse agent` processes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.server.fleet import (
    NODES,
    Agent,
    Files,
    M,
    start_server,
)
from tests.support import KUBEPULSE, free_port, wait_for


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
        pytest.param(
            ["--targets", "{good}", "--history-pressure-interval", "1m"],
            "--history-pressure-interval records into --history-file: add it",
            id="pressure-without-history",
        ),
        pytest.param(
            [
                "--targets",
                "{good}",
                "--history-file",
                "{tmp}/h.db",
                "--history-pressure-interval",
                "-1s",
            ],
            "--history-pressure-interval",
            id="pressure-interval-negative",
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
