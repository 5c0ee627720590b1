"""Find the workloads on a host and present each as a pod of containers.

Three sources, in this order:
1. the kubepods tree a kubelet leaves (QoS classes, pod<uid>, one cgroup per container),
   with the systemd and the cgroupfs naming (pkg/kubelet/cm/cgroup_manager_linux.go);
2. systemd units under the top-level slices (namespace = the slice) and docker, podman
   and containerd scopes;
3. everything else: each top-level process tree is a pod in namespace `host`, named
   after its program (process_trees.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubepulse.agent import cgroups
from kubepulse.agent.cgroups import Hierarchy
from kubepulse.agent.process_trees import ESTABLISHED_SECONDS, HOST_NAMESPACE, ProcessTrees
from kubepulse.agent.procfs import Process, ProcFS

_POD_DIR = re.compile(
    r"^(?:pod|kubepods-(?:burstable-|besteffort-)?pod)([0-9a-f_-]{36})(?:\.slice)?$"
)
_QOS_DIRS = {"burstable", "besteffort", "kubepods-burstable.slice", "kubepods-besteffort.slice"}
_SCOPE = re.compile(r"^(cri-containerd|docker|crio|libpod)-([0-9a-f]{12,64})\.scope$")
_SCOPE_NAMESPACE = {"docker": "docker", "libpod": "podman", "cri-containerd": "containerd"}
_CONTAINER_ID = re.compile(r"^[0-9a-f]{32,64}$")
_UID_NAMESPACE = uuid.UUID("6f1d3e2a-8f0c-4b7e-9d55-6b7570756c73")


@dataclass(frozen=True, slots=True)
class ContainerRef:
    name: str
    start_time: float
    cgroup: str | None = None
    pids: tuple[int, ...] = ()
    cpu_ns: int | None = None
    """Cumulative CPU of a process-tree container (no cgroup to read it from)."""
    cpu_read_at: float | None = None
    """When cpu_ns was read: the time of its samples (process_trees.Tree.cpu_read_at)."""


@dataclass(frozen=True, slots=True)
class PodRef:
    namespace: str
    name: str
    uid: str
    start_time: float
    containers: tuple[ContainerRef, ...]
    cgroup: str | None = None
    kubepods: bool = False
    """Whether the kubelet made the cgroups, so that cpu.shares encode the CPU request."""
    cpu_ns: int | None = None
    """Cumulative CPU of a process tree (no cgroup to read it from)."""


def dns_label(text: str, fallback: str = "x") -> str:
    """A Kubernetes name (RFC 1123 label) made from free text such as a command."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or fallback


def stable_uid(*parts: object) -> str:
    return str(uuid.uuid5(_UID_NAMESPACE, "/".join(str(p) for p in parts)))


class RuntimeMetadata:
    """Names that container runtimes record for Kubernetes containers.

    containerd writes the CRI annotations into the task's config.json, CRI-O into its
    userdata/config.json, and cri-dockerd puts io.kubernetes.* labels on the container.
    """

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self._cache: dict[str, dict[str, str]] = {}

    def lookup(self, container_id: str) -> dict[str, str]:
        """Names for a container id; a container's names never change, so known ids
        are answered from memory instead of parsing its config.json on every read."""
        found = self._cache.get(container_id)
        if found is None:
            found = self._cache[container_id] = self._read(container_id)
            if len(self._cache) > 10_000:
                self._cache.clear()
        return found

    def _read(self, container_id: str) -> dict[str, str]:
        candidates = (
            ("run/containerd/io.containerd.runtime.v2.task/k8s.io", "config.json", "annotations"),
            ("run/containers/storage/overlay-containers", "userdata/config.json", "annotations"),
            ("var/lib/docker/containers", "config.v2.json", "Config.Labels"),
        )
        for base, name, key in candidates:
            try:
                doc = json.loads((self.root / base / container_id / name).read_bytes())
            except (OSError, ValueError):
                continue
            for part in key.split("."):
                doc = doc.get(part, {}) if isinstance(doc, dict) else {}
            if isinstance(doc, dict):
                return {str(k): str(v) for k, v in doc.items()}
        return {}


