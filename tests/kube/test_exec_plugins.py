"""Exec credential plugins: `kubepulse top` and kubectl 1.32 with the same kubeconfig,
whose user is tests/kube/plugins/fake_plugin.py, against kubepulse's API."""

from __future__ import annotations

import base64
import os
import pty
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse import pki
from tests.kube.plugins.cluster import (
    ADMIN,
    PLUGIN,
    PluginCluster,
    kubectl,
    kubepulse,
    plugin_cluster,
    run,
)
from tests.support import KUBEPULSE


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PluginCluster]:
    yield from plugin_cluster(tmp_path)


def same_as_kubectl(cluster: PluginCluster, config: Path, *args: str) -> tuple[str, int, int]:
    """Both commands' stdout, stderr and exit code must be equal; the output and how many
    times each ran the plugin are returned."""
    ours = kubepulse(config, *args)
    ours_runs = len(cluster.runs())
    theirs = kubectl(config, *args)
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        theirs.stdout,
        theirs.stderr,
        theirs.returncode,
    )
    return ours.stdout, ours_runs, len(cluster.runs()) - ours_runs


@pytest.mark.parametrize(
    "version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
)
def test_a_plugin_token_signs_top_in_as_with_kubectl(cluster: PluginCluster, version: str) -> None:
    cluster.tokens["plugin-token"] = ADMIN
    tokens = cluster.tokens_file("plugin-token")
    section = cluster.plugin("--token-file", str(tokens), apiVersion=version)
    if version.endswith("v1beta1"):
        del section["interactiveMode"]  # v1beta1 defaults to IfAvailable
    out, ours, theirs = same_as_kubectl(
        cluster, cluster.kubeconfig({"exec": section}), "top", "nodes"
    )
    assert out.startswith("NAME ") and "node-a" in out
    assert (ours, theirs) == (1, 1)
    # Without a terminal on stdin the plugin is not interactive, for both.
    assert [run["info"]["spec"]["interactive"] for run in cluster.runs()] == [False, False]
    assert {run["info"]["apiVersion"] for run in cluster.runs()} == {version}


def test_a_plugin_client_certificate_signs_top_in_as_with_kubectl(
    cluster: PluginCluster, tmp_path: Path
) -> None:
    pair = pki_pair(cluster, tmp_path)
    section = cluster.plugin("--cert", str(pair[0]), "--key", str(pair[1]))
    out, ours, theirs = same_as_kubectl(
        cluster, cluster.kubeconfig({"exec": section}), "top", "pods", "-A"
    )
    assert "NAMESPACE" in out
    assert (ours, theirs) == (1, 1)


def pki_pair(cluster: PluginCluster, tmp_path: Path) -> tuple[Path, Path]:
    pair = pki.issue(cluster.ca, "plugin-cert-user", organizations=["system:masters"], client=True)
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    pair.write(cert, key)
    return cert, key


def test_a_token_that_has_not_expired_is_used_again_and_an_expired_one_is_not(
    cluster: PluginCluster,
) -> None:
    cluster.tokens["plugin-token"] = ADMIN
    tokens = cluster.tokens_file("plugin-token")
    lasting = cluster.plugin("--token-file", str(tokens), "--expires-in", "3600")
    _, ours, theirs = same_as_kubectl(
        cluster, cluster.kubeconfig({"exec": lasting}), "top", "pods", "-A"
    )
    assert (ours, theirs) == (1, 1)
    # Expired on arrival: each request (discovery, metrics, ...) runs the plugin again.
    expired = cluster.plugin("--token-file", str(tokens), "--expires-in", "-60")
    _, ours, theirs = same_as_kubectl(
        cluster, cluster.kubeconfig({"exec": expired}), "top", "pods", "-A"
    )
    assert ours > 1 and theirs > 1


def test_after_a_401_the_plugin_runs_again_and_the_request_is_sent_once_more(
    cluster: PluginCluster,
) -> None:
    """kubectl runs the plugin again after the 401 but fails that command; kubepulse
    sends the refused request once more with the new token, and succeeds."""
    cluster.tokens["good"] = ADMIN
    config = cluster.kubeconfig(
        {"exec": cluster.plugin("--token-file", str(cluster.tokens_file("revoked", "good")))}
    )
    ours = kubepulse(config, "top", "nodes")
    assert ours.returncode == 0, ours.stderr
    assert "node-a" in ours.stdout
    assert [r["info"]["spec"]["interactive"] for r in cluster.runs()] == [False, False]
    cluster.tokens_file("revoked", "good")
    theirs = kubectl(config, "top", "nodes")
    assert theirs.returncode == 1
    assert "You must be logged in to the server" in theirs.stderr
    assert len(cluster.runs()) == 4  # two runs each: the 401 made both run it again


