"""The pods of a namespace (or all) and the controllers above them, for pooling their
history by workload (recommend/owners.py): pods, ReplicaSets, and Jobs when a pod is
owned by one (to find its CronJob)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubepulse.kube.client import ApiError, KubeClient

Object = Mapping[str, Any]


def _path(group_version: str, resource: str, namespace: str | None) -> str:
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"


async def list_objects(
    client: KubeClient, group_version: str, resource: str, namespace: str | None
) -> list[Object]:
    found = await client.get(_path(group_version, resource, namespace))
    return list(found.get("items") or [])


async def pods_and_controllers(
    client: KubeClient, namespace: str | None
) -> tuple[list[Object], list[Object], list[Object]]:
    """(pods, replicasets, jobs); a cluster without one of the controller kinds (or
    without the right to list it) gives none of that kind, not an error."""
    pods = await list_objects(client, "v1", "pods", namespace)
    owner_kinds = {
        ref.get("kind")
        for pod in pods
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or []
    }
    replicasets = await _optional(client, "apps/v1", "replicasets", namespace, owner_kinds)
    jobs = await _optional(client, "batch/v1", "jobs", namespace, owner_kinds)
    return pods, replicasets, jobs


_KINDS = {"replicasets": "ReplicaSet", "jobs": "Job"}


async def _optional(
    client: KubeClient, group_version: str, resource: str, namespace: str | None, kinds: set[Any]
) -> list[Object]:
    if _KINDS[resource] not in kinds:
        return []
    try:
        return await list_objects(client, group_version, resource, namespace)
    except ApiError as err:
        if err.code in (403, 404):
            return []
        raise
