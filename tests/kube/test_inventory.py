"""--targets files: YAML (multi-document or a List) and JSON, as kubectl prints them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import ObjectError
from tests.api.conftest import NODE_OBJECTS, POD_OBJECTS


def write(path: Path, form: str) -> Path:
    objects = [*NODE_OBJECTS, *POD_OBJECTS]
    if form == "yaml-documents":
        path.write_text(yaml.safe_dump_all(objects))
    elif form == "yaml-list":
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects}))
    elif form == "json-list":
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    else:  # kubectl get nodes -o json: a NodeList whose items may lack kind
        items = [{k: v for k, v in n.items() if k != "kind"} for n in NODE_OBJECTS]
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "NodeList", "items": items}))
    return path


@pytest.mark.parametrize("form", ["yaml-documents", "yaml-list", "json-list", "json-nodelist"])
def test_every_form_gives_the_same_nodes(tmp_path: Path, form: str) -> None:
    inventory = StaticInventory.from_file(write(tmp_path / "targets", form))
    assert [n.name for n in inventory.nodes()] == ["node-a", "node-b", "node-c", "node-d"]
    node = inventory.nodes()[0]
    assert node.addresses[0].address == "127.0.0.2"
    assert node.kubelet_port == 10250
    assert node.allocatable.cpu_millicores == 3800
    assert node.raw == {}  # the server keeps only the fields it reads
    if form != "json-nodelist":
        assert {p.name for p in inventory.pods()} == {"coredns-7db6d8ff4d-x2x9p", "web-1", "web-2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Pod\nmetadata: {name: x}\n", "holds no Node objects"),
        ('{"kind": "List", "items": []}', "holds no Node objects"),
        ("a: [\n", "is not valid YAML"),
        ("- 1\n- 2\n", "expected a Kubernetes object"),
    ],
)
def test_bad_targets_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "targets"
    path.write_text(text)
    with pytest.raises(ObjectError, match=message):
        StaticInventory.from_file(path)


@pytest.mark.parametrize("form", ["yaml-documents", "json-list"])
def test_a_file_parsed_in_a_child_process_gives_the_same_objects(tmp_path: Path, form: str) -> None:
    path = write(tmp_path / "targets", form)
    assert StaticInventory.from_file_isolated(path).pods() == StaticInventory.from_file(path).pods()
    assert (
        StaticInventory.from_file_isolated(path).nodes() == StaticInventory.from_file(path).nodes()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Pod\nmetadata: {name: x}\n", "holds no Node objects"),
        ("a: [\n", "is not valid YAML"),
    ],
)
def test_errors_in_the_child_process_come_back_as_they_are(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "targets"
    path.write_text(text)
    with pytest.raises(ObjectError, match=message):
        StaticInventory.from_file_isolated(path)
    with pytest.raises(ObjectError, match="cannot read"):
        StaticInventory.from_file_isolated(tmp_path / "missing")


def test_replicas_share_their_labels_and_container_specs(tmp_path: Path) -> None:
    def pod(name: str, labels: dict[str, str], containers: list[str]) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {"nodeName": "node-a", "containers": [{"name": c} for c in containers]},
        }

    objects = [
        NODE_OBJECTS[0],
        pod("web-1", {"app": "web"}, ["nginx"]),
        pod("web-2", {"app": "web"}, ["nginx"]),
        pod("api-1", {"app": "api"}, ["api"]),
        pod("bare", {}, []),  # no labels and no containers: two different empties
    ]
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    web1, web2, api1, bare = StaticInventory.from_file(path).pods()
    assert web1.labels is web2.labels and web1.containers is web2.containers
    assert api1.labels == {"app": "api"} and api1.labels is not web1.labels
    assert [c.name for c in api1.containers] == ["api"]
    assert bare.labels == {} and bare.containers == ()
