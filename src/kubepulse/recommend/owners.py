"""Which workload a pod belongs to, so that its replicas' history is pooled.

A pod's controller is its ownerReference with controller: true (apimachinery
GetControllerOf). A ReplicaSet owned by a Deployment stands for that Deployment, a
Job owned by a CronJob for that CronJob. Pods that have ended are no longer in the API,
but their history is: they are matched by name to the live ones, by the rules the
controllers name pods with (kube/owners.py). A pod
with no controller (and, with no cluster, every pod) is its own workload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubepulse.kube.owners import controller_ref, generate_name_of, statefulset_of

Object = Mapping[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class Workload:
    namespace: str
    kind: str
    name: str
    api_version: str = "v1"

    @property
    def shown(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def controller_of(obj: Object) -> Object | None:
    return controller_ref(obj.get("metadata") or {})


@dataclass
class Owners:
    """Live pods and the controllers above them, as the API lists them."""

    pods: list[Object] = field(default_factory=list)
    replicasets: dict[tuple[str, str], Object] = field(default_factory=dict)
    jobs: dict[tuple[str, str], Object] = field(default_factory=dict)
    _by_pod: dict[tuple[str, str], Workload] = field(default_factory=dict)
    _prefixes: dict[tuple[str, str], Workload] = field(default_factory=dict)
    _statefulsets: dict[tuple[str, str], Workload] = field(default_factory=dict)

    @classmethod
    def of(
        cls, pods: Iterable[Object], replicasets: Iterable[Object], jobs: Iterable[Object] = ()
    ) -> Owners:
        owners = cls(
            pods=list(pods),
            replicasets={_key(o): o for o in replicasets},
            jobs={_key(o): o for o in jobs},
        )
        for pod in owners.pods:
            owners._add(pod)
        for (namespace, name), rs in owners.replicasets.items():
            # A ReplicaSet's pods are named after it (generateName NAME-).
            owners._prefixes[(namespace, f"{name}-")] = owners._lift(namespace, rs, "ReplicaSet")
        return owners

    def _add(self, pod: Object) -> None:
        meta = pod.get("metadata") or {}
        namespace, name = _key(pod)
        workload = self._workload_of(namespace, name, pod)
        self._by_pod[(namespace, name)] = workload
        if generate := meta.get("generateName"):
            self._prefixes[(namespace, str(generate))] = workload
        if workload.kind == "StatefulSet":
            self._statefulsets[(namespace, workload.name)] = workload

    def _workload_of(self, namespace: str, name: str, pod: Object) -> Workload:
        ref = controller_of(pod)
        if ref is None:
            return Workload(namespace, "Pod", name)
        kind, owner = str(ref.get("kind")), str(ref.get("name"))
        api_version = str(ref.get("apiVersion") or "v1")
        parents = {"ReplicaSet": self.replicasets, "Job": self.jobs}.get(kind)
        parent = parents.get((namespace, owner)) if parents is not None else None
        if parent is not None:
            return self._lift(namespace, parent, kind)
        return Workload(namespace, kind, owner, api_version)

    def _lift(self, namespace: str, obj: Object, kind: str) -> Workload:
        """A ReplicaSet or Job, or the Deployment or CronJob that controls it."""
        ref = controller_of(obj)
        if ref is not None and ref.get("kind") in ("Deployment", "CronJob"):
            return Workload(
                namespace, str(ref["kind"]), str(ref["name"]), str(ref.get("apiVersion"))
            )
        api_version = "apps/v1" if kind == "ReplicaSet" else "batch/v1"
        return Workload(namespace, kind, _key(obj)[1], api_version)

    def workload(self, namespace: str, pod: str) -> Workload:
        """The workload of a pod, live or ended."""
        if found := self._by_pod.get((namespace, pod)):
            return found
        prefix = generate_name_of(pod)
        if prefix is not None and (found := self._prefixes.get((namespace, prefix))):
            return found
        ordinal_of = statefulset_of(pod)
        if ordinal_of is not None and (found := self._statefulsets.get((namespace, ordinal_of))):
            return found
        return Workload(namespace, "Pod", pod)

    def live_pods(self) -> dict[Workload, list[Object]]:
        found: dict[Workload, list[Object]] = {}
        for pod in self.pods:
            found.setdefault(self._by_pod[_key(pod)], []).append(pod)
        return found


def _key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")
