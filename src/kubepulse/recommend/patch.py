"""-o patch: one strategic-merge patch a workload, as `kubectl patch` and a kustomize
`patches:` entry take them.

Each patch names its object (apiVersion, kind, metadata), so that kustomize finds its
target, and holds only the containers' resources: a strategic merge matches the list
`containers` by `name` (its patchMergeKey), so the other containers and fields stay as
they are. A limit the strategy removes (simple sets no CPU limit) is `null`, which
deletes the key. Pods and Jobs are left out: their pod template cannot be changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from kubepulse.kube.local import cpu_quantity
from kubepulse.quantity import format_bytes
from kubepulse.recommend.owners import Workload
from kubepulse.recommend.rows import ContainerRow, Values
from kubepulse.recommend.settings import Strategy

TEMPLATE_PATH = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def _cpu(millicores: int | None) -> str | None:
    return None if millicores is None else cpu_quantity(millicores)


def _memory(count: int | None) -> str | None:
    return None if count is None else format_bytes(count)


def resources(values: Values, strategy: Strategy) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    for key, value in (("cpu", _cpu(values.cpu_limit)), ("memory", _memory(values.memory_limit))):
        # simple's "no limit" removes one that is set; vpa only scales the ones set.
        if value is not None or strategy == "simple":
            limits[key] = value
    found: dict[str, Any] = {
        "requests": {"cpu": _cpu(values.cpu_request), "memory": _memory(values.memory_request)}
    }
    if limits:
        found["limits"] = limits
    return found


def patch_of(
    workload: Workload, rows: Sequence[ContainerRow], strategy: Strategy
) -> dict[str, Any]:
    containers = [
        {"name": r.container, "resources": resources(r.recommended, strategy)}
        for r in sorted(rows, key=lambda r: r.container)
        if r.recommended is not None
    ]
    body: dict[str, Any] = {"containers": containers}
    for key in reversed(TEMPLATE_PATH[workload.kind]):
        body = {key: body}
    return {
        "apiVersion": workload.api_version,
        "kind": workload.kind,
        "metadata": {"name": workload.name, "namespace": workload.namespace},
        **body,
    }


def patches(rows: Sequence[ContainerRow], strategy: Strategy) -> tuple[str, list[str]]:
    """The YAML stream of patches, and a line for each workload left out."""
    by_workload: dict[Workload, list[ContainerRow]] = {}
    for row in rows:
        by_workload.setdefault(row.workload, []).append(row)
    documents: list[str] = []
    skipped: list[str] = []
    for workload, members in sorted(by_workload.items()):
        if workload.kind not in TEMPLATE_PATH:
            skipped.append(
                f"{workload.namespace}/{workload.shown}: a {workload.kind}'s resources are set"
                " through its controller, not patched"
            )
            continue
        if not any(r.recommended is not None for r in members):
            skipped.append(f"{workload.namespace}/{workload.shown}: not enough data")
            continue
        command = (
            f"# kubectl patch {workload.kind.lower()} {workload.name} -n {workload.namespace}"
            " --type strategic --patch-file FILE\n"
        )
        documents.append(
            command + yaml.safe_dump(patch_of(workload, members, strategy), sort_keys=False)
        )
    return "---\n".join(documents), skipped
