"""`kubepulse server` against a cluster: the in-cluster service account, and the one-line
errors for a cluster that cannot be used."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubepulse.server import run as server_run
from kubepulse.server.config import ConfigError
from tests.fakeapi import objects
from tests.fakeapi.fixtures import until
from tests.fakeapi.kubelets import FakeKubelets
from tests.fakeapi.served import M, Served, server_args
from tests.fakeapi.server import FakeKubeAPI
from tests.support import KUBEPULSE, free_port

SA_TOKEN = "in-cluster-sa-token"


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        api.add_token(SA_TOKEN, "system:serviceaccount:kube-system:metrics-server")
        api.add_token("root-token", "root", ("system:masters",))
        yield api


def service_account(tmp: Path, fake: FakeKubeAPI) -> Path:
    """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
    sa = tmp / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(SA_TOKEN)
    (sa / "ca.crt").write_bytes(fake.ca.cert_pem())
    (sa / "namespace").write_text("kube-system")
    return sa


async def test_in_cluster_the_service_account_reaches_api_and_kubelets(
    fake: FakeKubeAPI, tmp_path: Path
) -> None:
    sa = service_account(tmp_path, fake)
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(fake.port)}
    args = server_args(
        "--bind-address", "127.0.0.1",
        "--secure-port", "0",
        "--cert-dir", str(tmp_path / "pki"),
        "--kubelet-use-node-status-port",
        "--metric-resolution", "2s",
        "--kubelet-request-timeout", "1s",
    )  # fmt: skip
    where = server_run.cluster(args, sa, environ)
    assert (where.creds.server, where.token_file, where.ca_file) == (
        fake.url,
        sa / "token",
        sa / "ca.crt",
    )
    with FakeKubelets(fake.ca, SA_TOKEN) as kubelets:
        port = kubelets.add("node-a", "127.0.0.2", pods=[("default", "web-1")])
        fake.add_node(objects.node("node-a", "127.0.0.2", kubelet_port=port))
        running = await server_run.start_cluster_server(args.complete(), where)
        try:
            client = Served(running.port, tmp_path / "pki" / "ca.crt", tmp_path)
            nodes = await until_served(client)
            assert [n["metadata"]["name"] for n in nodes] == ["node-a"]
            assert kubelets.nodes["node-a"].tokens == {SA_TOKEN}
        finally:
            await running.stop()
    # The fake notices a closed watch when it next writes to it.
    fake.send_bookmarks()
    await until(lambda: fake.open_watches("nodes") == 0, "stopping to end the watches")


async def until_served(client: Served, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Poll the node list until it has items (until() polls sync conditions only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await client.get(f"{M}/nodes", token="root-token")
        if answer.status == 200 and answer.body["items"]:
            return list(answer.body["items"])
        await asyncio.sleep(0.1)
    raise AssertionError("node-a was never served")


def test_context_needs_a_kubeconfig() -> None:
    args = server_args("--context", "prod")
    with pytest.raises(ConfigError, match="--context needs --kubeconfig"):
        server_run.cluster(args, Path("/nonexistent"), {})


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    return subprocess.run(
        [*KUBEPULSE, "server", *argv], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize(
    ("case", "argv", "message"),
    [
        (
            "targets and kubeconfig",
            ["--targets", "{tmp}/nodes.yaml", "--kubeconfig", "{config}"],
            "--targets cannot be used with --kubeconfig or --context",
        ),
        (
            "context without kubeconfig",
            ["--context", "prod"],
            "--context needs --kubeconfig",
        ),
        ("missing kubeconfig", ["--kubeconfig", "{tmp}/nope"], "nope"),
        (
            "a token the cluster refuses",
            ["--kubeconfig", "{bad_config}"],
            "cannot read configmap kube-system/extension-apiserver-authentication: "
            "401 Unauthorized",
        ),
        (
            "lists that never come",
            [
                "--kubeconfig", "{bad_config}",
                "--requestheader-client-ca-file", "{ca}",
                "--client-ca-file", "{ca}",
                "--cache-sync-timeout", "1s",
            ],
            "nodes and pods were not listed from {url} within 1s: 401 Unauthorized",
        ),
        (
            "an API that is not there",
            ["--kubeconfig", "{closed_config}"],
            "cannot reach the Kubernetes API",
        ),
    ],
)  # fmt: skip
def test_a_cluster_that_cannot_be_used_is_one_error_line(
    fake: FakeKubeAPI, tmp_path: Path, case: str, argv: list[str], message: str
) -> None:
    (tmp_path / "ca.crt").write_bytes(fake.front_proxy_ca.cert_pem())
    bad_token = "refused-secret-token"
    closed = fake.write_kubeconfig(tmp_path / "closed", token=SA_TOKEN)
    closed.write_text(closed.read_text().replace(str(fake.port), str(free_port())))
    values = {
        "tmp": str(tmp_path),
        "config": str(fake.write_kubeconfig(tmp_path / "good", token=SA_TOKEN)),
        "bad_config": str(fake.write_kubeconfig(tmp_path / "bad", token=bad_token)),
        "closed_config": str(closed),
        "ca": str(tmp_path / "ca.crt"),
        "url": fake.url,
    }
    done = _run(
        *(a.format(**values) for a in argv),
        "--bind-address", "127.0.0.1",
        "--secure-port", str(free_port()),
        "--cert-dir", str(tmp_path / "pki"),
    )  # fmt: skip
    assert done.returncode != 0, case
    # The error is one line, the last; warnings logged on the way may come before it.
    *logged, error = done.stderr.strip().splitlines()
    assert error.startswith("error: "), (case, done.stderr)
    assert message.format(**values) in error, case
    assert all(" WARNING " in line for line in logged), (case, done.stderr)
    assert "Traceback" not in done.stderr
    assert bad_token not in done.stderr + done.stdout
