"""--authentication-kubeconfig, --authorization-kubeconfig, --authentication-skip-lookup
and --authentication-tolerate-lookup-failure: a server outside the cluster (--targets)
that has tokens reviewed and requests authorized by the clusters those kubeconfigs name
(fake kube-apiservers on loopback)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.fakeapi.server import FakeKubeAPI
from tests.server.fleet import M, Server, node, server_args
from tests.support import KUBEPULSE, free_port, run_kubepulse, wait_serving

DANA = "dana-token"
EXTENSION_AUTH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"


@contextmanager
def outside_server(tmp: Path, *extra: str) -> Iterator[Server]:
    """A server whose one node's kubelet is not there: these tests look at who may ask."""
    (tmp / "targets.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [node("a", "127.0.0.9", 1)]})
    )
    port = free_port()
    with run_kubepulse([*server_args(tmp, port), *extra], tmp / "server.log") as running:
        wait_serving(running, port)
        yield Server(port, running, ssl.create_default_context(cafile=str(tmp / "pki/ca.crt")))


def kubeconfig(api: FakeKubeAPI, path: Path) -> str:
    return str(api.write_kubeconfig(path))


def test_tokens_are_reviewed_by_the_authentication_cluster_and_requests_by_the_other(
    tmp_path: Path,
) -> None:
    with FakeKubeAPI() as authn, FakeKubeAPI() as authz:
        authn.add_token(DANA, "dana", ("viewers",))
        authz.allow("viewers", "list", "nodes.metrics.k8s.io")
        with outside_server(
            tmp_path,
            "--authentication-kubeconfig", kubeconfig(authn, tmp_path / "authn.kubeconfig"),
            "--authorization-kubeconfig", kubeconfig(authz, tmp_path / "authz.kubeconfig"),
        ) as server:  # fmt: skip
            assert server.get(f"{M}/nodes", DANA)[0] == 200
            assert server.get(f"{M}/pods", DANA)[0] == 403
            assert server.get(f"{M}/nodes", "nobody's-token")[0] == 401
    assert [r["token"] for r in authn.token_reviews] == [DANA, "nobody's-token"]
    assert authz.token_reviews == []
    asked = [(r["user"], r["resourceAttributes"]["resource"]) for r in authz.access_reviews]
    assert asked == [("dana", "nodes"), ("dana", "pods")]
    assert authn.access_reviews == []
    # The client CAs were looked up where tokens are reviewed.
    assert [c[1] for c in authn.calls].count(EXTENSION_AUTH) == 1
    assert all(c[1] != EXTENSION_AUTH for c in authz.calls)


def test_skip_lookup_reads_no_configmap(tmp_path: Path) -> None:
    with FakeKubeAPI() as authn:
        authn.add_token(DANA, "dana")
        with outside_server(
            tmp_path,
            "--authentication-kubeconfig", kubeconfig(authn, tmp_path / "authn.kubeconfig"),
            "--authentication-skip-lookup",
        ) as server:  # fmt: skip
            assert server.get(f"{M}/nodes", DANA)[0] == 200
    assert all(c[1] != EXTENSION_AUTH for c in authn.calls)
    assert [r["token"] for r in authn.token_reviews] == [DANA]


def test_a_failed_lookup_stops_the_server_unless_tolerated(tmp_path: Path) -> None:
    with FakeKubeAPI() as api:
        config = kubeconfig(api, tmp_path / "gone.kubeconfig")
    # The fake API has stopped: its address refuses connections.
    args = [*server_args(tmp_path, free_port()), "--authentication-kubeconfig", config]
    (tmp_path / "targets.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [node("a", "127.0.0.9", 1)]})
    )
    done = subprocess.run([*KUBEPULSE, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach the Kubernetes API")
    assert len(done.stderr.splitlines()) == 1
    with outside_server(
        tmp_path, "--authentication-kubeconfig", config,
        "--authentication-tolerate-lookup-failure",
    ) as server:  # fmt: skip
        # Static tokens still work; the log says what was given up.
        assert server.get(f"{M}/nodes")[0] == 200
        log = server.running.log().splitlines()
        warned = [line for line in log if "Kubernetes API" in line]
        assert len(warned) == 1 and " WARNING " in warned[0]
        assert warned[0].endswith("going on without it (--authentication-tolerate-lookup-failure)")
