"""`kubepulse server` as a process against a cluster: the fake kube-apiserver for nodes,
pods and reviews, and fake kubelets on 127.0.0.x that answer only the server's token.

Without --kubelet-* flags the server must scrape with its kubeconfig's token and verify
kubelets against the kubeconfig's CA, as metrics-server does with its rest.Config.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubepulse import pki
from tests.fakeapi import objects
from tests.fakeapi.kubelets import FakeKubelets
from tests.fakeapi.server import FakeKubeAPI
from tests.server import fleet
from tests.server.test_server_cli import scrape_errors
from tests.support import KUBECTL, free_port, run_kubepulse, wait_for, wait_serving

M = "/apis/metrics.k8s.io/v1beta1"
SA_TOKEN = "metrics-server-sa-token"  # the server's own token: the kubelets accept it
READER = "reader-token"


@dataclass
class Cluster:
    api: FakeKubeAPI
    kubelets: FakeKubelets

    def add_node(self, name: str, ip: str, *pods: str, ca: pki.KeyPair | None = None) -> None:
        """A node in the API and its kubelet; pods are `namespace/name`."""
        pairs = [tuple(p.split("/", 1)) for p in pods]
        port = self.kubelets.add(name, ip, pods=pairs, ca=ca)  # type: ignore[arg-type]
        self.api.add_node(objects.node(name, ip, kubelet_port=port, labels={"pool": ip}))
        for namespace, pod in pairs:
            self.api.add_pod(objects.pod(namespace, pod, name, labels={"app": pod}))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with FakeKubeAPI() as api, FakeKubelets(api.ca, SA_TOKEN) as kubelets:
        api.add_token(SA_TOKEN, "system:serviceaccount:kube-system:metrics-server")
        api.add_token(READER, "reader", ("system:masters",))
        yield Cluster(api, kubelets)


class Server(fleet.Server):
    """The targets-mode tests' client, with the reader's token and /readyz's status."""

    def get(self, path: str, token: str | None = READER) -> tuple[int, bytes]:
        return super().get(path, token)

    def probe(self) -> tuple[int, str]:
        status, body = self.get("/readyz?verbose")  # details for callers with a token
        return status, body.decode()


@contextmanager
def kube_server(
    tmp: Path,
    api: FakeKubeAPI,
    *extra: str,
    name: str = "server",
    config: Path | None = None,
    verbosity: int = 0,
) -> Iterator[Server]:
    """The server with config (default: a kubeconfig with the service account's token)."""
    config = config or api.write_kubeconfig(tmp / f"{name}.kubeconfig", token=SA_TOKEN)
    port = free_port()
    args = [
        "-v", str(verbosity),
        "server",
        "--kubeconfig", str(config),
        "--bind-address", "127.0.0.1",
        "--secure-port", str(port),
        "--cert-dir", str(tmp / f"{name}-pki"),
        "--kubelet-use-node-status-port",
        "--metric-resolution", "2s",
        "--kubelet-request-timeout", "1s",
        *extra,
    ]  # fmt: skip
    with run_kubepulse(args, tmp / f"{name}.log") as running:
        wait_serving(running, port)
        ctx = ssl.create_default_context(cafile=str(tmp / f"{name}-pki" / "ca.crt"))
        yield Server(port, running, ctx)


def test_cluster_nodes_are_scraped_with_the_kubeconfigs_token_and_ca(
    tmp_path: Path, cluster: Cluster
) -> None:
    cluster.add_node("node-a", "127.0.0.2", "kube-system/etcd-node-a")
    cluster.add_node("node-b", "127.0.0.3", "default/web-1", "default/web-2")
    with kube_server(tmp_path, cluster.api) as server:
        wait_for(lambda: server.node_names() == ["node-a", "node-b"], what="both nodes")
        node = server.json(f"{M}/nodes/node-b")
        assert node["usage"] == {"cpu": "250m", "memory": "512Mi"}
        assert node["metadata"]["labels"]["pool"] == "127.0.0.3"
        pods = wait_for(
            lambda: (
                (items := server.json(f"{M}/namespaces/default/pods")["items"])
                and len(items) == 2
                and items
            ),
            what="both pods of node-b",
        )
        assert [p["metadata"]["name"] for p in pods] == ["web-1", "web-2"]
        assert pods[0]["metadata"]["labels"] == {"app": "web-1"}
        assert pods[0]["containers"] == [
            {"name": "main", "usage": {"cpu": "125m", "memory": "64Mi"}}
        ]
        status, readyz = server.probe()
        assert status == 200 and scrape_errors(readyz) == {}, readyz
    for kubelet in ("node-a", "node-b"):
        assert cluster.kubelets.nodes[kubelet].tokens == {SA_TOKEN}


