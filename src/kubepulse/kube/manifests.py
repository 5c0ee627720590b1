"""The objects that install kubepulse as a drop-in metrics-server on a cluster.

They follow metrics-server's `manifests/base` and `manifests/components/high-availability`
(see shared reference, metrics-pipeline.md 1.9 and 1.10), with kubepulse's names: the
same RBAC, Service, APIService and probes, so that `kubectl top`, the HPA and the
aggregator treat kubepulse as they treat metrics-server. Every builder is a pure
function of `Options` returning the object as a dict, ready for YAML or JSON.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubepulse import __version__

Object = dict[str, Any]

NAME = "kubepulse"
LABELS = {"k8s-app": NAME}
DEFAULT_IMAGE = f"ghcr.io/kubepulse/kubepulse:{__version__}"
DEFAULT_NAMESPACE = "kube-system"
# metrics-server's documented sizing envelope is "up to 100 nodes" (README, 1.1).
DEFAULT_NODES = 100

# metrics-server's manifest args (manifests/base/deployment.yaml): /tmp is the only
# writable place under readOnlyRootFilesystem; 10250 needs no CAP_NET_BIND_SERVICE.
DEFAULT_SERVER_ARGS = (
    "--cert-dir=/tmp",
    "--secure-port=10250",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    "--kubelet-use-node-status-port",
    "--metric-resolution=15s",
)

TLS_MOUNT = "/etc/kubepulse/tls"
# The keys of a kubernetes.io/tls Secret.
TLS_ARGS = (f"--tls-cert-file={TLS_MOUNT}/tls.crt", f"--tls-private-key-file={TLS_MOUNT}/tls.key")

# RFC 1123 label: what a Namespace (and a Secret) name must be.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class ManifestError(ValueError):
    """Options that cannot make a working manifest."""


@dataclass(frozen=True)
class Options:
    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    # The flags after `server`, already merged with the defaults (see server_args).
    args: tuple[str, ...] = DEFAULT_SERVER_ARGS
    # Where the args put the serving port and the certificate directory.
    secure_port: int = 10250
    cert_dir: str = "/tmp"
    nodes: int = DEFAULT_NODES
    ha: bool = False
    ca_bundle: bytes | None = None  # PEM
    insecure_skip_tls_verify: bool = False
    tls_secret: str | None = None

    def __post_init__(self) -> None:
        if not _DNS_LABEL.fullmatch(self.namespace):
            raise ManifestError(
                f"invalid namespace {self.namespace!r}: want a DNS label "
                "(lower-case letters, digits and '-', at most 63)"
            )
        if not self.image or any(c.isspace() for c in self.image):
            raise ManifestError(f"invalid image {self.image!r}")
        if self.nodes < 1:
            raise ManifestError(f"--nodes must be at least 1, not {self.nodes}")
        if not 1 <= self.secure_port <= 65535:
            raise ManifestError(f"invalid --secure-port {self.secure_port}")
        if self.ca_bundle is not None and self.insecure_skip_tls_verify:
            raise ManifestError(
                "--ca-bundle and --insecure-skip-tls-verify cannot be used together: "
                "the aggregator either verifies kubepulse with the CA or not at all"
            )
        if self.tls_secret is not None and not _DNS_SUBDOMAIN.fullmatch(self.tls_secret):
            raise ManifestError(f"invalid Secret name {self.tls_secret!r}")


def server_args(extra: Sequence[str], tls_secret: bool = False) -> tuple[str, ...]:
    """The server's flags: the defaults, less those that `extra` sets again, then `extra`.

    A flag given again replaces the default instead of following it, so the manifest
    reads as what runs ("--metric-resolution=30s" once, not after "=15s").
    """
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    base = DEFAULT_SERVER_ARGS + (TLS_ARGS if tls_secret else ())
    return tuple(a for a in base if a.split("=", 1)[0] not in given) + tuple(extra)


def requests(nodes: int) -> dict[str, str]:
    """CPU and memory requests for a server scraping `nodes` nodes every 15 s.

    From BENCHMARKS.md, "Server: scrape and serve at 100 / 1,000 / 5,000 nodes"
    (30 pods per node, 15 s resolution):
      CPU: 1.56 s per 15 s cycle at 1,000 nodes (104m), 0.085-0.101m per node at 5,000.
        Request 25m for up to 100 nodes, plus 0.125m per node above (1,000 nodes: 138m;
        5,000: 638m), capped at one core: the server is one Python process.
      Memory: peak RSS 362 MiB at 1,000 nodes and 1,313 MiB at 5,000, 0.24 MiB per added
        node. Request 256Mi for up to 100 nodes, plus 0.26Mi per node above (1,000
        nodes: 490Mi; 5,000: 1530Mi).
    The shape, a base for 100 nodes plus a per-node step above, is metrics-server's own
    (README: 100m/200Mi up to 100 nodes, then 1m and 2MiB per node).
    """
    above = max(0, nodes - DEFAULT_NODES)
    cpu = min(1000, 25 + -(-above // 8))  # ceil(above * 0.125)
    memory = 256 + -(-above * 13 // 50)  # ceil(above * 0.26)
    return {"cpu": f"{cpu}m", "memory": f"{memory}Mi"}


def _meta(name: str, namespace: str | None = None, **extra: Any) -> Object:
    meta: Object = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(LABELS)
    meta.update(extra)
    return meta


def _subject(opts: Options) -> Object:
    return {"kind": "ServiceAccount", "name": NAME, "namespace": opts.namespace}


def namespace(opts: Options) -> Object:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": opts.namespace}}


def service_account(opts: Options) -> Object:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, opts.namespace)}


def aggregated_metrics_reader() -> Object:
    """Read access to metrics.k8s.io, aggregated into the view, edit and admin roles."""
    labels = dict(LABELS)
    for role in ("view", "edit", "admin"):
        labels[f"rbac.authorization.k8s.io/aggregate-to-{role}"] = "true"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:aggregated-metrics-reader", "labels": labels},
        "rules": [
            {
                "apiGroups": ["metrics.k8s.io"],
                "resources": ["pods", "nodes"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }


def server_role() -> Object:
    """What the server reads: kubelets' /metrics/resource (nodes/metrics), nodes and pods."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(f"system:{NAME}"),
        "rules": [
            {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
            {
                "apiGroups": [""],
                "resources": ["pods", "nodes"],
                "verbs": ["get", "list", "watch"],
            },
        ],
    }


