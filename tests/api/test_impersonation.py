"""Impersonate-* headers (kubectl --as, --as-group, --as-uid) against `kubepulse up`'s
API and the fake kube-apiserver, sent by kubepulse and by kubectl 1.32 alike."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from kubepulse.api.authn import User
from kubepulse.kube import kubeconfig
from kubepulse.kube.client import ApiError, KubeClient
from kubepulse.kube.kubeconfig import Overrides
from tests.fakeapi.fixtures import fake_api, fake_cluster, kubectl
from tests.fakeapi.server import FakeKubeAPI
from tests.kube.plugins.cluster import ADMIN, PluginCluster, plugin_cluster
from tests.kube.plugins.cluster import kubectl as kubectl_at
from tests.kube.plugins.cluster import kubepulse as kubepulse_at

__all__ = ["fake_api", "fake_cluster"]  # fixtures, used by name

AS_BOB = Overrides(as_user="bob", as_groups=("devs", "ops"), as_uid="1042")
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@pytest.fixture
def up_api(tmp_path: Path) -> Iterator[PluginCluster]:
    yield from plugin_cluster(tmp_path)


async def test_on_up_the_admin_acts_as_the_user_asked_for_as_kubectl_does(
    up_api: PluginCluster,
) -> None:
    up_api.tokens["admin-token"] = ADMIN
    config = up_api.kubeconfig({"token": "admin-token"})
    creds = kubeconfig.load(str(config), overrides=AS_BOB)
    async with KubeClient(creds) as client:
        ours = await client.post(WHOAMI, {"apiVersion": "authentication.k8s.io/v1"})
    theirs = kubectl_at(
        config, "auth", "whoami", "-o", "json", "--as", "bob", "--as-group", "devs",
        "--as-group", "ops", "--as-uid", "1042",
    )  # fmt: skip
    assert theirs.returncode == 0, theirs.stderr
    assert ours["status"]["userInfo"] == json.loads(theirs.stdout)["status"]["userInfo"]
    assert ours["status"]["userInfo"] == {
        "username": "bob",
        "uid": "1042",
        "groups": ["devs", "ops", "system:authenticated"],
    }


def test_on_up_a_user_outside_system_masters_may_not_impersonate(up_api: PluginCluster) -> None:
    up_api.tokens["viewer-token"] = User("viewer", "7", ("system:authenticated",))
    config = up_api.kubeconfig({"token": "viewer-token"})
    ours = kubepulse_at(config, "top", "nodes", "--as", "bob")
    theirs = kubectl_at(config, "top", "nodes", "--as", "bob")
    # kubectl's discovery client does not read the Status of a 403 ("Forbidden:
    # unknown"); kubepulse shows its message.
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode) == ("", 1)
    assert theirs.stderr == "Error from server (Forbidden): unknown\n"
    assert ours.stderr == (
        'Error from server (Forbidden): users "bob" is forbidden: User "viewer" cannot '
        'impersonate resource "users" in API group "" at the cluster scope: only members of '
        "system:masters may impersonate\n"
    )
    # Without --as the same token reads the metrics.
    assert kubepulse_at(config, "top", "nodes").returncode == 0


async def test_the_fake_api_acts_as_the_impersonated_user_once_impersonation_is_granted(
    fake_cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    fake = fake_cluster
    fake.add_token("alice-token", "alice")
    config = fake.write_kubeconfig(tmp_path / "kubeconfig", token="alice-token")
    creds = kubeconfig.load(str(config), overrides=Overrides(as_user="bob"))

    async def ours(path: str) -> str:
        async with KubeClient(creds) as client:
            try:
                await client.delete(path)
            except ApiError as err:
                return f"{err.code} {err.message}"
            return "deleted"

    def theirs(*args: str) -> str:
        done = kubectl(config, "delete", "pod", *args, "--as", "bob")
        return done.stderr.strip() or done.stdout.strip()

    refused = (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    )
    assert await ours("/api/v1/namespaces/default/pods/web-1") == f"403 {refused}"
    # kubectl meets the refusal in its discovery, whose client does not read a 403's
    # Status: it says "unknown".
    assert theirs("web-1").endswith("Error from server (Forbidden): unknown")
    fake.allow("alice", "impersonate", "users")
    # Now the request is bob's, and bob may not delete pods.
    bob_may_not = (
        'pods "web-1" is forbidden: User "bob" cannot delete resource "pods" in API group "" '
        'in the namespace "default"'
    )
    assert await ours("/api/v1/namespaces/default/pods/web-1") == f"403 {bob_may_not}"
    assert theirs("web-1") == f"Error from server (Forbidden): {bob_may_not}"
    fake.allow("bob", "delete", "pods")
    assert theirs("web-1") == 'pod "web-1" deleted'
    assert await ours("/api/v1/namespaces/kube-system/pods/etcd-control-plane") == "deleted"
    assert fake.get("pods", "etcd-control-plane", "kube-system") is None


async def test_groups_without_a_user_are_an_internal_error_as_upstream(
    fake_api: FakeKubeAPI,
) -> None:
    ctx = ssl.create_default_context(cadata=fake_api.ca.cert_pem().decode())
    headers = {"Authorization": f"Bearer {fake_api.admin_token}", "Impersonate-Group": "devs"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake_api.url}/api/v1/nodes", headers=headers, ssl=ctx) as resp,
    ):
        body = await resp.json()
    assert resp.status == 500
    assert body["reason"] == "InternalError"
    assert "without impersonating a user" in body["message"]


def test_top_sends_as_group_and_as_uid_as_kubectl_does(
    fake_cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    """Each flag reaches the fake API: each is refused until alice may impersonate it."""
    fake = fake_cluster
    fake.add_token("alice-token", "alice")
    config = fake.write_kubeconfig(tmp_path / "kubeconfig", token="alice-token")
    flags = ("--as", "bob", "--as-group", "devs", "--as-uid", "1042")

    def both() -> tuple[str, str]:
        ours = kubepulse_at(config, "top", "nodes", *flags)
        theirs = kubectl_at(config, "top", "nodes", *flags)
        assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode) == ("", 1)
        return ours.stderr, theirs.stderr

    fake.allow("alice", "impersonate", "users")
    assert both()[0] == (
        'Error from server (Forbidden): groups "devs" is forbidden: User "alice" cannot '
        'impersonate resource "groups" in API group "" at the cluster scope\n'
    )
    fake.allow("alice", "impersonate", "groups")
    assert both()[0] == (
        'Error from server (Forbidden): uids.authentication.k8s.io "1042" is forbidden: User '
        '"alice" cannot impersonate resource "uids" in API group "authentication.k8s.io" at '
        "the cluster scope\n"
    )
    fake.allow("alice", "impersonate", "uids.authentication.k8s.io")
    ours, theirs = both()
    # Now bob of devs is served: the fake API has no metrics API, as kubectl finds.
    assert ours == theirs == "error: Metrics API not available\n"