def test_readyz_fails_until_the_first_metrics_are_in(tmp_path: Path, cluster: Cluster) -> None:
    silent = free_port("127.0.0.2")  # no kubelet listens there yet
    cluster.api.add_node(objects.node("node-a", "127.0.0.2", kubelet_port=silent))
    with kube_server(tmp_path, cluster.api) as server:

        def failed_once() -> tuple[int, str] | None:
            answer = server.probe()
            return answer if scrape_errors(answer[1]) else None

        status, readyz = wait_for(failed_once, what="the first failed scrape")
        assert status == 500
        assert "[-]metric-storage-ready failed" in readyz
        assert scrape_errors(readyz) == {"node-a": "refused"}
        assert server.get(f"{M}/nodes/node-a")[0] == 404

        # Ready takes a node and a container with two points each (metrics-server's rule).
        port = cluster.kubelets.add("node-a", "127.0.0.2", pods=[("default", "web-1")])

        def move(node: dict[str, Any]) -> None:
            node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = port

        cluster.api.update("nodes", "node-a", move)
        wait_for(lambda: server.probe()[0] == 200, what="ready once the kubelet answers")
        assert server.node_names() == ["node-a"]


def test_watch_events_add_and_remove_nodes(tmp_path: Path, cluster: Cluster) -> None:
    cluster.add_node("node-a", "127.0.0.2")
    with kube_server(tmp_path, cluster.api) as server:
        wait_for(lambda: server.node_names() == ["node-a"], what="node-a")
        cluster.add_node("node-b", "127.0.0.3")
        wait_for(lambda: server.node_names() == ["node-a", "node-b"], what="node-b added")
        cluster.api.delete_node("node-a")
        wait_for(lambda: server.node_names() == ["node-b"], what="node-a removed")
        assert server.get(f"{M}/nodes/node-a")[0] == 404
        assert cluster.api.requests["list", "nodes"] == 1  # watched, never listed again


@pytest.mark.parametrize(
    ("flags", "cause"),
    [
        ((), None),
        (("--kubelet-preferred-address-types", "Hostname"), "dns"),
        (("--kubelet-preferred-address-types", "Hostname,InternalIP"), "dns"),
    ],
)
def test_unresolvable_hostname_fails_only_when_hostname_is_preferred(
    tmp_path: Path, cluster: Cluster, flags: tuple[str, ...], cause: str | None
) -> None:
    """The field guide's `lookup <node>: no such host`: the node's Hostname address is its
    name, which nothing resolves; its InternalIP works."""
    cluster.add_node("no-such-node.invalid", "127.0.0.2")
    with kube_server(tmp_path, cluster.api, *flags) as server:
        if cause is None:
            wait_for(lambda: server.node_names() == ["no-such-node.invalid"], what="scraped")
            assert scrape_errors(server.probe()[1]) == {}
        else:
            errors = wait_for(
                lambda: scrape_errors(server.probe()[1]), what="the node's scrape error"
            )
            assert errors == {"no-such-node.invalid": cause}
            line = next(
                x for x in server.probe()[1].splitlines() if x.startswith("[!]scrape node/")
            )
            assert "no-such-node.invalid" in line and "no such host" in line, line
            assert server.node_names() == []


