"""The one description of every type served, from which both OpenAPI documents are made.

Names are the API server's definition names (k8s.io/apiserver's DefinitionNamer:
Go package path reversed, `io.k8s.api.core.v1.Node`), so that kube-apiserver's
aggregator merges them with its own. Only the fields kubepulse fills are described.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
METRICS = "io.k8s.metrics.pkg.apis.metrics.v1beta1."


@dataclass(frozen=True)
class Prop:
    """A field: a scalar `type` (with `format`), or a reference to a model `ref`; as
    `array` a list of it, as `map` an object whose values are it."""

    description: str
    type: str = ""
    format: str = ""
    ref: str = ""
    array: bool = False
    map: bool = False


@dataclass(frozen=True)
class Model:
    description: str
    properties: dict[str, Prop] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    kind: tuple[str, str, str] | None = None
    """(group, version, kind) of a top-level object (x-kubernetes-group-version-kind)."""
    type: str = "object"
    format: str = ""


def s(description: str, fmt: str = "") -> Prop:
    return Prop(description, "string", fmt)


def ref(name: str, description: str, array: bool = False, map: bool = False) -> Prop:
    return Prop(description, ref=name, array=array, map=map)


def strings(description: str) -> Prop:
    return Prop(description, "string", map=True)


def _object(
    kind: str,
    group: str,
    version: str,
    description: str,
    required: tuple[str, ...] = (),
    **fields: Prop,
) -> Model:
    return Model(
        description,
        {
            "apiVersion": s("The versioned schema of this representation of an object."),
            "kind": s("The REST resource this object represents, in CamelCase."),
            "metadata": ref(META + "ObjectMeta", "Standard object metadata."),
            **fields,
        },
        required=required,
        kind=(group, version, kind),
    )


def _core_object(kind: str, description: str, spec: str, status: str) -> Model:
    """A core/v1 object with its KindSpec and KindStatus."""
    return _object(
        kind,
        "",
        "v1",
        description,
        spec=ref(f"{CORE}{kind}Spec", spec),
        status=ref(f"{CORE}{kind}Status", status),
    )


_USAGE = "CPU in cores, and memory: the working set in bytes."


def _metrics(kind: str, description: str, **usage: Prop) -> Model:
    """A metrics.k8s.io object: its usage over [timestamp - window, timestamp]."""
    return _object(
        kind,
        "metrics.k8s.io",
        "v1beta1",
        description,
        ("timestamp", "window", *usage),
        timestamp=ref(META + "Time", "The end of the window the usage was measured over."),
        window=ref(META + "Duration", "The length of the window the usage was measured over."),
        **usage,
    )


def _list(kind: str, group: str, version: str, item: str) -> Model:
    return Model(
        f"{kind} is a list of {item.rsplit('.', 1)[1]}.",
        {
            "apiVersion": s("The versioned schema of this representation of an object."),
            "kind": s("The REST resource this object represents, in CamelCase."),
            "metadata": ref(META + "ListMeta", "Standard list metadata."),
            "items": ref(item, "The objects of the list.", array=True),
        },
        required=("items",),
        kind=(group, version, kind),
    )


def _quantities(description: str) -> Prop:
    return ref(QUANTITY, description, map=True)


_TIMESTAMP = "date-time"
MODELS: dict[str, Model] = {
    META + "ObjectMeta": Model(
        "Metadata every persisted resource has.",
        {
            "name": s("Name, unique within a namespace."),
            "namespace": s("The namespace the object is in; empty for cluster-wide objects."),
            "uid": s("The unique identifier of this object in time and space."),
            "resourceVersion": s(
                "The version of this object; a watch from it sends only later changes."
            ),
            "creationTimestamp": ref(META + "Time", "When this object was created."),
            "labels": strings("Key-value pairs to organize and select objects."),
            "annotations": strings("Key-value pairs of non-identifying information."),
        },
    ),
    META + "ListMeta": Model(
        "Metadata of a list.",
        {"resourceVersion": s("The version of the list; a watch from it sends later changes.")},
    ),
    META + "Time": Model("A time in RFC 3339 form.", type="string", format=_TIMESTAMP),
    META + "Duration": Model("A duration as Go formats it (e.g. 15s).", type="string"),
    QUANTITY: Model("A fixed-point number with a suffix: 250m cores, 128Mi bytes.", type="string"),
    # core/v1
    CORE + "Node": _core_object(
        "Node",
        "A worker machine: here, the host `kubepulse up` reads.",
        "How the node is configured.",
        "The node's most recently observed status.",
    ),
    CORE + "NodeSpec": Model(
        "How a node is configured.",
        {
            "podCIDR": s("The range of pod IPs of this node."),
            "unschedulable": Prop("Whether new pods may not be placed on the node.", "boolean"),
        },
    ),
    CORE + "NodeStatus": Model(
        "The node's most recently observed status.",
        {
            "capacity": _quantities("The node's total resources."),
            "allocatable": _quantities("The resources available for pods."),
            "conditions": ref(CORE + "NodeCondition", "The node's conditions.", array=True),
            "addresses": ref(CORE + "NodeAddress", "The node's addresses.", array=True),
            "daemonEndpoints": ref(
                CORE + "NodeDaemonEndpoints", "The ports of the node's daemons."
            ),
            "nodeInfo": ref(CORE + "NodeSystemInfo", "What the node runs."),
        },
    ),
    CORE + "NodeCondition": Model(
        "One condition of a node.",
        {
            "type": s("The condition, e.g. Ready."),
            "status": s("True, False or Unknown."),
            "reason": s("Why the condition last changed, in CamelCase."),
            "message": s("Why the condition last changed, for humans."),
            "lastHeartbeatTime": ref(META + "Time", "When the condition was last reported."),
            "lastTransitionTime": ref(META + "Time", "When the status last changed."),
        },
        required=("type", "status"),
    ),
    CORE + "NodeAddress": Model(
        "An address of a node.",
        {"type": s("Hostname, InternalIP or ExternalIP."), "address": s("The address.")},
        required=("type", "address"),
    ),
    CORE + "NodeDaemonEndpoints": Model(
        "The ports of a node's daemons.",
        {"kubeletEndpoint": ref(CORE + "DaemonEndpoint", "Where the kubelet listens.")},
    ),
    CORE + "DaemonEndpoint": Model(
        "A port a daemon listens on.",
        {"Port": Prop("The port number.", "integer", "int32")},
        required=("Port",),
    ),
    CORE + "NodeSystemInfo": Model(
        "What a node runs.",
        {
            name: s(description)
            for name, description in (
                ("machineID", "The machine ID."),
                ("systemUUID", "The system UUID."),
                ("bootID", "The boot ID."),
                ("kernelVersion", "The kernel version (uname -r)."),
                ("osImage", "The OS image, from /etc/os-release."),
                ("containerRuntimeVersion", "The container runtime and its version."),
                ("kubeletVersion", "The kubelet version."),
                ("kubeProxyVersion", "Deprecated: the kube-proxy version."),
                ("operatingSystem", "The operating system."),
                ("architecture", "The CPU architecture."),
            )
        },
    ),
    CORE + "Pod": _core_object(
        "Pod",
        "A group of containers on a host: here, a cgroup or a top-level process tree.",
        "What the pod runs.",
        "The pod's most recently observed status.",
    ),
    CORE + "PodSpec": Model(
        "What a pod runs.",
        {
            "containers": ref(CORE + "Container", "The pod's containers.", array=True),
            "nodeName": s("The node the pod runs on."),
            "restartPolicy": s("Always, OnFailure or Never."),
        },
        required=("containers",),
    ),
    CORE + "Container": Model(
        "One container of a pod.",
        {
            "name": s("The container's name, unique within the pod."),
            "image": s("The container's image."),
            "resources": ref(CORE + "ResourceRequirements", "The container's requests and limits."),
        },
        required=("name",),
    ),
    CORE + "ResourceRequirements": Model(
        "Resources a container asks for and may not exceed.",
        {
            "requests": _quantities("The resources the container is guaranteed."),
            "limits": _quantities("The most the container may use."),
        },
    ),
    CORE + "PodStatus": Model(
        "A pod's most recently observed status.",
        {
            "phase": s("Pending, Running, Succeeded, Failed or Unknown."),
            "conditions": ref(CORE + "PodCondition", "The pod's conditions.", array=True),
            "hostIP": s("The address of the pod's node."),
            "podIP": s("The pod's address."),
            "startTime": ref(META + "Time", "When the pod started."),
            "containerStatuses": ref(
                CORE + "ContainerStatus", "The status of each container.", array=True
            ),
            "qosClass": s("BestEffort, Burstable or Guaranteed."),
        },
    ),
    CORE + "PodCondition": Model(
        "One condition of a pod.",
        {
            "type": s("The condition, e.g. Ready."),
            "status": s("True, False or Unknown."),
            "lastTransitionTime": ref(META + "Time", "When the status last changed."),
        },
        required=("type", "status"),
    ),
    CORE + "ContainerStatus": Model(
        "The status of one container.",
        {
            "name": s("The container's name."),
            "ready": Prop("Whether the container is ready.", "boolean"),
            "started": Prop("Whether the container has started.", "boolean"),
            "restartCount": Prop("How often the container restarted.", "integer", "int32"),
            "image": s("The container's image."),
            "imageID": s("The image's ID."),
            "containerID": s("The container's ID, as <runtime>://<id>."),
            "state": ref(CORE + "ContainerState", "The container's current state."),
        },
        required=("name", "ready", "restartCount", "image", "imageID"),
    ),
    CORE + "ContainerState": Model(
        "The state of a container.",
        {"running": ref(CORE + "ContainerStateRunning", "Set while the container runs.")},
    ),
    CORE + "ContainerStateRunning": Model(
        "A running container.",
        {"startedAt": ref(META + "Time", "When the container started.")},
    ),
    CORE + "Namespace": _object(
        "Namespace",
        "",
        "v1",
        "A scope for names: here, `host` and each runtime's pods.",
        status=ref(CORE + "NamespaceStatus", "The namespace's status."),
    ),
    CORE + "NamespaceStatus": Model(
        "The status of a namespace.", {"phase": s("Active or Terminating.")}
    ),
    CORE + "NodeList": _list("NodeList", "", "v1", CORE + "Node"),
    CORE + "PodList": _list("PodList", "", "v1", CORE + "Pod"),
    CORE + "NamespaceList": _list("NamespaceList", "", "v1", CORE + "Namespace"),
    # metrics.k8s.io/v1beta1
    METRICS + "NodeMetrics": _metrics(
        "NodeMetrics",
        "The resource usage of a node.",
        usage=_quantities(_USAGE),
    ),
    METRICS + "PodMetrics": _metrics(
        "PodMetrics",
        "The resource usage of a pod, by container.",
        containers=ref(METRICS + "ContainerMetrics", "The usage of each container.", array=True),
    ),
    METRICS + "ContainerMetrics": Model(
        "The resource usage of a container.",
        {
            "name": s("The container's name."),
            "usage": _quantities(_USAGE),
        },
        required=("name", "usage"),
    ),
    METRICS + "NodeMetricsList": _list(
        "NodeMetricsList", "metrics.k8s.io", "v1beta1", METRICS + "NodeMetrics"
    ),
    METRICS + "PodMetricsList": _list(
        "PodMetricsList", "metrics.k8s.io", "v1beta1", METRICS + "PodMetrics"
    ),
}