def test_a_failing_plugin_is_one_line_with_its_stderr(cluster: PluginCluster) -> None:
    config = cluster.kubeconfig({"exec": cluster.plugin("--fail", "the token service said no")})
    ours = kubepulse(config, "top", "nodes")
    theirs = kubectl(config, "top", "nodes")
    failed = (
        "Unable to connect to the server: getting credentials: exec: executable "
        f"{sys.executable} failed with exit code 3"
    )
    assert (ours.returncode, ours.stdout) == (1, "")
    assert ours.stderr == f"{failed}: the token service said no\n"
    # kubectl lets the plugin's stderr through as it comes, then says the same.
    assert (theirs.returncode, theirs.stdout) == (1, "")
    assert theirs.stderr.splitlines()[-1] == failed
    assert "the token service said no" in theirs.stderr


def test_what_a_working_plugin_says_on_stderr_is_let_through_as_by_kubectl(
    cluster: PluginCluster,
) -> None:
    cluster.tokens["plugin-token"] = ADMIN
    tokens = cluster.tokens_file("plugin-token")
    warning = "your sign-in expires in 3 days"
    config = cluster.kubeconfig(
        {"exec": cluster.plugin("--token-file", str(tokens), "--warn", warning)}
    )
    out, _, _ = same_as_kubectl(cluster, config, "top", "nodes")
    assert "node-a" in out
    assert kubepulse(config, "top", "nodes").stderr == warning + "\n"


def test_a_command_with_a_path_is_found_beside_the_kubeconfig_as_by_kubectl(
    cluster: PluginCluster,
) -> None:
    """client-go's ResolvePaths: a command holding a separator is relative to the
    kubeconfig's directory, not to the working directory."""
    cluster.tokens["plugin-token"] = ADMIN
    tokens = cluster.tokens_file("plugin-token")
    login = cluster.dir / "bin" / "login"
    login.parent.mkdir()
    login.write_text(f'#!/bin/sh\nexec {sys.executable} {PLUGIN} "$@"\n')
    login.chmod(0o700)
    section = cluster.plugin("--token-file", str(tokens), command="./bin/login")
    section["args"] = section["args"][1:]  # the script names the plugin itself
    config = cluster.kubeconfig({"exec": section})
    assert Path.cwd() != cluster.dir
    out, _, _ = same_as_kubectl(cluster, config, "top", "nodes")
    assert "node-a" in out
    assert len(cluster.runs()) == 2


def test_a_missing_plugin_is_one_line_with_its_install_hint(cluster: PluginCluster) -> None:
    hint = "kubepulse-test-login is in the kubepulse-test package:\n  apt install kubepulse-test"
    section = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "kubepulse-test-login-not-installed",
        "interactiveMode": "Never",
        "installHint": hint,
    }
    config = cluster.kubeconfig({"exec": section})
    ours = kubepulse(config, "top", "nodes")
    theirs = kubectl(config, "top", "nodes")
    first = (
        "Unable to connect to the server: getting credentials: exec: executable "
        "kubepulse-test-login-not-installed not found"
    )
    assert (ours.returncode, ours.stdout) == (1, "")
    assert ours.stderr == (
        f"{first}; kubepulse-test-login is in the kubepulse-test package: "
        "apt install kubepulse-test\n"
    )
    assert (theirs.returncode, theirs.stdout) == (1, "")
    assert theirs.stderr.splitlines()[0] == first
    assert hint in theirs.stderr


def test_provide_cluster_info_tells_the_plugin_what_kubectl_tells_it(
    cluster: PluginCluster,
) -> None:
    cluster.tokens["plugin-token"] = ADMIN
    tokens = cluster.tokens_file("plugin-token")
    section = cluster.plugin(
        "--token-file",
        str(tokens),
        provideClusterInfo=True,
        env=[{"name": "FAKE_PLUGIN_REGION", "value": "eu-west-1"}],
    )
    extension = {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "k8s"}}
    config = cluster.kubeconfig({"exec": section}, cluster={"extensions": [extension]})
    same_as_kubectl(cluster, config, "top", "nodes")
    ours, theirs = cluster.runs()
    assert ours == theirs
    assert ours["env"] == {"FAKE_PLUGIN_REGION": "eu-west-1"}
    given = ours["info"]["spec"]["cluster"]
    assert given["server"] == cluster.url
    assert base64.b64decode(given["certificate-authority-data"]) == cluster.ca.cert_pem()
    assert given["config"] == {"audience": "k8s"}


