"""Fixtures for any test directory: `from tests.fakeapi.fixtures import fake_api, ...`
in that directory's conftest.py.

- fake_api: a running FakeKubeAPI, empty, fresh for each test.
- fake_kubeconfig: a kubeconfig file for it (CA data and the admin token).
- fake_cluster: the fake with two nodes and three pods, as a small kubeadm cluster has.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support import KUBECTL


async def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Wait for condition without blocking the event loop (tests/support.wait_for sleeps
    the thread, which would stop an inventory or client running in this loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def kubectl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl (1.32, on PATH) with its own discovery cache beside the kubeconfig."""
    cache = config.parent / "kubectl-cache"
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def small_cluster(fake: FakeKubeAPI) -> None:
    fake.add_node(objects.node("control-plane", "10.0.0.10", labels=_CONTROL_PLANE))
    fake.add_node(objects.node("worker-1", "10.0.0.11"))
    fake.add_pod(objects.pod("kube-system", "etcd-control-plane", "control-plane"))
    fake.add_pod(
        objects.pod(
            "kube-system",
            "coredns-7db6d8ff4d-x2x9p",
            "worker-1",
            labels={"k8s-app": "kube-dns"},
            containers=[("coredns", {"cpu": "100m", "memory": "70Mi"}, {"memory": "170Mi"})],
        )
    )
    fake.add_pod(objects.pod("default", "web-1", "worker-1", labels={"app": "web"}))


_CONTROL_PLANE = {"node-role.kubernetes.io/control-plane": ""}


@pytest.fixture
def fake_api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as fake:
        yield fake


@pytest.fixture
def fake_kubeconfig(fake_api: FakeKubeAPI, tmp_path: Path) -> Path:
    return fake_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def fake_cluster(fake_api: FakeKubeAPI) -> FakeKubeAPI:
    small_cluster(fake_api)
    return fake_api
