"""Cluster-wide checks: the API server, the metrics.k8s.io registration, pending kubelet
CSRs, and whether the metrics API has every node and pod (and, if not, why)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubepulse.doctor.findings import Finding, fail, ok, warn
from kubepulse.kube.metrics import METRICS
from kubepulse.kube.objects import Node, Pod
from kubepulse.timefmt import parse_rfc3339

APISERVICE = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SHOWN = 5  # names listed in one finding

# Why the aggregator marks an APIService unavailable (kube-aggregator
# pkg/controllers/status/available_controller.go), and what to do about each.
APISERVICE_REASONS: dict[str, tuple[str, str]] = {
    "FailedDiscoveryCheck": (
        "kube-apiserver could not get a good answer from the metrics server's Service "
        "(network, TLS or authorization)",
        "the control plane must reach the metrics server's pod IP on its port (10250 in the "
        "manifests): check NetworkPolicies, firewalls and security groups between control "
        "plane and pods; on overlays the API server cannot reach (e.g. Weave on EKS) run "
        "the server with hostNetwork; on k0s use konnectivity; with kubeadm and Calico keep "
        "CALICO_IPV4POOL_CIDR off the host network. A 403 in the message means the server "
        "rejected the aggregator: check --requestheader-client-ca-file",
    ),
    "MissingEndpoints": (
        "the Service has no ready endpoints: no metrics server pod is Ready",
        "look at the pod (`kubectl -n NAMESPACE get pods -l k8s-app=...`, its logs): it is "
        "Ready after two good scrapes, so the node checks below usually name the cause",
    ),
    "ServiceNotFound": (
        "the Service the APIService points at does not exist",
        "apply the Service from the manifests (`kubepulse manifests | kubectl apply -f -`), "
        "or fix spec.service in the APIService",
    ),
    "ServicePortError": (
        "the Service has no port the APIService names",
        "make spec.service.port of the APIService (443) a port of the Service",
    ),
    "ServiceAccessError": (
        "kube-apiserver could not read the Service or its endpoints",
        "check kube-apiserver's own health and RBAC",
    ),
    "EndpointsNotFound": (
        "the Service has no Endpoints object",
        "check that the Service's selector matches the metrics server's pod labels",
    ),
    "EndpointsAccessError": (
        "kube-apiserver could not read the Service's endpoints",
        "check kube-apiserver's own health and RBAC",
    ),
}


def apiservice_findings(obj: Mapping[str, Any]) -> list[Finding]:
    """The APIService's Available condition, explained."""
    subject = "metrics.k8s.io"
    spec = obj.get("spec") or {}
    service = spec.get("service") or {}
    where = (
        f"Service {service.get('namespace')}/{service.get('name')}:{service.get('port', 443)}"
        if service
        else "kube-apiserver itself (Local)"
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    available = next((c for c in conditions if c.get("type") == "Available"), None)
    if available is None:
        return [
            warn(
                "metrics-api",
                subject,
                f"APIService v1beta1.metrics.k8s.io ({where}) has no Available condition yet",
                "wait a few seconds for kube-aggregator to check it, then run doctor again",
            )
        ]
    if available.get("status") == "True":
        return [
            ok("metrics-api", subject, f"APIService v1beta1.metrics.k8s.io is Available ({where})")
        ]
    reason = str(available.get("reason") or "Unknown")
    message = str(available.get("message") or "")
    meaning, fix = APISERVICE_REASONS.get(
        reason,
        (
            "kube-aggregator does not consider the metrics server available",
            "read the message, and the metrics server's logs",
        ),
    )
    return [
        fail(
            "metrics-api",
            subject,
            f"APIService v1beta1.metrics.k8s.io is not Available: {reason}: {meaning} "
            f"({where}); message: {message or '(none)'}",
            fix,
        )
    ]


def served_directly(code: int | None) -> Finding:
    """Without an APIService (`kubepulse up`, or a server asked directly), whether the
    API server answers metrics.k8s.io itself; code is the status of GET METRICS."""
    subject = "metrics.k8s.io"
    if code == 200:
        return ok("metrics-api", subject, f"{METRICS} is served by the API server directly")
    return fail(
        "metrics-api",
        subject,
        f"metrics.k8s.io is not registered: no APIService v1beta1.metrics.k8s.io, and "
        f"GET {METRICS} answered {code}",
        "install a metrics server: `kubepulse manifests | kubectl apply -f -` (or "
        "metrics-server's components.yaml); `kubectl top` says "
        '"Metrics API not available" until then',
    )


def _pending(csr: Mapping[str, Any]) -> bool:
    status = csr.get("status") or {}
    types = {c.get("type") for c in status.get("conditions") or []}
    return not types & {"Approved", "Denied", "Failed"} and not status.get("certificate")


def csr_findings(csrs: Iterable[Mapping[str, Any]], nodes: Sequence[Node]) -> list[Finding]:
    """Pending kubernetes.io/kubelet-serving CSRs, per node: kube-controller-manager never
    approves them ("never auto-approved", CertificateSigningRequest docs), so a kubelet
    with serverTLSBootstrap waits for someone to."""
    by_node: dict[str, list[str]] = {}
    for csr in csrs:
        spec = csr.get("spec") or {}
        if spec.get("signerName") != KUBELET_SERVING or not _pending(csr):
            continue
        user = str(spec.get("username") or "")
        node = user.removeprefix("system:node:") if user.startswith("system:node:") else user
        by_node.setdefault(node, []).append(str((csr.get("metadata") or {}).get("name")))
    known = {n.name for n in nodes}
    findings = []
    for node, names in sorted(by_node.items()):
        subject = f"node/{node}" if node in known else f"requester/{node}"
        findings.append(
            warn(
                "csr",
                subject,
                f"{len(names)} kubelet-serving CSR(s) pending: {', '.join(sorted(names))}; "
                "until one is approved the kubelet serves its self-signed certificate",
                "check the request (`kubectl get csr NAME -o yaml`) and approve it "
                "(`kubectl certificate approve NAME`), or run `kubepulse csr-approver`, "
                "which approves only requests whose names and IPs are the node's",
            )
        )
    return findings


_SCRAPE_LINE = re.compile(r"^\[!\]scrape node/(?P<node>[^:]+): (?P<cause>[^:]+): (?P<message>.*)$")


def readyz_findings(text: str) -> tuple[list[Finding], set[str]]:
    """Per-node scrape failures from the server's /readyz?verbose, and the nodes named.

    kubepulse's server lists them as `[!]scrape node/NAME: CAUSE: MESSAGE`; its
    `metric-storage-ready` check fails until it has two scrapes ("no metrics to serve").
    """
    findings: list[Finding] = []
    nodes: set[str] = set()
    for line in text.splitlines():
        if line.startswith("[-]metric-storage-ready"):
            findings.append(
                warn(
                    "metrics",
                    "metrics.k8s.io",
                    "the server is not ready: no metrics to serve (fewer than two good "
                    'scrapes; `kubectl top` says "metrics not available yet")',
                    "wait about two --metric-resolution periods (30 s by default); if it "
                    "stays, the node checks name the failing scrapes",
                )
            )
        match = _SCRAPE_LINE.match(line)
        if match:
            nodes.add(match["node"])
            findings.append(
                fail(
                    "scrape",
                    f"node/{match['node']}",
                    f"the server's last scrape failed ({match['cause']}): {match['message']}",
                    "see this node's other findings for the cause and its fix",
                )
            )
    return findings, nodes


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def metrics_findings(
    nodes: Sequence[Node],
    node_metrics: Sequence[Mapping[str, Any]],
    pods: Sequence[Pod],
    pod_metrics: Sequence[Mapping[str, Any]],
    resolution: float,
    now: dt.datetime,
    scrape_failures: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[Finding]:
    """Nodes listed without NodeMetrics and running pods without PodMetrics.

    A node or pod needs two scrapes before it has metrics (the CPU rate takes two
    points), so one younger than two resolutions is expected to have none yet (kubectl
    top: "metrics not available yet"); older ones point at a failing scrape.
    """
    findings: list[Finding] = []
    subject = "metrics.k8s.io"
    with_metrics = {str((m.get("metadata") or {}).get("name")) for m in node_metrics}
    missing = [n.name for n in nodes if n.name not in with_metrics]
    if not nodes:
        findings.append(warn("metrics", subject, "the cluster lists no nodes", "join nodes"))
    elif not missing:
        findings.append(ok("metrics", subject, f"all {len(nodes)} node(s) have metrics"))
    else:
        unexplained = [name for name in missing if name not in scrape_failures]
        findings.append(
            warn(
                "metrics",
                subject,
                f"{len(missing)} of {len(nodes)} node(s) have no metrics: {_names(missing)}"
                + ("" if unexplained else " (their scrapes fail, see the nodes)"),
                "a node has metrics after two good scrapes (about 2 x --metric-resolution "
                "after the server starts or the node joins); if it stays, fix the failures "
                "the node checks report",
            )
        )
    with_pod_metrics = {
        (
            str((m.get("metadata") or {}).get("namespace")),
            str((m.get("metadata") or {}).get("name")),
        )
        for m in pod_metrics
    }
    young: list[str] = []
    old: list[str] = []
    for pod in pods:
        if (pod.raw.get("status") or {}).get("phase", "Running") != "Running":
            continue
        if (pod.namespace, pod.name) in with_pod_metrics:
            continue
        started = pod.start_time or pod.creation_timestamp
        age = (now.timestamp() - parse_rfc3339(started)) if started else None
        (young if age is not None and age < 2 * resolution else old).append(
            f"{pod.namespace}/{pod.name}"
        )
    if young:
        findings.append(
            ok(
                "pod-metrics",
                subject,
                f"{len(young)} pod(s) younger than two resolutions ({2 * resolution:g}s) have "
                f"no metrics yet, as expected: {_names(young)}",
            )
        )
    if old:
        findings.append(
            warn(
                "pod-metrics",
                subject,
                f"{len(old)} running pod(s) have no metrics: {_names(old)} (kubectl top: "
                '"Metrics not available for pod")',
                "if their nodes' scrapes succeed, the kubelet does not report them: check the "
                "container runtime and the kubelet's cgroup driver (metrics-server KNOWN_ISSUES)",
            )
        )
    elif pods and not young and not missing:
        findings.append(ok("pod-metrics", subject, "every running pod has metrics"))
    return findings


def node_timestamp_findings(
    node_metrics: Sequence[Mapping[str, Any]], now: dt.datetime, limit: float
) -> list[Finding]:
    """NodeMetrics stamped in the future: the kubelet's clock is ahead of ours."""
    findings = []
    for m in node_metrics:
        stamp = m.get("timestamp")
        if not stamp:
            continue
        ahead = parse_rfc3339(str(stamp)) - now.timestamp()
        if ahead > limit:
            name = (m.get("metadata") or {}).get("name")
            findings.append(
                warn(
                    "clock",
                    f"node/{name}",
                    f"its metrics are stamped {ahead:.0f}s in the future: the kubelet's clock "
                    "is ahead of this machine's",
                    "run time sync (chrony, systemd-timesyncd or ntpd) on the node",
                )
            )
    return findings