def _first(labels: dict[str, str], *keys: str) -> str | None:
    return next((labels[k] for k in keys if labels.get(k)), None)


class Discovery:
    def __init__(
        self,
        h: Hierarchy,
        proc: ProcFS,
        runtime: RuntimeMetadata,
        established_seconds: float = ESTABLISHED_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.h, self.proc, self.runtime = h, proc, runtime
        self.trees = ProcessTrees(proc, dns_label, established_seconds, clock)

    def pods(self) -> list[PodRef]:
        found = self.kubepods() + self.units()
        return found + self.process_trees({p.cgroup for p in found if p.cgroup})

    # -- 1. kubepods -------------------------------------------------------------------
    def kubepods(self) -> list[PodRef]:
        pods: list[PodRef] = []
        for top in ("kubepods", "kubepods.slice"):
            if not self.h.dir(self.h.memory, top).is_dir():
                continue
            for child in cgroups.children(self.h, top):
                leaf = child.rsplit("/", 1)[-1]
                nested = cgroups.children(self.h, child) if leaf in _QOS_DIRS else iter([child])
                for pod_dir in nested:
                    match = _POD_DIR.match(pod_dir.rsplit("/", 1)[-1])
                    if match:
                        pod = self._kube_pod(pod_dir, match.group(1).replace("_", "-"))
                        if pod is not None:
                            pods.append(pod)
        return pods

    def _kube_pod(self, pod_dir: str, uid: str) -> PodRef | None:
        containers: list[ContainerRef] = []
        labels: dict[str, str] = {}
        first_pid: int | None = None
        for cgroup in cgroups.children(self.h, pod_dir):
            leaf = cgroup.rsplit("/", 1)[-1]
            if leaf.startswith("crio-conmon-"):
                continue
            scope = _SCOPE.match(leaf)
            container_id = scope.group(2) if scope else leaf
            meta = self.runtime.lookup(container_id)
            if meta.get("io.kubernetes.cri.container-type") == "sandbox" or (
                meta.get("io.kubernetes.docker.type") == "podsandbox"
            ):
                continue
            try:
                pids = cgroups.read_pids(self.h, cgroup)
                procs = self._processes(pids)
                if procs and all(p.comm == "pause" for p in procs):
                    continue
                start = min((p.start_time for p in procs), default=None)
                start = start if start is not None else cgroups.created_at(self.h, cgroup)
            except OSError:
                continue  # the container went away while we looked
            labels = labels or meta
            first_pid = first_pid if first_pid is not None else (procs[0].pid if procs else None)
            name = _first(meta, "io.kubernetes.cri.container-name", "io.kubernetes.container.name")
            if name is None:
                is_id = _CONTAINER_ID.match(container_id)
                name = dns_label(procs[0].comm) if is_id and procs else dns_label(container_id)
            containers.append(ContainerRef(name=name, start_time=start, cgroup=cgroup))
        try:
            pod_start = cgroups.created_at(self.h, pod_dir)
        except OSError:
            return None
        env = self.proc.environ(first_pid) if first_pid is not None else {}
        name = _first(labels, "io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name")
        namespace = _first(
            labels, "io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"
        )
        if namespace is None and first_pid is not None:
            namespace = self._service_account_namespace(first_pid)
        return PodRef(
            namespace=namespace or "default",
            name=name or env.get("HOSTNAME") or f"pod-{uid[:8]}",
            uid=uid,
            start_time=pod_start,
            containers=tuple(sorted(containers, key=lambda c: c.name)),
            cgroup=pod_dir,
            kubepods=True,
        )

    def _service_account_namespace(self, pid: int) -> str | None:
        path = self.proc.in_root(pid, "/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    # -- 2. systemd units and container scopes ----------------------------------------
    def units(self) -> list[PodRef]:
        pods: list[PodRef] = []
        for top in cgroups.children(self.h, ""):
            if top.endswith(".slice") and top != "kubepods.slice":
                pods.extend(self._slice(top, dns_label(top.removesuffix(".slice"))))
            elif top == "docker":  # the cgroupfs driver: /docker/<id>
                pods.extend(p for c in cgroups.children(self.h, top) if (p := self._scope(c)))
        return pods

    def _slice(self, slice_dir: str, namespace: str) -> list[PodRef]:
        pods: list[PodRef] = []
        for unit in cgroups.children(self.h, slice_dir):
            leaf = unit.rsplit("/", 1)[-1]
            if leaf.endswith(".slice"):
                pods.extend(self._slice(unit, namespace))
            elif _SCOPE.match(leaf):
                pod = self._scope(unit)
                if pod:
                    pods.append(pod)
            elif leaf.endswith((".service", ".scope")):
                pod = self._unit(unit, namespace, leaf.rsplit(".", 1)[0])
                if pod:
                    pods.append(pod)
        return pods

    def _unit(self, cgroup: str, namespace: str, unit_name: str) -> PodRef | None:
        try:
            procs = self._processes(cgroups.read_pids(self.h, cgroup))
            start = min((p.start_time for p in procs), default=None)
            if start is None and not any(True for _ in cgroups.children(self.h, cgroup)):
                return None  # an empty unit cgroup: nothing runs there
            start = start if start is not None else cgroups.created_at(self.h, cgroup)
        except OSError:
            return None
        name = dns_label(unit_name)
        container = ContainerRef(name=name, start_time=start, cgroup=cgroup)
        uid = stable_uid(self.proc.boot_id(), cgroup)
        return PodRef(namespace, name, uid, start, (container,), cgroup=cgroup)

    def _scope(self, cgroup: str) -> PodRef | None:
        leaf = cgroup.rsplit("/", 1)[-1]
        scope = _SCOPE.match(leaf)
        runtime, container_id = (scope.group(1), scope.group(2)) if scope else ("docker", leaf)
        try:
            procs = self._processes(cgroups.read_pids(self.h, cgroup))
            start = min((p.start_time for p in procs), default=None)
            start = start if start is not None else cgroups.created_at(self.h, cgroup)
        except OSError:
            return None
        if not procs:
            return None
        env = self.proc.environ(procs[0].pid)
        name = dns_label(env.get("HOSTNAME") or container_id[:12])
        container = ContainerRef(name=dns_label(procs[0].comm), start_time=start, cgroup=cgroup)
        namespace = _SCOPE_NAMESPACE.get(runtime, runtime)
        return PodRef(namespace, name, stable_uid(container_id), start, (container,), cgroup)

    # -- 3. process trees ---------------------------------------------------------------
    def process_trees(self, workload_cgroups: set[str]) -> list[PodRef]:
        boot_id = self.proc.boot_id()
        return [
            PodRef(
                HOST_NAMESPACE,
                tree.name,
                stable_uid(boot_id, tree.root_pid, f"{tree.start_time:.2f}"),
                tree.start_time,
                tuple(
                    ContainerRef(
                        c.name,
                        c.start_time,
                        pids=c.pids,
                        cpu_ns=c.cpu_usage_core_nanoseconds,
                        cpu_read_at=tree.cpu_read_at,
                    )
                    for c in tree.containers
                ),
                cpu_ns=tree.cpu_usage_core_nanoseconds,
            )
            for tree in self.trees.read(lambda pid: self._in_workload(pid, workload_cgroups))
        ]

    def _in_workload(self, pid: int, workload_cgroups: set[str]) -> bool:
        if not workload_cgroups:
            return False
        marker = ":memory:" if self.h.version == 1 else "0::"
        try:
            text = (self.proc.root / str(pid) / "cgroup").read_text()
        except OSError:
            return True  # gone: not ours to report
        for line in text.splitlines():
            idx = line.find(marker)
            if idx >= 0 and (idx == 0 or marker == ":memory:"):
                path = line[idx + len(marker) :].strip("/")
                return any(path == c or path.startswith(c + "/") for c in workload_cgroups)
        return False

    def _processes(self, pids: list[int]) -> list[Process]:
        procs: list[Process] = []
        for pid in pids:
            try:
                procs.append(self.proc.process(pid))
            except OSError:
                continue
        return procs
