"""The workload a pod belongs to, read from the pod alone, and whether a pod name (of a
pod that has ended, known only to the history) is one its controller would give.

A pod's controller is its ownerReference with `controller: true` (apimachinery's
GetControllerOf). A ReplicaSet made by a Deployment is named DEPLOYMENT-HASH, and its
pods carry that HASH as the `pod-template-hash` label (the Deployment controller's
rule), so the Deployment is known without listing ReplicaSets.

Names the controllers give (from their generateName, plus 5 random characters:
apiserver's SimpleNameGenerator): a ReplicaSet's, DaemonSet's and Job's pods are
NAME-xxxxx, a Deployment's DEPLOYMENT-HASH-xxxxx; a StatefulSet's are NAME-ORDINAL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
"""The kinds whose pods are pooled, and named by rules name_is_owned_by() knows."""

_GENERATED = 5  # random characters apiserver appends to a generateName


def controller_ref(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object's ownerReference with `controller: true`, with a kind and a name."""
    refs = meta.get("ownerReferences")
    for ref in refs if isinstance(refs, list) else ():
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            kind, name = ref.get("kind"), ref.get("name")
            if isinstance(kind, str) and isinstance(name, str) and kind and name:
                return ref
    return None


def controller_of(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controller, if it has one."""
    ref = controller_ref(meta)
    return None if ref is None else (str(ref["kind"]), str(ref["name"]))


def workload_of(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the workload a pod belongs to: its controller, with a ReplicaSet
    made by a Deployment lifted to that Deployment. None for a pod no one controls."""
    found = controller_of(meta)
    if found is None:
        return None
    kind, name = found
    labels = meta.get("labels") or {}
    template_hash = labels.get("pod-template-hash") if isinstance(labels, Mapping) else None
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return "Deployment", name[: -len(template_hash) - 1]
    return kind, name


def generate_name_of(pod: str) -> str | None:
    """The generateName ("NAME-") a pod named NAME-xxxxx was created with, or None for
    a name that does not end in the generated characters."""
    head, _, tail = pod.rpartition("-")
    return f"{head}-" if head and len(tail) == _GENERATED else None


def statefulset_of(pod: str) -> str | None:
    """The StatefulSet a pod named NAME-ORDINAL would belong to (NAME), else None."""
    head, _, tail = pod.rpartition("-")
    return head if head and tail.isdigit() else None


def name_is_owned_by(kind: str, owner: str, pod: str) -> bool:
    """Whether `pod` is a name the controller of this workload gives its pods."""
    if kind == "StatefulSet":
        return statefulset_of(pod) == owner
    prefix = generate_name_of(pod)
    if prefix is None:
        return False
    if kind == "Deployment":  # its ReplicaSet's generateName: DEPLOYMENT-HASH-
        deployment, _, template_hash = prefix[:-1].rpartition("-")
        return deployment == owner and bool(template_hash)
    if kind in ("ReplicaSet", "DaemonSet", "Job"):
        return prefix == f"{owner}-"
    return False