def test_without_provide_cluster_info_the_plugin_is_told_no_cluster(cluster: PluginCluster) -> None:
    cluster.tokens["plugin-token"] = ADMIN
    section = cluster.plugin("--token-file", str(cluster.tokens_file("plugin-token")))
    same_as_kubectl(cluster, cluster.kubeconfig({"exec": section}), "top", "nodes")
    assert [run["info"]["spec"] for run in cluster.runs()] == [{"interactive": False}] * 2


def test_interactive_mode_always_without_a_terminal_is_refused_as_by_kubectl(
    cluster: PluginCluster,
) -> None:
    section = cluster.plugin(interactiveMode="Always")
    config = cluster.kubeconfig({"exec": section})
    _, ours, theirs = same_as_kubectl(cluster, config, "top", "nodes")
    assert (ours, theirs) == (0, 0)
    assert kubepulse(config, "top", "nodes").stderr == (
        "Unable to connect to the server: getting credentials: exec plugin cannot support "
        "interactive mode: standard input is not a terminal\n"
    )


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"command": "x", "apiVersion": "client.authentication.k8s.io/v1"}, "interactiveMode"),
        (
            {"command": "x", "apiVersion": "client.authentication.k8s.io/v1alpha1"},
            "invalid apiVersion",
        ),
        (
            {
                "command": "x",
                "apiVersion": "client.authentication.k8s.io/v1",
                "interactiveMode": "Sometimes",
            },
            "invalid interactiveMode",
        ),
        ({"apiVersion": "client.authentication.k8s.io/v1", "interactiveMode": "Never"}, "command"),
    ],
)
def test_a_bad_exec_section_is_refused_in_kubectl_words(
    cluster: PluginCluster, section: dict[str, str], words: str
) -> None:
    config = cluster.kubeconfig({"exec": section})
    out, ours, theirs = same_as_kubectl(cluster, config, "top", "nodes")
    assert out == ""
    assert (ours, theirs) == (0, 0)
    assert words in kubepulse(config, "top", "nodes").stderr


@pytest.mark.parametrize("provider", ["gcp", "azure"])
def test_a_removed_auth_provider_is_refused_with_kubectl_words_in_one_line(
    cluster: PluginCluster, provider: str
) -> None:
    config = cluster.kubeconfig({"auth-provider": {"name": provider}})
    ours = kubepulse(config, "top", "nodes")
    theirs = kubectl(config, "top", "nodes")
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert ours.stderr == "error: " + " ".join(theirs.stderr.removeprefix("error: ").split()) + "\n"


@pytest.mark.parametrize(
    ("mode", "interactive"), [("Never", False), ("IfAvailable", True), ("Always", True)]
)
def test_with_a_terminal_on_stdin_the_plugin_gets_it_as_from_kubectl(
    cluster: PluginCluster, mode: str, interactive: bool
) -> None:
    cluster.tokens["plugin-token"] = ADMIN
    tokens = cluster.tokens_file("plugin-token")
    config = cluster.kubeconfig(
        {"exec": cluster.plugin("--token-file", str(tokens), interactiveMode=mode)}
    )
    terminal, stdin = pty.openpty()
    try:
        ours = kubepulse(config, "top", "nodes", stdin=stdin)
        theirs = kubectl(config, "top", "nodes", stdin=stdin)
    finally:
        os.close(stdin)
        os.close(terminal)
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        theirs.stdout,
        theirs.stderr,
        theirs.returncode,
    )
    given = [(run["info"]["spec"]["interactive"], run["stdin_tty"]) for run in cluster.runs()]
    assert given == [(interactive, interactive)] * 2


def test_a_plugin_token_is_never_in_the_debug_log(cluster: PluginCluster) -> None:
    cluster.tokens["secret-plugin-token-4f1d"] = ADMIN
    tokens = cluster.tokens_file("secret-plugin-token-4f1d")
    config = cluster.kubeconfig({"exec": cluster.plugin("--token-file", str(tokens))})
    done = run([*KUBEPULSE, "-v", "9", "top", "nodes", "--kubeconfig", str(config)])
    assert done.returncode == 0, done.stderr
    assert "secret-plugin-token-4f1d" not in done.stdout + done.stderr


def test_the_live_view_runs_the_plugin_before_it_takes_the_terminal(
    cluster: PluginCluster,
) -> None:
    config = cluster.kubeconfig({"exec": cluster.plugin("--fail", "sign in first")})
    live = kubepulse(config, "top", "nodes", "--watch")
    assert (live.returncode, live.stdout) == (1, "")
    assert live.stderr == kubepulse(config, "top", "nodes").stderr
    assert live.stderr.endswith("failed with exit code 3: sign in first\n")
