"""KubeInventory against a real (fake) kube-apiserver: list, watch, bookmarks, re-lists."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubepulse.kube.client import KubeClient
from kubepulse.kube.kubeconfig import KubeconfigError
from kubepulse.kube.reflector import Backoff
from kubepulse.kube.watched import KubeInventory
from tests.fakeapi import objects
from tests.fakeapi.fixtures import fake_api, fake_cluster, until
from tests.fakeapi.server import FakeKubeAPI

__all__ = ["fake_api", "fake_cluster"]  # fixtures, used by name

FAST = Backoff(initial=0.05, maximum=0.2)


def node_names(inventory: KubeInventory) -> list[str]:
    return sorted(n.name for n in inventory.nodes())


def pod_names(inventory: KubeInventory) -> list[str]:
    return sorted(f"{p.namespace}/{p.name}" for p in inventory.pods())


@contextlib.asynccontextmanager
async def started(fake: FakeKubeAPI, **options: Any) -> AsyncIterator[KubeInventory]:
    inventory = KubeInventory(KubeClient(fake.credentials()), backoff=FAST, **options)
    await inventory.start()
    try:
        await asyncio.wait_for(inventory.synced.wait(), 10)
        yield inventory
    finally:
        await inventory.stop()


@pytest.fixture
async def inventory(fake_cluster: FakeKubeAPI) -> AsyncIterator[KubeInventory]:
    async with started(fake_cluster) as running:
        yield running


async def test_the_first_list_fills_nodes_and_pods_with_the_fields_used(
    inventory: KubeInventory,
) -> None:
    assert node_names(inventory) == ["control-plane", "worker-1"]
    assert pod_names(inventory) == [
        "default/web-1",
        "kube-system/coredns-7db6d8ff4d-x2x9p",
        "kube-system/etcd-control-plane",
    ]
    worker = next(n for n in inventory.nodes() if n.name == "worker-1")
    assert [(a.type, a.address) for a in worker.addresses] == [
        ("InternalIP", "10.0.0.11"),
        ("Hostname", "worker-1"),
    ]
    assert worker.kubelet_port == 10250
    assert worker.allocatable.cpu_millicores == 3800
    assert worker.raw == {}  # only the fields used are kept
    coredns = next(p for p in inventory.pods() if p.name.startswith("coredns"))
    assert coredns.node_name == "worker-1"
    assert coredns.containers[0].requests.memory_bytes == 70 * 1024 * 1024
    assert coredns.containers[0].limits.memory_bytes == 170 * 1024 * 1024
    assert inventory.node_reflector.lists == 1


async def test_keep_raw_keeps_the_whole_object(fake_cluster: FakeKubeAPI) -> None:
    async with started(fake_cluster, keep_raw=True) as inventory:
        node = next(n for n in inventory.nodes() if n.name == "worker-1")
        assert node.raw["status"]["nodeInfo"]["kubeletVersion"] == objects.KUBELET_VERSION


async def test_nodes_added_and_deleted_show_up_through_the_watch(
    fake_cluster: FakeKubeAPI, inventory: KubeInventory
) -> None:
    fake_cluster.add_node(objects.node("worker-2", "10.0.0.12"))
    await until(lambda: "worker-2" in node_names(inventory), "worker-2 to appear")
    fake_cluster.delete_node("worker-1")
    await until(lambda: node_names(inventory) == ["control-plane", "worker-2"], "worker-1 gone")
    assert inventory.node_reflector.lists == 1  # the watch carried it; no list again
    assert inventory.node_reflector.resource_version == str(fake_cluster.resource_version)


async def test_a_modified_pod_is_replaced(
    fake_cluster: FakeKubeAPI, inventory: KubeInventory
) -> None:
    def add_label(pod: dict[str, Any]) -> None:
        pod["metadata"]["labels"]["tier"] = "frontend"

    fake_cluster.update("pods", "web-1", add_label, namespace="default")
    web = await until(
        lambda: next((p for p in inventory.pods() if p.labels.get("tier")), None), "new label"
    )
    assert web.name == "web-1"
    assert len(inventory.pods()) == 3


async def test_broken_watches_are_followed_by_a_list_that_converges(
    fake_cluster: FakeKubeAPI, inventory: KubeInventory
) -> None:
    await until(
        lambda: fake_cluster.open_watches("nodes") == fake_cluster.open_watches("pods") == 1,
        "the node and pod watches",
    )
    assert fake_cluster.break_watches() == 2
    # Changed while the connections are down: only a new list can tell about these.
    fake_cluster.delete_node("worker-1")
    fake_cluster.add_node(objects.node("worker-3", "10.0.0.13"))
    await until(lambda: node_names(inventory) == ["control-plane", "worker-3"], "convergence")
    await until(lambda: inventory.node_reflector.lists >= 2, "a second node list")
    await until(lambda: inventory.pod_reflector.lists >= 2, "a second pod list")
    # And it keeps watching afterwards.
    fake_cluster.add_node(objects.node("worker-4", "10.0.0.14"))
    await until(lambda: "worker-4" in node_names(inventory), "worker-4 after the re-list")


async def test_an_expired_resource_version_is_answered_by_a_fresh_list(
    fake_cluster: FakeKubeAPI,
) -> None:
    # The server ends each watch after a second; the next one starts from the last
    # resourceVersion seen, which compaction has made too old (410 Expired).
    async with started(fake_cluster, watch_timeout=1) as inventory:
        reflector = inventory.node_reflector
        fake_cluster.add_pod(objects.pod("default", "web-2", "worker-1"))  # nodes lag behind
        fake_cluster.compact()
        await until(lambda: reflector.lists >= 2, "a list after 410", timeout=15)
        assert fake_cluster.requests["expired", "nodes"] >= 1
        assert node_names(inventory) == ["control-plane", "worker-1"]
        assert fake_cluster.requests["list", "nodes"] >= 2


async def test_a_watch_the_server_ends_is_resumed_without_a_list(
    fake_cluster: FakeKubeAPI,
) -> None:
    async with started(fake_cluster, watch_timeout=1) as inventory:
        await until(lambda: fake_cluster.requests["watch", "nodes"] >= 2, "a second watch")
        fake_cluster.add_node(objects.node("worker-2", "10.0.0.12"))
        await until(lambda: "worker-2" in node_names(inventory), "worker-2")
        assert inventory.node_reflector.lists == 1
        assert fake_cluster.requests["list", "nodes"] == 1


async def test_bookmarks_advance_the_resource_version(
    fake_cluster: FakeKubeAPI, inventory: KubeInventory
) -> None:
    reflector = inventory.node_reflector
    await until(lambda: fake_cluster.open_watches("nodes") == 1, "the node watch")
    fake_cluster.add_pod(objects.pod("default", "web-2", "worker-1"))  # no node event
    assert int(reflector.resource_version) < fake_cluster.resource_version
    fake_cluster.send_bookmarks()
    await until(
        lambda: reflector.resource_version == str(fake_cluster.resource_version), "a bookmark"
    )
    assert reflector.lists == 1
    assert node_names(inventory) == ["control-plane", "worker-1"]


async def test_selectors_limit_what_is_held_and_follow_changes(fake_cluster: FakeKubeAPI) -> None:
    fake_cluster.add_pod(objects.pod("default", "job-1", "worker-1", phase="Pending"))
    options = {
        "node_selector": "node-role.kubernetes.io/control-plane",
        "pod_field_selector": "status.phase=Running",
    }
    async with started(fake_cluster, **options) as inventory:
        assert node_names(inventory) == ["control-plane"]
        assert "default/job-1" not in pod_names(inventory)

        def finish(pod: dict[str, Any]) -> None:
            pod["status"]["phase"] = "Succeeded"

        # A pod that stops matching leaves, as a DELETED event of the watch.
        fake_cluster.update("pods", "web-1", finish, namespace="default")
        await until(lambda: "default/web-1" not in pod_names(inventory), "web-1 to leave")
        assert inventory.pod_reflector.lists == 1


async def test_an_unreadable_object_is_skipped_not_fatal(
    fake_cluster: FakeKubeAPI, inventory: KubeInventory
) -> None:
    broken = objects.node("broken", "10.0.0.99")
    broken["status"]["addresses"] = [{"type": "InternalIP"}]  # no address
    fake_cluster.add_node(broken)
    fake_cluster.add_node(objects.node("worker-2", "10.0.0.12"))
    await until(lambda: "worker-2" in node_names(inventory), "the node after the broken one")
    assert "broken" not in node_names(inventory)
    assert inventory.node_reflector.lists == 1


def write_service_account(directory: Path, fake: FakeKubeAPI, token: str) -> Path:
    directory.mkdir()
    (directory / "token").write_text(token + "\n")
    (directory / "ca.crt").write_bytes(fake.ca.cert_pem())
    (directory / "namespace").write_text("kube-system")
    return directory


async def test_in_cluster_config_uses_the_service_account(
    fake_cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    fake_cluster.add_token("sa-token", "system:serviceaccount:kube-system:metrics-server")
    account = write_service_account(tmp_path / "sa", fake_cluster, "sa-token")
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(fake_cluster.port),
    }
    inventory = KubeInventory.from_config(service_account_dir=account, environ=env, backoff=FAST)
    async with inventory:
        await asyncio.wait_for(inventory.synced.wait(), 10)
        assert node_names(inventory) == ["control-plane", "worker-1"]
    assert inventory.client.creds.namespace == "kube-system"


async def test_a_kubeconfig_is_used_when_named(fake_cluster: FakeKubeAPI, tmp_path: Path) -> None:
    config = fake_cluster.write_kubeconfig(tmp_path / "kubeconfig")
    async with KubeInventory.from_config(str(config), backoff=FAST) as inventory:
        await asyncio.wait_for(inventory.synced.wait(), 10)
        assert len(inventory.pods()) == 3


@pytest.mark.parametrize(
    ("env", "files", "message"),
    [
        ({}, True, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, True, "must be defined"),
        (
            {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            False,
            "cannot read the service account's token",
        ),
    ],
)
def test_in_cluster_config_errors_say_what_is_missing(
    tmp_path: Path, env: dict[str, str], files: bool, message: str
) -> None:
    account = tmp_path / "sa"
    account.mkdir()
    if files:
        (account / "token").write_text("t")
        (account / "ca.crt").write_text("")
    with pytest.raises(KubeconfigError, match=message):
        KubeInventory.from_config(service_account_dir=account, environ=env)


async def test_unauthorized_is_retried_and_not_synced(fake_cluster: FakeKubeAPI) -> None:
    client = KubeClient(fake_cluster.credentials(token="not-a-token"))
    async with KubeInventory(client, backoff=FAST) as inventory:
        await until(
            lambda: (
                fake_cluster.requests["list", "nodes"] == 0 and inventory.node_reflector.last_error
            ),
            "a failed list",
        )
        assert "401 Unauthorized" in inventory.node_reflector.last_error
        assert not inventory.synced.is_set()
        assert inventory.nodes() == []


async def test_watches_closed_at_once_are_not_retried_in_a_tight_loop(
    fake_cluster: FakeKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # timeoutSeconds=0: the fake closes each watch at once, with no event.
    async with started(fake_cluster, watch_timeout=0.5):
        await until(
            lambda: fake_cluster.requests["list", "nodes"] >= 3, "lists after short watches"
        )
        # Each short watch counts as a failure: a list (after a backoff) follows it.
        assert fake_cluster.requests["watch", "nodes"] <= fake_cluster.requests["list", "nodes"] + 1
    assert "very short watch" in caplog.text
