"""Objects as a kube-apiserver v1.32 serves them: Nodes, Pods, CSRs, discovery documents.

Builders give the fields a kubelet and the scheduler fill in (addresses, daemon endpoint,
capacity, nodeInfo, Ready condition; container resources, phase, start time, statuses),
so that what reads them is tested against realistic input, not a minimal stub.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from kubepulse.api import discovery, tables
from kubepulse.timefmt import human_duration, parse_rfc3339

_UID_NAMESPACE = uuid.UUID("6f1b2f7e-9a34-4c1e-8d55-66616b656170")
KUBELET_VERSION = "v1.32.2"


def uid(kind: str, namespace: str, name: str) -> str:
    """Deterministic UIDs keep failing tests' output stable between runs."""
    return str(uuid.uuid5(_UID_NAMESPACE, f"{kind}/{namespace}/{name}"))


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(
    name: str,
    ip: str = "10.0.0.10",
    *,
    labels: Mapping[str, str] | None = None,
    cpu: str = "4",
    memory: str = "16374784Ki",
    allocatable_cpu: str = "3800m",
    allocatable_memory: str = "15223808Ki",
    kubelet_port: int = 10250,
    ready: bool = True,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    stamp = now_rfc3339()
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                **(labels or {}),
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                **(annotations or {}),
            },
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": {"cpu": cpu, "ephemeral-storage": "101430960Ki", "memory": memory},
            "allocatable": {
                "cpu": allocatable_cpu,
                "ephemeral-storage": "93478772582",
                "memory": allocatable_memory,
                "pods": "110",
            },
            "conditions": [
                _condition("MemoryPressure", "False", "KubeletHasSufficientMemory", stamp),
                _condition("DiskPressure", "False", "KubeletHasNoDiskPressure", stamp),
                _condition("PIDPressure", "False", "KubeletHasSufficientPID", stamp),
                _condition(
                    "Ready",
                    "True" if ready else "False",
                    "KubeletReady" if ready else "KubeletNotReady",
                    stamp,
                ),
            ],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "machineID": uuid.uuid5(_UID_NAMESPACE, name).hex,
                "systemUUID": str(uuid.uuid5(_UID_NAMESPACE, f"system/{name}")),
                "bootID": str(uuid.uuid5(_UID_NAMESPACE, f"boot/{name}")),
                "kernelVersion": "6.8.0-51-generic",
                "osImage": "Ubuntu 24.04.1 LTS",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def _condition(kind: str, status: str, reason: str, stamp: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": f"kubelet condition {reason}",
    }


Container = tuple[str, Mapping[str, str], Mapping[str, str]]  # name, requests, limits


def pod(
    namespace: str,
    name: str,
    node_name: str,
    *,
    containers: Sequence[Container] = (("app", {"cpu": "100m", "memory": "128Mi"}, {}),),
    labels: Mapping[str, str] | None = None,
    phase: str = "Running",
    ip: str = "10.244.0.5",
) -> dict[str, Any]:
    stamp = now_rfc3339()
    running = phase == "Running"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "containers": [
                {
                    "name": cname,
                    "image": f"registry.k8s.io/{cname}:1.0",
                    "resources": {
                        **({"requests": dict(requests)} if requests else {}),
                        **({"limits": dict(limits)} if limits else {}),
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                }
                for cname, requests, limits in containers
            ],
            "restartPolicy": "Always",
            "nodeName": node_name,
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler",
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Ready", "status": "True" if running else "False"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "hostIP": "10.0.0.10",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": stamp,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": cname,
                    "state": {"running": {"startedAt": stamp}} if running else {"waiting": {}},
                    "ready": running,
                    "restartCount": 0,
                    "image": f"registry.k8s.io/{cname}:1.0",
                    "imageID": "",
                    "started": running,
                }
                for cname, _requests, _limits in containers
            ],
        },
    }


def csr(
    name: str, request_pem: bytes, signer: str = "kubernetes.io/kubelet-serving"
) -> dict[str, Any]:
    import base64

    return {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(request_pem).decode(),
            "signerName": signer,
            "usages": ["digital signature", "server auth"],
        },
    }


def csr_condition(csr_obj: Mapping[str, Any]) -> str:
    """kubectl's CONDITION column (pkg/printers/internalversion printCertificateSigningRequest)."""
    status = csr_obj.get("status") or {}
    found = [
        c["type"]
        for c in status.get("conditions") or []
        if c.get("type") in ("Approved", "Denied", "Failed")
    ]
    if status.get("certificate"):
        found.append("Issued")
    return ",".join(found) or "Pending"


