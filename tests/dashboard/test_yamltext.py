"""YAML from the page becomes the JSON objects kubectl would send, or a 400's message;
objects go back to YAML for the editor; discovery maps kinds to paths; sessions keep
the user's token no longer than the session."""

from __future__ import annotations

from typing import Any

import pytest

from kubepulse.api.authn import User
from kubepulse.dashboard.sessions import Sessions
from kubepulse.dashboard.yamltext import (
    MAX_DOCUMENTS,
    ManifestError,
    read_object,
    read_objects,
    to_yaml,
)
from kubepulse.kube.discovery import APIResource, resources
from tests.dashboard.conftest import Clock
from tests.fakeapi import objects

HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Timestamps stay strings, as JSON has them (sigs.k8s.io/yaml).
        (HEAD + "data: {when: 2024-01-02T03:04:05Z}\n", {"when": "2024-01-02T03:04:05Z"}),
        # Keys become strings; YAML 1.1 booleans are booleans, as in kubectl.
        (HEAD + "data: {1: one, b: yes}\n", {"1": "one", "b": True}),
        (HEAD + "data: {true: x}\n", {"true": "x"}),
        (HEAD + "data: {a: '08'}\n", {"a": "08"}),
    ],
)
def test_values_are_read_as_kubectl_reads_them(text: str, expected: dict[str, Any]) -> None:
    assert read_objects(text)[0]["data"] == expected


def test_documents_and_lists_give_every_object_in_order() -> None:
    text = (
        HEAD
        + "---\n---\napiVersion: v1\nkind: List\nitems:\n"
        + "- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"
        + "- {apiVersion: apps/v1, kind: Deployment, metadata: {generateName: d-}}\n"
    )
    assert [o["kind"] for o in read_objects(text)] == ["ConfigMap", "Secret", "Deployment"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD + "data: {a: .inf}\n", "document 1: inf is not a number JSON can hold"),
        (HEAD + "data: {a: !!binary aGk=}\n", "document 1: a bytes value is not JSON"),
        (HEAD + "data: !!python/name:os.system\n", "the YAML cannot be read: line 4"),
        ("apiVersion: v1\nkind: List\nitems: [1]\n", "document 1, item 1 is not an object"),
        (HEAD.replace("{name: cm}", "[cm]"), "document 1: metadata must be a mapping"),
        (HEAD.replace("{name: cm}", "{name: cm, namespace: 3}"), "document 1: metadata.namespace"),
        ((HEAD + "---\n") * (MAX_DOCUMENTS + 1), f"more than {MAX_DOCUMENTS} objects"),
        ("a: " + "x" * (1024 * 1024), "the YAML is larger than 1024 KiB"),
    ],
)
def test_what_is_not_kubernetes_objects_is_refused_with_where(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as refused:
        read_objects(text)
    assert str(refused.value).startswith(message)


def test_the_editor_holds_exactly_one_object() -> None:
    assert read_object(HEAD)["metadata"] == {"name": "cm"}
    with pytest.raises(ManifestError, match="the editor holds one object, not 2"):
        read_object(HEAD + "---\n" + HEAD)


def test_to_yaml_leaves_managed_fields_out_and_reads_back() -> None:
    obj = objects.configmap("team-a", "cm", {"a": "1"})
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    text = to_yaml(obj)
    assert "managedFields" not in text
    assert text.startswith("kind: ConfigMap\napiVersion: v1\nmetadata:\n")
    assert read_object(text) == {**obj, "metadata": {"name": "cm", "namespace": "team-a"}}


def test_discovery_maps_kinds_to_resources_and_their_subresources() -> None:
    listed = objects.resource_list("apps/v1")
    found = resources("apps/v1", listed)
    deployment = found["Deployment"]
    assert deployment == APIResource(
        "apps", "v1", "deployments", "Deployment", True, frozenset({"scale"})
    )
    assert "Scale" not in found  # a subresource's kind is not a resource
    assert deployment.path("team-a", "web", "scale") == (
        "/apis/apps/v1/namespaces/team-a/deployments/web/scale"
    )
    node = resources("v1", objects.resource_list("v1"))["Node"]
    assert node.path("ignored", "a b") == "/api/v1/nodes/a%20b"


def test_expired_sessions_and_their_tokens_go_at_the_next_sign_in() -> None:
    clock = Clock(1000.0)
    sessions = Sessions(60.0, clock)
    old = sessions.create(User("jane"), "jane-token")
    clock.now += 61
    sessions.create(User("bob"), "bob-token")
    assert len(sessions) == 1
    assert sessions.get(old.id) is None
