"""Nodes and pods as kubepulse keeps them: the few fields it needs, plus the object.

They are filled from YAML files (`--targets`), from the Kubernetes API, or, in
`kubepulse up`, built from what the local agent sees. Only these fields are read:
node addresses, kubelet port, capacity, allocatable, labels and annotations; pod labels,
node, containers' requests and limits, start time (as metrics-server's informers do).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from sys import intern
from typing import Any

from kubepulse.kube.owners import workload_of
from kubepulse.model import Resources
from kubepulse.quantity import parse_quantity

RESOURCE_METRICS_PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"


class ObjectError(ValueError):
    """A Kubernetes object that cannot be read, with where and why."""


@dataclass(frozen=True, slots=True)
class NodeAddress:
    type: str
    address: str


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    addresses: tuple[NodeAddress, ...] = ()
    kubelet_port: int | None = None
    capacity: Resources = field(default_factory=Resources)
    allocatable: Resources = field(default_factory=Resources)
    creation_timestamp: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    requests: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    node_name: str = ""
    containers: tuple[ContainerSpec, ...] = ()
    start_time: str | None = None
    creation_timestamp: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    owner: tuple[str, str] | None = None
    """(kind, name) of the workload it belongs to (kube/owners.py), None if uncontrolled."""


def _resources(values: Mapping[str, Any] | None) -> Resources:
    values = values or {}
    cpu, memory = values.get("cpu"), values.get("memory")
    return Resources(
        cpu_millicores=round(parse_quantity(str(cpu)) * 1000) if cpu is not None else None,
        memory_bytes=round(parse_quantity(str(memory))) if memory is not None else None,
    )


# One empty mapping for every object that keeps no raw form (never written to).
_NO_RAW: dict[str, Any] = {}


def _str_map(value: Any) -> dict[str, str]:
    # Interned: label keys and most values (app names, template hashes, zones) repeat
    # across thousands of objects; one copy of each is kept.
    return {intern(str(k)): intern(str(v)) for k, v in (value or {}).items()}


def node_from_object(obj: Mapping[str, Any], keep_raw: bool = True) -> Node:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    name = meta.get("name")
    if not name:
        raise ObjectError("a Node has no metadata.name")
    try:
        port = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint", {}).get("Port")
        return Node(
            name=str(name),
            uid=str(meta.get("uid", "")),
            labels=_str_map(meta.get("labels")),
            annotations=_str_map(meta.get("annotations")),
            addresses=tuple(
                NodeAddress(str(a["type"]), str(a["address"]))
                for a in status.get("addresses") or []
            ),
            kubelet_port=int(port) if port else None,
            capacity=_resources(status.get("capacity")),
            allocatable=_resources(status.get("allocatable")),
            creation_timestamp=meta.get("creationTimestamp"),
            raw=obj if keep_raw else _NO_RAW,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ObjectError(f"Node {name}: {err}") from err


def pod_from_object(
    obj: Mapping[str, Any], keep_raw: bool = True, shared: dict[Any, Any] | None = None
) -> Pod:
    """The Pod model of a Pod object. `shared`, when given, is a cache that lets equal
    label sets and container specs be one object: the replicas of a Deployment have the
    same labels and containers, and a 150,000-pod inventory holds each once."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = meta.get("name")
    if not name:
        raise ObjectError("a Pod has no metadata.name")
    try:
        containers = tuple(
            ContainerSpec(
                name=str(c["name"]),
                requests=_resources((c.get("resources") or {}).get("requests")),
                limits=_resources((c.get("resources") or {}).get("limits")),
            )
            for c in spec.get("containers") or []
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ObjectError(f"Pod {name}: {err}") from err
    labels = _str_map(meta.get("labels"))
    owner = workload_of(meta)
    if shared is not None:
        labels = shared.setdefault(("labels", *labels.items()), labels)
        containers = shared.setdefault(("containers", *containers), containers)
        if owner is not None:
            owner = shared.setdefault(("owner", *owner), owner)
    return Pod(
        namespace=intern(str(meta.get("namespace") or "default")),
        name=str(name),
        uid=str(meta.get("uid", "")),
        labels=labels,
        node_name=intern(str(spec.get("nodeName") or "")),
        containers=containers,
        start_time=status.get("startTime"),
        creation_timestamp=meta.get("creationTimestamp"),
        raw=obj if keep_raw else _NO_RAW,
        owner=owner,
    )


def flatten(documents: Iterable[Any]) -> list[Mapping[str, Any]]:
    """Objects from YAML documents, unpacking `kind: List` and `*List` kinds."""
    objects: list[Mapping[str, Any]] = []
    for doc in documents:
        if not doc:
            continue
        if not isinstance(doc, Mapping):
            raise ObjectError(f"expected a Kubernetes object, got {type(doc).__name__}")
        if str(doc.get("kind", "")).endswith("List") and "items" in doc:
            item_kind = str(doc["kind"])[: -len("List")]
            for item in doc.get("items") or []:
                if isinstance(item, Mapping):
                    objects.append({"kind": item.get("kind", item_kind), **item})
        else:
            objects.append(doc)
    return objects


def split_objects(
    objects: Iterable[Mapping[str, Any]],
    keep_raw: bool = True,
    shared: dict[Any, Any] | None = None,
) -> tuple[list[Node], list[Pod]]:
    """Nodes and pods of a stream of objects; keep_raw=False keeps only the fields used,
    which is what a server that does not serve the core API needs (much less memory).
    `shared`: see pod_from_object."""
    nodes: list[Node] = []
    pods: list[Pod] = []
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Node":
            nodes.append(node_from_object(obj, keep_raw))
        elif kind == "Pod":
            pods.append(pod_from_object(obj, keep_raw, shared))
    return nodes, pods


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