def csr_row(obj: Mapping[str, Any], now: float) -> list[Any]:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    created = meta.get("creationTimestamp")
    seconds = spec.get("expirationSeconds")
    return [
        meta.get("name"),
        human_duration(now - parse_rfc3339(created)) if created else "<unknown>",
        spec.get("signerName", ""),
        spec.get("username", ""),
        human_duration(int(seconds)) if seconds else "<none>",
        csr_condition(obj),
    ]


# Verbs as kube-apiserver v1.32 lists them in discovery.
_READ_WRITE = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_CREATE_ONLY = ["create"]

# group version -> [(resource, kind, namespaced, singular, short names, categories, verbs)],
# apps first: kube-apiserver lists groups in its priority order.
GROUPS: dict[str, list[tuple[discovery.Resource, list[str]]]] = {
    "v1": [
        (("configmaps", "ConfigMap", True, "configmap", ["cm"], []), _READ_WRITE),
        (("namespaces", "Namespace", False, "namespace", ["ns"], []), _READ_WRITE),
        (("nodes", "Node", False, "node", ["no"], []), _READ_WRITE),
        (("pods", "Pod", True, "pod", ["po"], ["all"]), _READ_WRITE),
    ],
    "apps/v1": [
        (("daemonsets", "DaemonSet", True, "daemonset", ["ds"], ["all"]), _READ_WRITE),
        (("deployments", "Deployment", True, "deployment", ["deploy"], ["all"]), _READ_WRITE),
        (("replicasets", "ReplicaSet", True, "replicaset", ["rs"], ["all"]), _READ_WRITE),
        (("statefulsets", "StatefulSet", True, "statefulset", ["sts"], ["all"]), _READ_WRITE),
    ],
    "authentication.k8s.io/v1": [
        (
            ("selfsubjectreviews", "SelfSubjectReview", False, "selfsubjectreview", [], []),
            _CREATE_ONLY,
        ),
        (("tokenreviews", "TokenReview", False, "tokenreview", [], []), _CREATE_ONLY),
    ],
    "authorization.k8s.io/v1": [
        (
            (
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                True,
                "localsubjectaccessreview",
                [],
                [],
            ),
            _CREATE_ONLY,
        ),
        (
            (
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                False,
                "selfsubjectaccessreview",
                [],
                [],
            ),
            _CREATE_ONLY,
        ),
        (
            (
                "subjectaccessreviews",
                "SubjectAccessReview",
                False,
                "subjectaccessreview",
                [],
                [],
            ),
            _CREATE_ONLY,
        ),
    ],
    "certificates.k8s.io/v1": [
        (
            (
                "certificatesigningrequests",
                "CertificateSigningRequest",
                False,
                "certificatesigningrequest",
                ["csr"],
                [],
            ),
            _READ_WRITE,
        ),
    ],
}


# group version -> {resource: [(subresource, group, version, kind, verbs)]}, as v1.32 has them
_SCALE = ("scale", "autoscaling", "v1", "Scale", ["get", "patch", "update"])
SUBRESOURCES: dict[str, dict[str, list[tuple[str, str, str, str, list[str]]]]] = {
    "v1": {"pods": [("log", "", "v1", "Pod", ["get"])]},
    "apps/v1": {name: [_SCALE] for name in ("deployments", "replicasets", "statefulsets")},
}


def resource_list(group_version: str) -> dict[str, Any]:
    """APIResourceList, the legacy discovery document of one group version; each
    subresource is an entry of its own (`deployments/scale`) right after its resource."""
    entries = GROUPS[group_version]
    body = discovery._resource_list(group_version, [resource for resource, _ in entries])
    for item, (_, verbs) in zip(body["resources"], entries, strict=True):
        item["verbs"] = verbs
    listed = []
    for item in body["resources"]:
        listed.append(item)
        for sub, group, version, kind, verbs in SUBRESOURCES.get(group_version, {}).get(
            item["name"], []
        ):
            entry = {"name": f"{item['name']}/{sub}", "singularName": "", "namespaced": True}
            if group:
                entry.update(group=group, version=version)
            listed.append({**entry, "kind": kind, "verbs": verbs})
    body["resources"] = listed
    return body


def _group_name(group_version: str) -> str:
    return group_version.rpartition("/")[0]


def api_group(group_version: str) -> dict[str, Any]:
    version = {"groupVersion": group_version, "version": group_version.rpartition("/")[2]}
    return {"name": _group_name(group_version), "versions": [version], "preferredVersion": version}


