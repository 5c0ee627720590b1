"""Kubernetes objects from YAML typed or uploaded on the page, and objects back to YAML
for the editor.

Read the way kubectl reads manifests (sigs.k8s.io/yaml: YAML 1.1 turned into JSON):
documents separated by `---`, a `kind: List` stands for its items, timestamps stay
strings. Loading is yaml's SafeLoader, which builds plain data and runs nothing, with
limits: at most MAX_BYTES of text and MAX_DOCUMENTS objects, and no aliases (`*name`),
because an alias is shared when read but copied when written as JSON, so a few lines
could expand to gigabytes (the "billion laughs").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_DOCUMENTS = 100
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class ManifestError(ValueError):
    """Text that is not usable as Kubernetes objects; the message says where and why."""


class _Loader(yaml.SafeLoader):
    """SafeLoader without timestamps (they stay strings, as in JSON) and without aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.get_mark()
            raise ManifestError(
                f"line {mark.line + 1}: YAML aliases (*name) are not accepted; write the value out"
            )
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _plain(value: Any, where: str) -> Any:
    """JSON's types only: keys become strings (as sigs.k8s.io/yaml makes them)."""
    if isinstance(value, dict):
        return {_key(k, where): _plain(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ManifestError(f"{where}: {value} is not a number JSON can hold")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ManifestError(f"{where}: a {type(value).__name__} value is not JSON (tagged YAML?)")


def _key(key: Any, where: str) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, str | int | float):
        return str(key)
    raise ManifestError(f"{where}: a key must be a string, not {type(key).__name__}")


def _check(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.get(field), str) or not obj[field]:
            raise ManifestError(f"{where}: {field} is missing")
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ManifestError(f"{where}: metadata must be a mapping")
    name, generate = meta.get("name"), meta.get("generateName")
    if not (isinstance(name, str) and name) and not (isinstance(generate, str) and generate):
        raise ManifestError(f"{where}: metadata.name is missing")
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ManifestError(f"{where}: metadata.namespace must be a string")
    return {**obj, "metadata": meta}


def read_objects(text: str) -> list[dict[str, Any]]:
    """The objects in text, in order; raises ManifestError."""
    if len(text.encode()) > MAX_BYTES:
        raise ManifestError(f"the YAML is larger than {MAX_BYTES // 1024} KiB")
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ManifestError(f"the YAML cannot be read: {at}{err.problem or err}") from None
    except yaml.YAMLError as err:
        raise ManifestError(f"the YAML cannot be read: {err}") from None
    found: list[dict[str, Any]] = []
    for number, document in enumerate(documents, start=1):
        where = f"document {number}"
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ManifestError(f"{where} is not an object (a mapping with apiVersion and kind)")
        document = _plain(document, where)
        items = document.get("items")
        if str(document.get("kind", "")).endswith("List") and isinstance(items, list):
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ManifestError(f"{where}, item {index + 1} is not an object")
                found.append(_check(item, f"{where}, item {index + 1}"))
        else:
            found.append(_check(document, where))
        if len(found) > MAX_DOCUMENTS:
            raise ManifestError(f"more than {MAX_DOCUMENTS} objects at once")
    if not found:
        raise ManifestError("the YAML holds no object")
    return found


def read_object(text: str) -> dict[str, Any]:
    """The one object the editor holds; raises ManifestError."""
    found = read_objects(text)
    if len(found) != 1:
        raise ManifestError(f"the editor holds one object, not {len(found)}")
    return found[0]


def to_yaml(obj: Mapping[str, Any]) -> str:
    """The object as kubectl edit shows it: managedFields left out (the API keeps them
    when an update does not send them)."""
    shown = dict(obj)
    meta = shown.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        shown["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, default_flow_style=False)
