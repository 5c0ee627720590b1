"""kubectl's flags over the kubeconfig (--server, --token, --user, --cluster,
--certificate-authority, --insecure-skip-tls-verify, --request-timeout) given to
`kubepulse top` and to kubectl 1.32: the same answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from tests.kube.plugins.cluster import ADMIN, PluginCluster, kubectl, kubepulse, plugin_cluster
from tests.top.conftest import ServerThread, kubeconfig, tls


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PluginCluster]:
    yield from plugin_cluster(tmp_path)


def same(config: Path, *args: str) -> tuple[str, str]:
    ours = kubepulse(config, *args)
    theirs = kubectl(config, *args)
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        theirs.stdout,
        theirs.stderr,
        theirs.returncode,
    )
    return ours.stdout, ours.stderr


def two_users(cluster: PluginCluster) -> Path:
    """Context `main` signs in with a token the server does not know; user `good` and
    cluster `other` (the same server) are there to be chosen by flag."""
    cluster.tokens["good-token"] = ADMIN
    config = cluster.kubeconfig({"token": "unknown-token"})
    doc = yaml.safe_load(config.read_text())
    doc["users"].append({"name": "good", "user": {"token": "good-token"}})
    other = {"name": "other", "cluster": dict(doc["clusters"][0]["cluster"])}
    doc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    doc["clusters"].append(other)
    config.write_text(yaml.safe_dump(doc))
    return config


def test_user_and_cluster_flags_choose_other_entries(cluster: PluginCluster) -> None:
    config = two_users(cluster)
    out, _ = same(config, "top", "nodes", "--user", "good", "--cluster", "other")
    assert "node-a" in out
    _, err = same(config, "top", "nodes", "--user", "nobody", "--cluster", "other")
    assert err == 'error: auth info "nobody" does not exist\n'
    _, err = same(config, "top", "nodes", "--user", "good", "--cluster", "nowhere")
    assert err == 'error: cluster "nowhere" does not exist\n'


def test_server_and_token_flags_win_over_the_kubeconfig(cluster: PluginCluster) -> None:
    config = two_users(cluster)
    out, _ = same(config, "top", "pods", "-A", "--server", cluster.url, "--token", "good-token")
    assert "NAMESPACE" in out
    # A token that is not accepted, given by flag, over the exec plugin of the file.
    exec_config = cluster.kubeconfig({"exec": cluster.plugin("--fail", "never run")}, "exec")
    _, err = same(exec_config, "top", "nodes", "--token", "wrong")
    assert err.startswith("error: You must be logged in to the server")
    assert cluster.runs() == []


def test_certificate_authority_flag_and_insecure_skip_tls_verify(
    cluster: PluginCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.tokens["good-token"] = ADMIN
    config = cluster.kubeconfig({"token": "good-token"})
    doc = yaml.safe_load(config.read_text())
    del doc["clusters"][0]["cluster"]["certificate-authority-data"]
    config.write_text(yaml.safe_dump(doc))
    ca = tmp_path / "ca.crt"
    ca.write_bytes(cluster.ca.cert_pem())
    monkeypatch.chdir(tmp_path)  # the flag's path is relative to the working directory
    out, _ = same(config, "top", "nodes", "--certificate-authority", "ca.crt")
    assert "node-a" in out
    ours = kubepulse(config, "top", "nodes", "--insecure-skip-tls-verify")
    theirs = kubectl(config, "top", "nodes", "--insecure-skip-tls-verify")
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode)
    assert "node-a" in ours.stdout
    # kubepulse says what the flag gives up; kubectl says nothing.
    assert "WARNING" in ours.stderr and "NOT verified" in ours.stderr
    assert theirs.stderr == ""
    # A CA and no verification together are refused, by flags or in the file.
    _, err = same(
        config, "top", "nodes", "--insecure-skip-tls-verify", "--certificate-authority", "ca.crt"
    )
    assert (
        err == "error: specifying a root certificates file with the insecure flag is not allowed\n"
    )
    doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    config.write_text(yaml.safe_dump(doc))
    out, _ = same(config, "top", "nodes", "--certificate-authority", "ca.crt")
    assert "node-a" in out
    doc["clusters"][0]["cluster"]["certificate-authority"] = "ca.crt"
    config.write_text(yaml.safe_dump(doc))
    _, err = same(config, "top", "nodes")
    assert (
        err == "error: specifying a root certificates file with the insecure flag is not allowed\n"
    )
    # Without a CA the file's setting is honoured, and said as the flag is.
    del doc["clusters"][0]["cluster"]["certificate-authority"]
    config.write_text(yaml.safe_dump(doc))
    ours = kubepulse(config, "top", "nodes")
    assert "node-a" in ours.stdout
    assert 'cluster "plugin-cluster" has insecure-skip-tls-verify' in ours.stderr
    assert "NOT verified" in ours.stderr


@pytest.mark.parametrize("timeout", ["5x", "-1"])
def test_a_bad_request_timeout_is_refused_in_kubectl_words(
    cluster: PluginCluster, timeout: str
) -> None:
    cluster.tokens["good-token"] = ADMIN
    config = cluster.kubeconfig({"token": "good-token"})
    _, err = same(config, "top", "nodes", "--request-timeout", timeout)
    assert err.startswith("error: Invalid timeout value.")


def test_a_request_timeout_is_accepted_as_kubectl_accepts_it(cluster: PluginCluster) -> None:
    cluster.tokens["good-token"] = ADMIN
    config = cluster.kubeconfig({"token": "good-token"})
    for timeout in ("10", "30s", "1m", "0"):
        out, _ = same(config, "top", "nodes", "--request-timeout", timeout)
        assert "node-a" in out


def test_as_group_without_as_is_refused_in_kubectl_words(cluster: PluginCluster) -> None:
    config = cluster.kubeconfig({"token": "t"})
    _, err = same(config, "top", "nodes", "--as-group", "devs")
    assert err == (
        "error: requesting uid, groups or user-extra for plugin-user without impersonating a user\n"
    )


def test_a_request_timeout_ends_a_request_the_server_never_answers_as_kubectl(
    tmp_path: Path,
) -> None:
    answer = asyncio.Event()  # set at the end: until then every request hangs

    async def never(request: web.Request) -> web.Response:
        await answer.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never)
    ca, ctx = tls(tmp_path)
    with ServerThread(app, ctx) as server:
        url = f"https://127.0.0.1:{server.port}"
        config = tmp_path / "kubeconfig"
        config.write_text(kubeconfig(url, ca.cert_pem(), "some-token"))
        try:
            started = time.monotonic()
            ours = kubepulse(config, "top", "nodes", "--request-timeout", "1s")
            ours_took = time.monotonic() - started
            theirs = kubectl(config, "top", "nodes", "--request-timeout", "1s")
        finally:
            server.loop.call_soon_threadsafe(answer.set)
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode) == ("", 1)
    # kubectl's words vary with where Go's timer fires; the usual ones are ours.
    assert ours.stderr == (
        "Unable to connect to the server: net/http: request canceled "
        "(Client.Timeout exceeded while awaiting headers)\n"
    )
    assert theirs.stderr.startswith("Unable to connect to the server: ")
    assert "Client.Timeout exceeded" in theirs.stderr or "deadline exceeded" in theirs.stderr
    # Without the flag the client would wait 30 s.
    assert ours_took < 10