@pytest.mark.parametrize(
    ("flags", "served"),
    [((), False), (("--kubelet-insecure-tls",), True)],
)
def test_kubelet_certificate_from_another_ca_is_refused_unless_insecure(
    tmp_path: Path, cluster: Cluster, flags: tuple[str, ...], served: bool
) -> None:
    cluster.add_node("trusted", "127.0.0.2")
    cluster.add_node("stranger", "127.0.0.3", ca=pki.new_ca("someone-elses-ca"))
    with kube_server(tmp_path, cluster.api, *flags) as server:
        if served:
            wait_for(lambda: server.node_names() == ["stranger", "trusted"], what="both")
        else:
            wait_for(
                lambda: scrape_errors(server.probe()[1]) == {"stranger": "tls-unknown-authority"},
                what="the stranger refused",
            )
            wait_for(lambda: server.node_names() == ["trusted"], what="the trusted node")


def _answers(server: Server) -> dict[str, Any]:
    """What a replica serves, without the times of its own scrapes."""
    nodes = server.json(f"{M}/nodes")["items"]
    pods = server.json(f"{M}/pods")["items"]
    return {
        "nodes": [(n["metadata"]["name"], n["metadata"]["labels"], n["usage"]) for n in nodes],
        "pods": [
            (p["metadata"]["namespace"], p["metadata"]["name"], p["containers"]) for p in pods
        ],
    }


def test_two_replicas_give_the_same_answers(tmp_path: Path, cluster: Cluster) -> None:
    """metrics-server's HA: every replica scrapes every node on its own (MS README)."""
    cluster.add_node("node-a", "127.0.0.2", "kube-system/etcd-node-a")
    cluster.add_node("node-b", "127.0.0.3", "default/web-1")
    with (
        kube_server(tmp_path, cluster.api, name="one") as one,
        kube_server(tmp_path, cluster.api, name="two") as two,
    ):
        for server in (one, two):
            wait_for(
                lambda server=server: len(_answers(server)["pods"]) == 2,  # type: ignore[misc]
                what="both nodes and pods served",
            )
        first = _answers(one)
        assert first == _answers(two)
        assert [n[0] for n in first["nodes"]] == ["node-a", "node-b"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_kubectl_reads_metrics_with_a_token_the_cluster_reviews(
    tmp_path: Path, cluster: Cluster
) -> None:
    cluster.add_node("node-a", "127.0.0.2")
    cluster.api.add_token("dana-token", "dana", ("viewers",))
    cluster.api.allow("viewers", "list", "nodes.metrics.k8s.io")
    with kube_server(tmp_path, cluster.api) as server:
        wait_for(lambda: server.node_names() == ["node-a"], what="node-a")
        config = tmp_path / "dana.kubeconfig"
        config.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: k\n"
            f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:{server.port}', "
            f"certificate-authority: '{tmp_path / 'server-pki' / 'ca.crt'}'}}}}]\n"
            "users: [{name: dana, user: {token: dana-token}}]\n"
            "contexts: [{name: k, context: {cluster: k, user: dana}}]\n"
        )

        def kubectl(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [KUBECTL, "--kubeconfig", str(config), *argv],
                capture_output=True,
                text=True,
                timeout=60,
            )

        done = kubectl("get", "--raw", f"{M}/nodes")
        assert done.returncode == 0, done.stderr
        body = json.loads(done.stdout)
        assert [i["metadata"]["name"] for i in body["items"]] == ["node-a"]
        denied = kubectl("get", "--raw", f"{M}/pods")
        assert denied.returncode == 1
        assert (
            'pods.metrics.k8s.io is forbidden: User "dana" cannot list resource "pods" '
            'in API group "metrics.k8s.io" at the cluster scope'
        ) in denied.stderr
    assert [r["token"] for r in cluster.api.token_reviews].count("dana-token") == 1


def test_a_deleted_node_takes_its_scrape_error_with_it(tmp_path: Path, cluster: Cluster) -> None:
    cluster.add_node("no-such-node.invalid", "127.0.0.2")
    with kube_server(
        tmp_path, cluster.api, "--kubelet-preferred-address-types", "Hostname"
    ) as server:
        wait_for(lambda: scrape_errors(server.probe()[1]), what="the node's scrape error")
        cluster.api.delete_node("no-such-node.invalid")
        wait_for(
            lambda: "no-such-node.invalid" not in scrape_errors(server.probe()[1]),
            what="the error gone with the node",
        )
