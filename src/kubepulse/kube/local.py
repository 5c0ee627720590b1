"""Node and Pod objects for this host, built from what its agent reads.

`kubepulse up` has no Kubernetes API behind it; the core read API serves these objects,
shaped as the kubelet would report them, so that kubectl and `kubectl top` work.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubepulse import __version__
from kubepulse.kube.feed import Object, ObjectFeed
from kubepulse.kube.inventory import namespaces
from kubepulse.kube.objects import Node, Pod, node_from_object, pod_from_object
from kubepulse.model import NodeStats, PodSample, Resources
from kubepulse.quantity import format_bytes
from kubepulse.timefmt import rfc3339

KUBELET_VERSION = "v1.32.0"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


def cpu_quantity(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def resource_list(r: Resources) -> dict[str, str]:
    values: dict[str, str] = {}
    if r.cpu_millicores is not None:
        values["cpu"] = cpu_quantity(r.cpu_millicores)
    if r.memory_bytes is not None:
        values["memory"] = format_bytes(r.memory_bytes)
    return values


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def node_object(stats: NodeStats, address: str, port: int, now: float) -> dict[str, Any]:
    n = stats.node
    capacity = {**resource_list(n.capacity), "pods": "110"}
    allocatable = {**resource_list(n.allocatable), "pods": "110"}
    arch = _ARCH.get(platform.machine(), platform.machine())
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": n.name,
            "uid": f"node-{n.name}",
            "creationTimestamp": rfc3339(n.start_time),
            "labels": {
                "kubernetes.io/hostname": n.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "node-role.kubernetes.io/control-plane": "",
            },
            "annotations": {},
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubepulse agent is reading this host",
                    "lastHeartbeatTime": rfc3339(now),
                    "lastTransitionTime": rfc3339(n.start_time),
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": socket.gethostname()},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": _os_image(),
                "containerRuntimeVersion": f"kubepulse://{__version__}",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    }


def pod_object(pod: PodSample, node_name: str, address: str) -> dict[str, Any]:
    started = rfc3339(pod.start_time)
    containers = [
        {
            "name": c.name,
            "image": f"{pod.namespace}/{c.name}",
            "resources": {
                k: v
                for k, v in (
                    ("requests", resource_list(c.requests)),
                    ("limits", resource_list(c.limits)),
                )
                if v
            },
        }
        for c in pod.containers
    ]
    statuses = [
        {
            "name": c.name,
            "ready": True,
            "started": True,
            "restartCount": 0,
            "image": f"{pod.namespace}/{c.name}",
            "imageID": "",
            "containerID": f"kubepulse://{pod.uid}/{c.name}",
            "state": {"running": {"startedAt": rfc3339(c.start_time)}},
        }
        for c in pod.containers
    ]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "creationTimestamp": started,
            "labels": {
                "kubepulse.io/source": pod.namespace if pod.namespace == "host" else "cgroup"
            },
        },
        "spec": {"nodeName": node_name, "containers": containers, "restartPolicy": "Always"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
            "hostIP": address,
            "podIP": address,
            "startTime": started,
            "containerStatuses": statuses,
            "qosClass": qos_class(pod),
        },
    }


def qos_class(pod: PodSample) -> str:
    """The pod's QoS class by the rules of pkg/apis/core/v1/helper/qos."""
    if all(
        c.requests.cpu_millicores is None
        and c.requests.memory_bytes is None
        and c.limits.cpu_millicores is None
        and c.limits.memory_bytes is None
        for c in pod.containers
    ):
        return "BestEffort"
    if all(
        c.limits.cpu_millicores is not None
        and c.limits.memory_bytes is not None
        and c.requests.cpu_millicores in (None, c.limits.cpu_millicores)
        and c.requests.memory_bytes in (None, c.limits.memory_bytes)
        for c in pod.containers
    ):
        return "Guaranteed"
    return "Burstable"


def same_node(old: Object, new: Object) -> bool:
    """Equal but for the Ready condition's heartbeat: a kubelet whose node status did
    not change reports it only every nodeStatusReportFrequency (5 min), so a watch of
    nodes hears of real changes, not of every reading."""
    return _without_heartbeat(old) == _without_heartbeat(new)


def _without_heartbeat(node: Object) -> Object:
    status = node.get("status") or {}
    conditions = [
        {k: v for k, v in c.items() if k != "lastHeartbeatTime"}
        for c in status.get("conditions") or []
    ]
    return {**node, "status": {**status, "conditions": conditions}}


class LocalInventory:
    """This host as a one-node cluster, refreshed from the agent's newest reading.

    Each new reading is also published to `feed`, the versioned objects and recent
    changes that the core API lists and watches."""

    def __init__(self, latest: Callable[[], NodeStats | None], address: str, port: int) -> None:
        self._latest = latest
        self.address, self.port = address, port
        self._cache: tuple[NodeStats, list[Node], list[Pod]] | None = None
        self.feed = ObjectFeed()
        self.publish()

    def publish(self, _stats: NodeStats | None = None) -> None:
        nodes, pods = self._build()
        self.feed.replace("nodes", [n.raw for n in nodes], same_node)
        self.feed.replace("pods", [p.raw for p in pods])
        self.feed.replace("namespaces", namespaces(self))

    def _build(self) -> tuple[list[Node], list[Pod]]:
        stats = self._latest()
        if stats is None:
            return [], []
        if self._cache is not None and self._cache[0] is stats:
            return self._cache[1], self._cache[2]
        nodes = [node_from_object(node_object(stats, self.address, self.port, time.time()))]
        pods = [pod_from_object(pod_object(p, stats.node.name, self.address)) for p in stats.pods]
        self._cache = (stats, nodes, pods)
        return nodes, pods

    def nodes(self) -> list[Node]:
        return self._build()[0]

    def pods(self) -> list[Pod]:
        return self._build()[1]


def hostname() -> str:
    return os.environ.get("KUBEPULSE_NODE_NAME") or socket.gethostname()
