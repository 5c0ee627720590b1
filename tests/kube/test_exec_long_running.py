"""A long-running client (the server's inventory, as `kubepulse server --kubeconfig`
runs it) keeps working when the plugin's token is revoked: the 401 runs the plugin
again, without a restart."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml

from kubepulse.kube.reflector import Backoff
from kubepulse.kube.watched import KubeInventory
from tests.fakeapi import objects
from tests.fakeapi.fixtures import fake_api, fake_cluster, until
from tests.fakeapi.server import FakeKubeAPI
from tests.kube.plugins.cluster import PLUGIN

__all__ = ["fake_api", "fake_cluster"]  # fixtures, used by name

ADMINS = ("kubeadm:cluster-admins",)


def exec_kubeconfig(fake: FakeKubeAPI, tmp_path: Path, tokens: Path) -> Path:
    config = fake.write_kubeconfig(tmp_path / "kubeconfig")
    doc = yaml.safe_load(config.read_text())
    doc["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(PLUGIN), "--token-file", str(tokens)],
            "interactiveMode": "Never",
        }
    }
    config.write_text(yaml.safe_dump(doc))
    return config


def bearers(fake: FakeKubeAPI) -> set[str]:
    return {auth.removeprefix("Bearer ") for _method, _path, auth in fake.calls}


async def test_the_inventory_gets_a_new_token_from_the_plugin_when_its_own_is_revoked(
    fake_cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    fake = fake_cluster
    fake.add_token("first-token", "kubernetes-admin", ADMINS)
    tokens = tmp_path / "tokens"
    tokens.write_text("first-token\n")
    inventory = KubeInventory.from_config(
        str(exec_kubeconfig(fake, tmp_path, tokens)), backoff=Backoff(initial=0.05, maximum=0.2)
    )
    async with inventory:
        await asyncio.wait_for(inventory.synced.wait(), 10)
        assert bearers(fake) == {"first-token"}
        # The token is revoked and the plugin would now give another: the watches are
        # broken, the 401 that follows runs the plugin, and the inventory carries on.
        fake.add_token("second-token", "kubernetes-admin", ADMINS)
        tokens.write_text("second-token\n")
        fake.remove_token("first-token")
        fake.break_watches()
        fake.add_node(objects.node("worker-2", "10.0.0.12"))
        await until(
            lambda: "worker-2" in {n.name for n in inventory.nodes()}, "the node added later"
        )
    assert bearers(fake) == {"first-token", "second-token"}
    assert inventory.node_reflector.last_error in (None, "")
