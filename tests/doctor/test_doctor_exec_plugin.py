"""`kubepulse doctor` signs in through a kubeconfig's exec credential plugin, for each of
its requests, plain ones included (/readyz, discovery)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.plugins.cluster import ADMIN, PluginCluster, kubepulse, plugin_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PluginCluster]:
    yield from plugin_cluster(tmp_path)


def findings(output: str) -> dict[str, dict[str, str]]:
    return {f["check"]: f for f in json.loads(output)["findings"] if f["subject"] != "node"}


def test_doctor_checks_the_api_with_the_plugin_token(cluster: PluginCluster) -> None:
    cluster.tokens["plugin-token"] = ADMIN
    tokens = cluster.tokens_file("plugin-token")
    config = cluster.kubeconfig({"exec": cluster.plugin("--token-file", str(tokens))})
    done = kubepulse(config, "doctor", "-o", "json", "--timeout", "2s")
    found = findings(done.stdout)
    assert found["api"]["status"] == "ok", found["api"]
    assert "the credentials are accepted" in found["api"]["what"]
    assert found["metrics-api"]["status"] == "ok", found["metrics-api"]
    assert len(cluster.runs()) == 1


def test_doctor_says_why_the_plugin_failed(cluster: PluginCluster) -> None:
    config = cluster.kubeconfig({"exec": cluster.plugin("--fail", "log in with sso first")})
    done = kubepulse(config, "doctor", "-o", "json", "--timeout", "2s")
    assert done.returncode == 1
    api = findings(done.stdout)["api"]
    assert api["status"] == "fail"
    assert api["what"].endswith("failed with exit code 3: log in with sso first")
