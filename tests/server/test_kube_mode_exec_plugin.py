"""`kubepulse server --kubeconfig` whose user is an exec credential plugin, as on EKS or
GKE: the one process lists and watches, reviews callers and scrapes kubelets with the
plugin's token, and gets a new one when it expires or is refused, without a restart."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubepulse import pki
from tests.fakeapi.kubelets import FakeKubelets
from tests.fakeapi.server import FakeKubeAPI
from tests.kube.plugins.cluster import PLUGIN
from tests.server.test_kube_mode import READER, Cluster, kube_server
from tests.support import wait_for

SERVER = "system:serviceaccount:kube-system:metrics-server"
FIRST, SECOND = "plugin-token-first-7c1e", "plugin-token-second-9a4b"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with FakeKubeAPI() as api, FakeKubelets(api.ca, FIRST) as kubelets:
        api.add_token(FIRST, SERVER)
        api.add_token(READER, "reader", ("system:masters",))
        yield Cluster(api, kubelets)


def plugin_kubeconfig(api: FakeKubeAPI, tmp: Path, *args: str) -> Path:
    """A kubeconfig whose user is fake_plugin.py with args (and --log)."""
    config = api.write_kubeconfig(tmp / "server.kubeconfig")
    doc = yaml.safe_load(config.read_text())
    plugin_args = [str(PLUGIN), "--log", str(tmp / "runs"), *args]
    doc["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": plugin_args,
            "interactiveMode": "Never",
            "provideClusterInfo": True,
        }
    }
    config.write_text(yaml.safe_dump(doc))
    return config


def runs(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "runs"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def bearers(api: FakeKubeAPI) -> set[str]:
    return {auth.removeprefix("Bearer ") for _method, _path, auth in api.calls}


def test_a_refused_plugin_token_is_replaced_without_a_restart(
    tmp_path: Path, cluster: Cluster
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(FIRST + "\n")
    config = plugin_kubeconfig(cluster.api, tmp_path, "--token-file", str(tokens))
    cluster.add_node("node-a", "127.0.0.2")
    with kube_server(tmp_path, cluster.api, config=config, verbosity=9) as server:
        wait_for(lambda: server.node_names() == ["node-a"], what="node-a scraped")
        pid = server.running.proc.pid
        assert len(runs(tmp_path)) == 1  # one plugin for the API, the reviews and kubelets
        assert runs(tmp_path)[0]["info"]["spec"]["cluster"]["server"] == cluster.api.url
        assert bearers(cluster.api) == {FIRST}
        assert cluster.kubelets.nodes["node-a"].tokens == {FIRST}
        # The first token is revoked everywhere; the plugin would now give the second.
        tokens.write_text(SECOND + "\n")
        cluster.api.add_token(SECOND, SERVER)
        cluster.kubelets.accepted_tokens = {SECOND}
        cluster.api.remove_token(FIRST)
        cluster.api.break_watches()
        cluster.add_node("node-b", "127.0.0.3")
        wait_for(lambda: server.node_names() == ["node-a", "node-b"], what="node-b scraped")
        assert server.running.proc.pid == pid and server.running.proc.poll() is None
        # Each 401 (watch, list, kubelet) asked the one plugin; it ran once more.
        assert len(runs(tmp_path)) == 2
        assert cluster.kubelets.nodes["node-a"].tokens == {FIRST, SECOND}
        assert cluster.kubelets.nodes["node-b"].tokens == {SECOND}
        assert SECOND in bearers(cluster.api)
        # A new caller is reviewed through the API (TokenReview with the new token).
        cluster.api.add_token("second-reader", "reader", ("system:masters",))
        assert server.get("/apis/metrics.k8s.io/v1beta1/nodes", "second-reader")[0] == 200
        assert server.get("/apis/metrics.k8s.io/v1beta1/nodes", "no-such-token")[0] == 401
        log = server.running.log()
    assert FIRST not in log and SECOND not in log


def test_an_expired_plugin_token_is_replaced_before_it_is_sent_again(
    tmp_path: Path, cluster: Cluster
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{FIRST}\n{SECOND}\n")  # the plugin gives FIRST once, then SECOND
    config = plugin_kubeconfig(
        cluster.api, tmp_path, "--token-file", str(tokens), "--expires-in", "2"
    )
    cluster.api.add_token(SECOND, SERVER)
    cluster.kubelets.accepted_tokens = {FIRST, SECOND}
    cluster.add_node("node-a", "127.0.0.2")
    with kube_server(tmp_path, cluster.api, config=config) as server:
        wait_for(lambda: server.node_names() == ["node-a"], what="node-a scraped")
        kubelet = cluster.kubelets.nodes["node-a"]
        wait_for(lambda: SECOND in kubelet.tokens, what="the kubelet scraped with the new token")
        cluster.api.break_watches()
        wait_for(lambda: SECOND in bearers(cluster.api), what="the watches with the new token")
        assert len(runs(tmp_path)) >= 2
        assert server.running.proc.poll() is None


def test_a_plugin_client_certificate_signs_in_to_the_api_and_kubelets_and_rotates(
    tmp_path: Path,
) -> None:
    """No token at all: the plugin's certificate is the server's identity for the API
    and, as metrics-server copies its rest.Config, for kubelets; a new one the plugin
    gives after the old expired is presented on new connections."""
    with FakeKubeAPI() as api, FakeKubelets(api.ca, "no-token-here", client_ca=api.ca) as kubelets:
        api.add_token(READER, "reader", ("system:masters",))
        cluster = Cluster(api, kubelets)
        cert, key = tmp_path / "client.crt", tmp_path / "client.key"

        def give(name: str) -> None:
            pair = pki.issue(api.ca, name, organizations=["system:masters"], client=True)
            pair.write(cert, key)

        give("metrics-server-first")
        config = plugin_kubeconfig(
            api, tmp_path, "--cert", str(cert), "--key", str(key),
            "--expires-in", "2",
        )  # fmt: skip
        cluster.add_node("node-a", "127.0.0.2")
        with kube_server(tmp_path, api, config=config) as server:
            wait_for(lambda: server.node_names() == ["node-a"], what="node-a scraped")
            kubelet = kubelets.nodes["node-a"]
            assert kubelet.client_names == {"metrics-server-first"}
            assert kubelet.tokens == set()
            give("metrics-server-second")
            wait_for(
                lambda: "metrics-server-second" in kubelet.client_names,
                what="the kubelet scraped with the plugin's new certificate",
            )
            assert server.running.proc.poll() is None
            assert bearers(api) == {""}  # the API was never sent a token