def _cluster_role_binding(opts: Options, name: str, role: str) -> Object:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [_subject(opts)],
    }


def server_role_binding(opts: Options) -> Object:
    return _cluster_role_binding(opts, f"system:{NAME}", f"system:{NAME}")


def auth_delegator_binding(opts: Options) -> Object:
    """TokenReview and SubjectAccessReview, to check the aggregator's callers."""
    return _cluster_role_binding(opts, f"{NAME}:system:auth-delegator", "system:auth-delegator")


def auth_reader_binding(opts: Options) -> Object:
    """Reading the extension-apiserver-authentication ConfigMap (client and front-proxy CAs).

    The Role and the ConfigMap live in kube-system whatever namespace kubepulse runs in.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(f"{NAME}-auth-reader", "kube-system"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "extension-apiserver-authentication-reader",
        },
        "subjects": [_subject(opts)],
    }


def _probe(path: str) -> Object:
    # metrics-server's periods (reference 1.8): every 10 s, 3 failures. No initial delay
    # on readiness: /readyz answers "no metrics to serve" until two scrapes are in, and
    # kubepulse takes its second sample early instead of waiting a resolution.
    return {
        "httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }


def _container(opts: Options) -> Object:
    mounts: list[Object] = [{"name": "tmp-dir", "mountPath": opts.cert_dir}]
    if opts.tls_secret is not None:
        mounts.append({"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True})
    return {
        "name": NAME,
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["server", *opts.args],
        "ports": [{"name": "https", "containerPort": opts.secure_port, "protocol": "TCP"}],
        "livenessProbe": _probe("/livez"),
        "readinessProbe": _probe("/readyz"),
        "resources": {"requests": requests(opts.nodes)},
        # The restricted Pod Security Standard, as metrics-server's deployment sets it.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def _anti_affinity(opts: Options) -> Object:
    # Required, not preferred (high-availability/patch.yaml): two replicas on one node
    # would both go with it. It needs at least two schedulable nodes.
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": dict(LABELS)},
                    "namespaces": [opts.namespace],
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }


def deployment(opts: Options) -> Object:
    # The tmp-dir emptyDir is the only writable path: the certificate directory.
    volumes: list[Object] = [{"name": "tmp-dir", "emptyDir": {}}]
    if opts.tls_secret is not None:
        volumes.append({"name": "tls", "secret": {"secretName": opts.tls_secret}})
    pod_spec: Object = {
        "serviceAccountName": NAME,
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "containers": [_container(opts)],
        "volumes": volumes,
    }
    if opts.ha:
        pod_spec["affinity"] = _anti_affinity(opts)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, opts.namespace),
        "spec": {
            "replicas": 2 if opts.ha else 1,
            "selector": {"matchLabels": dict(LABELS)},
            # One replica: never go below it during a rollout (base deployment.yaml).
            # Two: one may go, as the other serves (high-availability/patch.yaml).
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1 if opts.ha else 0},
            },
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec},
        },
    }


def pod_disruption_budget(opts: Options) -> Object:
    # policy/v1 is served from Kubernetes 1.21 (high-availability-1.21+).
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(NAME, opts.namespace),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(LABELS)}},
    }


def service(opts: Options) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(NAME, opts.namespace),
        "spec": {
            "selector": dict(LABELS),
            "ports": [
                {
                    "name": "https",
                    "port": 443,
                    "protocol": "TCP",
                    "targetPort": "https",
                    "appProtocol": "https",
                }
            ],
        },
    }


def api_service(opts: Options) -> Object:
    """The registration that makes kube-apiserver proxy metrics.k8s.io to kubepulse."""
    spec: Object = {
        "service": {"name": NAME, "namespace": opts.namespace, "port": 443},
        "group": "metrics.k8s.io",
        "version": "v1beta1",
        "groupPriorityMinimum": 100,
        "versionPriority": 100,
    }
    if opts.ca_bundle is not None:
        spec["caBundle"] = base64.b64encode(opts.ca_bundle).decode("ascii")
    if opts.insecure_skip_tls_verify:
        spec["insecureSkipTLSVerify"] = True
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": _meta("v1beta1.metrics.k8s.io"),
        "spec": spec,
    }


def components(opts: Options) -> list[Object]:
    """Everything, in an order `kubectl apply` can create it in."""
    objects: list[Object] = []
    if opts.namespace != DEFAULT_NAMESPACE:
        objects.append(namespace(opts))
    objects += [
        service_account(opts),
        aggregated_metrics_reader(),
        server_role(),
        auth_reader_binding(opts),
        auth_delegator_binding(opts),
        server_role_binding(opts),
        service(opts),
        deployment(opts),
    ]
    if opts.ha:
        objects.append(pod_disruption_budget(opts))
    objects.append(api_service(opts))
    return objects


CSR_APPROVER = f"{NAME}-csr-approver"
CSR_APPROVER_LABELS = {"k8s-app": CSR_APPROVER}


def csr_approver(opts: Options) -> list[Object]:
    """`kubepulse csr-approver` with least privilege: read CSRs, update their approval,
    approve for the kubelet-serving signer only (the signers/approve check kube-apiserver
    makes on /approval), and get nodes for their addresses. The same rules as
    kubelet-csr-approver's Helm chart, minus its leader-election leases (one replica)."""
    sa = {"kind": "ServiceAccount", "name": CSR_APPROVER, "namespace": opts.namespace}
    role: Object = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": CSR_APPROVER, "labels": dict(CSR_APPROVER_LABELS)},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests/approval"],
                "verbs": ["update"],
            },
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["signers"],
                "resourceNames": ["kubernetes.io/kubelet-serving"],
                "verbs": ["approve"],
            },
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
        ],
    }
    binding: Object = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": CSR_APPROVER, "labels": dict(CSR_APPROVER_LABELS)},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": CSR_APPROVER,
        },
        "subjects": [sa],
    }
    container: Object = {
        "name": "csr-approver",
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["csr-approver"],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
        # The server container's restricted Pod Security Standard settings.
        "securityContext": _container(opts)["securityContext"],
    }
    deployment_obj: Object = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": CSR_APPROVER,
            "namespace": opts.namespace,
            "labels": dict(CSR_APPROVER_LABELS),
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(CSR_APPROVER_LABELS)},
            "template": {
                "metadata": {"labels": dict(CSR_APPROVER_LABELS)},
                "spec": {
                    "serviceAccountName": CSR_APPROVER,
                    "priorityClassName": "system-cluster-critical",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    # It must run before any kubelet has a serving certificate: tolerate
                    # the control plane, where it can start first.
                    "tolerations": [
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
                    ],
                    "containers": [container],
                },
            },
        },
    }
    account: Object = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": CSR_APPROVER,
            "namespace": opts.namespace,
            "labels": dict(CSR_APPROVER_LABELS),
        },
    }
    return [account, role, binding, deployment_obj]
