"""What an exec plugin gives (a token, a client key) stays in the process's memory: no
file is written with it, no log line shows it, and its repr hides it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse.kube import kubeconfig
from kubepulse.kube.client import plugin_for
from tests.kube.plugins.cluster import ADMIN, PLUGIN, V1, PluginCluster, plugin_cluster
from tests.kube.test_exec_plugins import pki_pair
from tests.support import KUBEPULSE

TOKEN = "plugin-secret-token-5b2e90"
WRITES = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
# Calls that put a file in the file system, besides open(O_CREAT).
MAKERS = ("creat", "link", "linkat", "symlink", "symlinkat", "rename", "renameat", "renameat2")
MAKERS += ("mknod", "mknodat")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PluginCluster]:
    yield from plugin_cluster(tmp_path)


def secret_plugin(cluster: PluginCluster, tmp_path: Path) -> tuple[Path, list[str]]:
    """A kubeconfig whose plugin gives a token and a client certificate, and writes
    nothing itself (no --log); the secrets it gives, as they would be written."""
    cluster.tokens[TOKEN] = ADMIN
    tokens = tmp_path / "token"
    tokens.write_text(TOKEN + "\n")
    cert, key = pki_pair(cluster, tmp_path)
    section = {
        "apiVersion": V1,
        "command": sys.executable,
        "args": [str(PLUGIN), "--token-file", str(tokens), "--cert", str(cert), "--key", str(key)],
        "interactiveMode": "Never",
    }
    key_body = key.read_text().splitlines()[1]  # a line of the key's base64
    return cluster.kubeconfig({"exec": section}), [TOKEN, key_body]


def file_writes(trace: str) -> set[str]:
    """Paths that strace saw opened for writing, created, linked or renamed; a call
    that another thread interrupted (`<unfinished ...>`) counts whatever its result."""
    written = set()
    for line in trace.splitlines():
        call = re.match(r"\d+\s+(\w+)\((.*?)(?:\)\s+=\s+(-?\d+).*| <unfinished \.\.\.>)$", line)
        if call is None or (call.group(3) is not None and int(call.group(3)) < 0):
            continue
        name, args = call.group(1), call.group(2)
        paths = re.findall(r'"([^"]*)"', args)
        if (name in ("open", "openat") and WRITES.search(args)) or name in MAKERS:
            written.update(paths)
    return written


def test_the_plugin_key_and_token_never_reach_a_file(
    cluster: PluginCluster, tmp_path: Path
) -> None:
    config, _ = secret_plugin(cluster, tmp_path)
    trace = tmp_path / "trace"
    done = subprocess.run(
        [
            "strace", "-f", "-qq", "-o", str(trace),
            "-e", "trace=%file,memfd_create",
            *KUBEPULSE, "top", "nodes", "--kubeconfig", str(config),
        ],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "node-a" in done.stdout
    traced = trace.read_text()
    # The plugin's stdout came through a pipe; its key pair went to ssl through
    # anonymous memory files, which have no name in the file system.
    assert 'memfd_create("tls.key"' in traced
    writes = file_writes(traced)
    assert "/dev/null" in writes  # the plugin's stdin: the trace's writes are seen
    assert writes <= {"/dev/null", "/dev/tty"}, writes


def test_the_plugin_key_and_token_are_in_no_log_line(
    cluster: PluginCluster, tmp_path: Path
) -> None:
    config, secrets = secret_plugin(cluster, tmp_path)
    done = subprocess.run(
        [*KUBEPULSE, "-v", "9", "top", "nodes", "--kubeconfig", str(config)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "node-a" in done.stdout
    for secret in secrets:
        assert secret not in done.stdout + done.stderr


async def test_the_plugin_answer_is_kept_but_its_repr_hides_it(
    cluster: PluginCluster, tmp_path: Path
) -> None:
    config, secrets = secret_plugin(cluster, tmp_path)
    plugin = plugin_for(kubeconfig.load(str(config)))
    assert plugin is not None
    answer = await plugin.credential()
    assert answer.token == TOKEN and answer.client_key_pem is not None
    assert await plugin.credential() is answer  # kept, not run again
    assert plugin.runs == 1
    for secret in secrets:
        assert secret not in repr(answer)


def test_the_kubeconfigs_own_secrets_are_not_in_the_credentials_repr(
    cluster: PluginCluster, tmp_path: Path
) -> None:
    cert, key = pki_pair(cluster, tmp_path)
    user = {
        "token": TOKEN,
        "password": "kubeconfig-password-77",
        "username": "someone",
        "client-certificate": str(cert),
        "client-key": str(key),
    }
    creds = kubeconfig.load(str(cluster.kubeconfig(user)))
    assert creds.token == TOKEN and creds.client_key_pem == key.read_bytes()
    shown = repr(creds)
    assert "someone" in shown
    for secret in (TOKEN, "kubeconfig-password-77", key.read_text().splitlines()[1]):
        assert secret not in shown
