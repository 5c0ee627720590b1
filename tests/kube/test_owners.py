"""A pod's workload from its ownerReferences, and the names controllers give pods."""

from __future__ import annotations

from typing import Any

import pytest

from kubepulse.kube.objects import pod_from_object
from kubepulse.kube.owners import name_is_owned_by, workload_of
from kubepulse.recommend.owners import Owners


def meta(kind: str, name: str, controller: bool = True, **labels: str) -> dict[str, Any]:
    ref = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": "u",
        "controller": controller,
    }
    return {"name": "p", "labels": labels, "ownerReferences": [ref]}


def test_a_deployments_replicaset_is_lifted_to_the_deployment_by_its_template_hash() -> None:
    found = workload_of(meta("ReplicaSet", "web-7d4b9c8f6", **{"pod-template-hash": "7d4b9c8f6"}))
    assert found == ("Deployment", "web")


def test_a_replicaset_without_the_hash_in_its_name_stays_a_replicaset() -> None:
    assert workload_of(meta("ReplicaSet", "legacy", **{"pod-template-hash": "abc"})) == (
        "ReplicaSet",
        "legacy",
    )
    assert workload_of(meta("ReplicaSet", "web-abc")) == ("ReplicaSet", "web-abc")


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet", "Job"])
def test_other_controllers_are_the_workload(kind: str) -> None:
    assert workload_of(meta(kind, "db")) == (kind, "db")


def test_only_the_controller_reference_counts_and_bad_references_are_ignored() -> None:
    assert workload_of(meta("Deployment", "x", controller=False)) is None
    assert workload_of({"ownerReferences": "not a list"}) is None
    assert workload_of({"ownerReferences": [{"controller": True, "kind": 3}]}) is None
    assert workload_of({}) is None


def test_a_pod_object_carries_its_workload_and_replicas_share_one() -> None:
    shared: dict[Any, Any] = {}
    pods = [
        pod_from_object(
            {
                "metadata": {
                    **meta("ReplicaSet", "web-5f6", **{"pod-template-hash": "5f6"}),
                    "name": n,
                }
            },
            shared=shared,
        )
        for n in ("web-5f6-abcde", "web-5f6-fghij")
    ]
    assert pods[0].owner == ("Deployment", "web")
    assert pods[0].owner is pods[1].owner


OWNED_CASES = [
    ("Deployment", "web", "web-7d4b9c8f6-x2x9p", True),
    ("Deployment", "web", "web-api-7d4b9c8f6-x2x9p", False),  # another Deployment's
    ("Deployment", "web", "web-x2x9p", False),
    ("StatefulSet", "db", "db-0", True),
    ("StatefulSet", "db", "db-12", True),
    ("StatefulSet", "db", "db-replica-0", False),
    ("DaemonSet", "agent", "agent-k8f2q", True),
    ("DaemonSet", "agent", "agent-k8f2q-1", False),
    ("Job", "backup", "backup-29f8z", True),
    ("ReplicaSet", "web-7d4", "web-7d4-29f8z", True),
    ("Pod", "web", "web-29f8z", False),
]


@pytest.mark.parametrize(("kind", "owner", "pod", "owned"), OWNED_CASES)
def test_names_a_controller_gives_its_pods(kind: str, owner: str, pod: str, owned: bool) -> None:
    assert name_is_owned_by(kind, owner, pod) is owned


def _live(kind: str, owner: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One running pod of the workload, and the ReplicaSet between a Deployment and it."""
    replicasets: list[dict[str, Any]] = []
    controller = (kind, owner)
    if kind == "Deployment":
        rs_meta = {"name": f"{owner}-7d4b9c8f6", "namespace": "ns"}
        rs_meta["ownerReferences"] = meta("Deployment", owner)["ownerReferences"]
        replicasets.append({"metadata": rs_meta})
        controller = ("ReplicaSet", rs_meta["name"])
    elif kind == "ReplicaSet":
        replicasets.append({"metadata": {"name": owner, "namespace": "ns"}})
    name = f"{controller[1]}-0" if kind == "StatefulSet" else f"{controller[1]}-aaaaa"
    pod_meta = {**meta(*controller), "name": name, "namespace": "ns"}
    if kind != "StatefulSet":
        pod_meta["generateName"] = f"{controller[1]}-"
    return [{"metadata": pod_meta}], replicasets


@pytest.mark.parametrize(
    ("kind", "owner", "pod", "owned"),
    [c for c in OWNED_CASES if c[0] != "Pod"],
)
def test_the_recommender_pools_an_ended_pod_by_the_same_rule(
    kind: str, owner: str, pod: str, owned: bool
) -> None:
    """recommend's pooling of pods known only to the history, and the dashboard's
    workload pages, name the same pods as the workload's: one rule, kube/owners.py."""
    pods, replicasets = _live(kind, owner)
    found = Owners.of(pods, replicasets).workload("ns", pod)
    assert ((found.kind, found.name) == (kind, owner)) is owned
