"""The dashboard in Kubernetes mode against the fake kube-apiserver (real TLS): two teams'
namespaces, a Deployment with its ReplicaSet and pods, and three users.

- jane: a developer of team-a (RoleBinding-like grants in team-a only): reads pods and
  their logs, deletes pods, edits, scales, restarts and deletes deployments, creates
  ConfigMaps and Deployments;
- bob: a viewer of team-a: lists and reads pods, nothing else;
- the fake's admin (kubeadm:cluster-admins): everything.

Sign-in is checked by TokenReview, as `kubepulse server` does against a cluster; every
other call is made with the signed-in user's token.
"""

from __future__ import annotations

from typing import Any

from kubepulse.api.authn import ReviewClient, TokenReviewAuthenticator
from kubepulse.dashboard.app import DashboardOptions, DashboardParts
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.objects import pod_from_object
from kubepulse.store.points import MetricsStore
from tests.api.conftest import filled_store
from tests.dashboard.conftest import Clock, inventory
from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI

JANE, BOB = "jane-token-5f1e", "bob-token-77c2"
REPLICASET = "web-5d7c9b8f6d"
WEB_PODS = (f"{REPLICASET}-abcde", f"{REPLICASET}-fghij")
OTHER_POD = ("team-b", "api-1")
LOG = "starting\nlistening on :8080\n<script>alert(1)</script>\nready\n"
STAMP = 1_767_225_600.0  # 2026-01-01T00:00:00Z: what restart writes, from the dashboard's clock
STAMP_TEXT = "2026-01-01T00:00:00Z"

JANE_GRANTS = [
    ("list", "pods"),
    ("get", "pods"),
    ("delete", "pods"),
    ("get", "pods/log"),
    ("get", "replicasets.apps"),
    *((verb, "deployments.apps") for verb in ("get", "update", "patch", "delete", "create")),
    ("get", "deployments.apps/scale"),
    ("update", "deployments.apps/scale"),
    ("create", "configmaps"),
]


def team_pods() -> list[dict[str, Any]]:
    deployment = objects.deployment("team-a", "web", 2, containers=("app", "sidecar"))
    owner = objects.owner_reference(objects.replicaset_for(deployment))
    pods = []
    for name in WEB_PODS:
        pod = objects.pod(
            "team-a",
            name,
            "node-b",
            labels={"app": "web"},
            containers=[("app", {"cpu": "100m"}, {}), ("sidecar", {}, {})],
        )
        pod["metadata"]["ownerReferences"] = [owner]
        pods.append(pod)
    pods.append(objects.pod(*OTHER_POD, "node-c", labels={"app": "api"}))
    return pods


def populate(fake: FakeKubeAPI) -> None:
    fake.add_token(JANE, "jane", ("team-a-devs",))
    fake.add_token(BOB, "bob")
    for verb, target in JANE_GRANTS:
        fake.allow("jane", verb, target, "team-a")
    for verb in ("list", "get"):
        fake.allow("bob", verb, "pods", "team-a")
    deployment = fake.put(
        "deployments", objects.deployment("team-a", "web", 2, containers=("app", "sidecar"))
    )
    fake.put("replicasets", objects.replicaset_for(deployment))
    for pod in team_pods():
        fake.add_pod(pod)
    fake.set_log("team-a", WEB_PODS[0], "app", LOG)
    fake.set_log("team-a", WEB_PODS[0], "sidecar", "sidecar up\n")


def cluster_inventory() -> StaticInventory:
    """The dashboard's inventory: tests/api's nodes and pods (default, kube-system) and
    the teams' pods."""
    base = inventory()
    return StaticInventory(base.nodes(), [*base.pods(), *map(pod_from_object, team_pods())])


def cluster_parts(
    fake: FakeKubeAPI,
    reviews: ReviewClient,
    clock: Clock | None = None,
    store: MetricsStore | None = None,
    cluster: Credentials | None = None,
) -> DashboardParts:
    return DashboardParts(
        store=store if store is not None else filled_store(),
        inventory=cluster_inventory(),
        history=None,
        authenticator=TokenReviewAuthenticator(reviews),
        cluster=cluster or Credentials(fake.url, ca_pem=fake.ca.cert_pem()),
        options=DashboardOptions(
            secure_cookies=False, poll_interval=1.0, clock=clock or Clock(STAMP)
        ),
    )