def aggregated(core: bool) -> dict[str, Any]:
    """apidiscovery.k8s.io/v2 APIGroupDiscoveryList for /api (core) or /apis (the rest)."""
    items = []
    for group_version, entries in GROUPS.items():
        if (group_version == "v1") != core:
            continue
        group, _, version = group_version.rpartition("/")
        doc = discovery._discovery_group(group, version, [resource for resource, _ in entries])
        for item, (_, verbs) in zip(doc["versions"][0]["resources"], entries, strict=True):
            item["verbs"] = verbs
            subresources = SUBRESOURCES.get(group_version, {}).get(item["resource"], [])
            if subresources:
                item["subresources"] = [
                    {
                        "subresource": sub,
                        "responseKind": {"group": g, "version": v, "kind": kind},
                        "verbs": sub_verbs,
                    }
                    for sub, g, v, kind, sub_verbs in subresources
                ]
        items.append(doc)
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def api_group_list() -> dict[str, Any]:
    groups = [api_group(gv) for gv in GROUPS if gv != "v1"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def configmap_extension_apiserver_authentication(
    client_ca_pem: bytes, front_proxy_ca_pem: bytes
) -> dict[str, Any]:
    """What kube-apiserver's ClusterAuthenticationTrustController writes: the -headers and
    allowed-names values are JSON-encoded lists (pkg/controlplane/controller/
    clusterauthenticationtrust), the CA bundles PEM."""
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": "extension-apiserver-authentication",
            "namespace": "kube-system",
            "uid": uid("ConfigMap", "kube-system", "extension-apiserver-authentication"),
            "creationTimestamp": now_rfc3339(),
        },
        "data": {
            "client-ca-file": client_ca_pem.decode(),
            "requestheader-allowed-names": '["front-proxy-client"]',
            "requestheader-client-ca-file": front_proxy_ca_pem.decode(),
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-username-headers": '["X-Remote-User"]',
        },
    }


# ----- the writable kinds (writable.py): builders and kubectl's table columns

NAME_COLUMN = tables.column("Name", "Name must be unique within a namespace.", fmt="name")
AGE_COLUMN = tables.column("Age", "CreationTimestamp is a timestamp representing the server time.")


def _age(obj: Mapping[str, Any], now: float) -> str:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    return human_duration(now - parse_rfc3339(created)) if created else "<unknown>"


def name_age_row(obj: Mapping[str, Any], now: float) -> list[Any]:
    return [(obj.get("metadata") or {}).get("name"), _age(obj, now)]


NAME_AGE: tuple[list[dict[str, Any]], Any] = ([NAME_COLUMN, AGE_COLUMN], name_age_row)

DEPLOYMENT_COLUMNS = [
    NAME_COLUMN,
    tables.column("Ready", "Number of the pod with ready state"),
    tables.column(
        "Up-to-date",
        "Total number of non-terminated pods targeted by this deployment that have the "
        "desired template spec.",
    ),
    tables.column(
        "Available",
        "Total number of available pods (ready for at least minReadySeconds) targeted by "
        "this deployment.",
    ),
    AGE_COLUMN,
]


def deployment_row(obj: Mapping[str, Any], now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        (obj.get("metadata") or {}).get("name"),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
    ]


CONFIGMAP_COLUMNS = [
    NAME_COLUMN,
    tables.column("Data", "Number of keys in the ConfigMap"),
    AGE_COLUMN,
]


def configmap_row(obj: Mapping[str, Any], now: float) -> list[Any]:
    data = {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}
    return [(obj.get("metadata") or {}).get("name"), len(data), _age(obj, now)]


def deployment(
    namespace: str,
    name: str,
    replicas: int = 1,
    *,
    containers: Sequence[str] = ("app",),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    match = dict(labels or {"app": name})
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": namespace, "labels": match},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match},
            "template": {
                "metadata": {"labels": match},
                "spec": {
                    "containers": [
                        {"name": c, "image": f"registry.k8s.io/{c}:1.0"} for c in containers
                    ]
                },
            },
        },
    }


def replicaset_for(deployment_obj: Mapping[str, Any], suffix: str = "5d7c9b8f6d") -> dict[str, Any]:
    """The ReplicaSet a Deployment's controller makes, owned by it."""
    meta = deployment_obj["metadata"]
    return {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": f"{meta['name']}-{suffix}",
            "namespace": meta["namespace"],
            "labels": dict(deployment_obj["spec"]["selector"]["matchLabels"]),
            "ownerReferences": [owner_reference(deployment_obj)],
        },
        "spec": {
            "replicas": deployment_obj["spec"]["replicas"],
            "selector": deployment_obj["spec"]["selector"],
            "template": deployment_obj["spec"]["template"],
        },
    }


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta.get("uid") or uid(owner["kind"], meta.get("namespace", ""), meta["name"]),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def configmap(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }
