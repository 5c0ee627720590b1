"""Where the server learns which nodes to scrape and which pods exist.

metrics-server reads them from informers; kubepulse has three sources behind one small
interface: a file of objects (`--targets`), this host's agent (`kubepulse up`), and the
Kubernetes API.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
import yaml

from kubepulse.kube.objects import Node, ObjectError, Pod, flatten, split_objects

_NS_UID = uuid.UUID("a4a7c0de-5b1e-4c1e-9c0a-6b7570756c73")


class Inventory(Protocol):
    """The cluster's Nodes and Pods. Each call returns a snapshot: a change makes a new
    list and never alters one already returned, so readers may key caches on the list."""

    def nodes(self) -> list[Node]: ...

    def pods(self) -> list[Pod]: ...


def namespace_object(name: str, created: str | None) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid5(_NS_UID, name)),
            "creationTimestamp": created,
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def namespaces(inventory: Inventory) -> list[Mapping[str, Any]]:
    """The namespaces that hold pods, plus `default`, as Namespace objects."""
    created: dict[str, str | None] = {"default": None}
    for pod in inventory.pods():
        first = created.get(pod.namespace)
        stamp = pod.creation_timestamp
        if pod.namespace not in created or (stamp and (first is None or stamp < first)):
            created[pod.namespace] = stamp
    return [namespace_object(name, created[name]) for name in sorted(created)]


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error in one line (its own text spans several): what is wrong, and where."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{err.problem}{where}"
    return " ".join(str(err).split())


class StaticInventory:
    """Nodes and pods read once from YAML (`kubectl get nodes -o yaml` output works)."""

    def __init__(self, nodes: list[Node], pods: list[Pod]) -> None:
        self._nodes, self._pods = nodes, pods

    @classmethod
    def from_file_isolated(cls, path: Path) -> StaticInventory:
        """from_file(path) parsed in a forked child, which sends back only the compact
        objects. Parsing a big file makes ~5x its size in short-lived dicts; the small
        strings that survive them pin the allocator's arenas, so a server that parsed
        in-process would keep that peak as its resident size for good (5,000 nodes:
        850 MB resident after the load instead of ~250 MB)."""
        if not hasattr(os, "fork"):
            return cls.from_file(path)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: parse, send, and leave without running any cleanup
            os.close(read_end)
            status = 0
            try:
                try:
                    result: StaticInventory | str = cls.from_file(path)
                except ObjectError as err:
                    result = str(err)
                with os.fdopen(write_end, "wb") as out:
                    pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(write_end)
        received: StaticInventory | str | None
        with os.fdopen(read_end, "rb") as incoming:
            try:
                received = pickle.load(incoming)  # as it arrives: no copy of it all at once
            except (EOFError, pickle.UnpicklingError):
                received = None
        _, status = os.waitpid(pid, 0)
        if status != 0 or received is None:
            return cls.from_file(path)  # the child failed: parse here, for its error
        if isinstance(received, str):
            raise ObjectError(received)
        return received

    @classmethod
    def from_file(cls, path: Path, keep_raw: bool = False) -> StaticInventory:
        """Objects from YAML or JSON (`kubectl get nodes,pods -A -o json` loads 50x faster)."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        nodes: list[Node] = []
        pods: list[Pod] = []
        # Equal label sets and container specs become one object each (a file read once;
        # pods of a watched inventory come and go, so it does not share this way).
        shared: dict[Any, Any] | None = None if keep_raw else {}
        try:
            data = path.read_bytes()
            if data.lstrip()[:1] in (b"{", b"["):
                with contextlib.suppress(orjson.JSONDecodeError):
                    document = orjson.loads(data)
                    nodes, pods = split_objects(
                        flatten(document if isinstance(document, list) else [document]),
                        keep_raw,
                        shared,
                    )
                    if not nodes:
                        raise ObjectError(f"{path} holds no Node objects")
                    return cls(nodes, pods)
            del data
            with path.open("rb") as stream:
                # One document at a time: a multi-document file never sits in memory
                # whole as Python objects, only as the compact Node and Pod it becomes.
                for document in yaml.load_all(stream, Loader=loader):
                    more_nodes, more_pods = split_objects(flatten([document]), keep_raw, shared)
                    nodes += more_nodes
                    pods += more_pods
                    del document, more_nodes, more_pods
        except OSError as err:
            raise ObjectError(f"cannot read {path}: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise ObjectError(f"{path} is not UTF-8 text (byte {err.start})") from err
        except yaml.YAMLError as err:
            raise ObjectError(f"{path} is not valid YAML: {_yaml_problem(err)}") from err
        if not nodes:
            raise ObjectError(f"{path} holds no Node objects")
        return cls(nodes, pods)

    def nodes(self) -> list[Node]:
        return self._nodes

    def pods(self) -> list[Pod]:
        return self._pods
