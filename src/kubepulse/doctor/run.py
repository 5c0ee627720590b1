"""Running every check against one cluster, in the order a metrics request travels."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubepulse.doctor import cluster
from kubepulse.doctor.findings import Finding, fail, ok, warn
from kubepulse.doctor.kubelets import SKEW_WARN_SECONDS, NodeCheckConfig, check_node
from kubepulse.kube.client import ApiError, KubeClient, Unreachable
from kubepulse.kube.kubeconfig import Credentials
from kubepulse.kube.metrics import METRICS, MetricsReader
from kubepulse.kube.objects import Node, ObjectError, node_from_object, pod_from_object

CONCURRENT_NODES = 32


@dataclass(frozen=True)
class DoctorConfig:
    creds: Credentials
    nodes: NodeCheckConfig = field(default_factory=NodeCheckConfig)
    resolution: float = 15.0
    """The server's --metric-resolution: a pod younger than two has no metrics yet."""
    timeout: float = 5.0


class DoctorClient(KubeClient):
    async def text(self, path: str) -> tuple[int, str]:
        """Status and body of a GET, whatever the status: /readyz answers 500 with text."""
        with self._translate_errors():
            async with self._request("GET", path, accept="text/plain, */*") as resp:
                return resp.status, (await resp.read()).decode("utf-8", "replace")


def _api_failure(server: str, err: Exception) -> Finding:
    if isinstance(err, Unreachable):
        text = str(err)
        if "not trusted" in text:
            fix = (
                "the kubeconfig's certificate-authority(-data) is not the CA that signed the "
                "API server's certificate: get a fresh kubeconfig for this cluster"
            )
        else:
            fix = (
                f"check that the API server runs at {server} and that this machine can reach "
                "it (for `kubepulse up`: is it running? `make run`)"
            )
        return fail("api", "cluster", f"cannot reach the API server: {text}", fix)
    assert isinstance(err, ApiError)
    if err.code == 401:
        return fail(
            "api",
            "cluster",
            f"the API server at {server} rejects the credentials (401 Unauthorized)",
            "the token or client certificate in the kubeconfig is wrong or expired: get a "
            "fresh kubeconfig (for `kubepulse up`: the one in its state dir)",
        )
    if err.code == 403:
        return fail(
            "api",
            "cluster",
            f"the credentials may not list nodes (403 Forbidden): {err.message}",
            "use credentials allowed to get and list nodes, pods, CSRs and metrics.k8s.io "
            "(e.g. the cluster-admin kubeconfig)",
        )
    return fail(
        "api",
        "cluster",
        f"the API server answered {err.code} {err.reason}: {err.message}",
        "check the API server's health (`kubectl get --raw /readyz?verbose`)",
    )


async def _items(
    client: KubeClient, path: str, params: Mapping[str, str] | None = None
) -> list[Any]:
    body = await client.get(path, params)
    items = body.get("items") if isinstance(body, dict) else None
    return list(items or [])


async def metrics_registration(client: DoctorClient) -> tuple[list[Finding], str | None]:
    """The registration findings, and where the server's /readyz can be read."""
    try:
        apiservice = await client.get(cluster.APISERVICE)
    except ApiError as err:
        if err.code not in (403, 404):
            raise
        # No APIService resource (as with `kubepulse up`, which serves metrics.k8s.io
        # itself), or not allowed to read it: ask for the group directly.
        code, _ = await client.text(METRICS)
        return [cluster.served_directly(code)], "/readyz?verbose" if code == 200 else None
    service = (apiservice.get("spec") or {}).get("service") or {}
    readyz = None
    if service.get("name"):
        readyz = (
            f"/api/v1/namespaces/{service.get('namespace')}/services/"
            f"https:{service['name']}:{service.get('port', 443)}/proxy/readyz?verbose"
        )
    return cluster.apiservice_findings(apiservice), readyz


async def _check_nodes(nodes: list[Node], config: NodeCheckConfig) -> dict[str, list[Finding]]:
    limit = asyncio.Semaphore(CONCURRENT_NODES)

    async def one(node: Node) -> list[Finding]:
        async with limit:
            return await check_node(node, config)

    results = await asyncio.gather(*(one(n) for n in nodes))
    return {node.name: found for node, found in zip(nodes, results, strict=True)}


async def diagnose(config: DoctorConfig) -> list[Finding]:
    """Every finding, grouped: the cluster, metrics.k8s.io, then node by node."""
    server = config.creds.server
    client = DoctorClient(config.creds, timeout=config.timeout)
    async with client:
        try:
            version = await client.get("/version")
            raw_nodes = await _items(client, "/api/v1/nodes")
        except (Unreachable, ApiError) as err:
            return [_api_failure(server, err)]
        try:
            nodes = [node_from_object(item) for item in raw_nodes]
        except ObjectError as err:
            return [fail("api", "cluster", f"the API server sent a bad Node: {err}", "")]
        git_version = version.get("gitVersion", "?") if isinstance(version, dict) else "?"
        head = [
            ok(
                "api",
                "cluster",
                f"{server} answers (Kubernetes {git_version}), the credentials are accepted, "
                f"{len(nodes)} node(s)",
            )
        ]
        try:
            registration, readyz_path = await metrics_registration(client)
        except (Unreachable, ApiError) as err:
            registration, readyz_path = (
                [fail("metrics-api", "metrics.k8s.io", f"cannot check: {err}", "")],
                None,
            )
        per_node, extra = await asyncio.gather(
            _check_nodes(nodes, config.nodes), _cluster_side(client, nodes, config, readyz_path)
        )
    by_subject: dict[str, list[Finding]] = {}
    for finding in [*head, *registration, *extra]:
        by_subject.setdefault(finding.subject, []).append(finding)
    ordered = [*by_subject.pop("cluster", []), *by_subject.pop("metrics.k8s.io", [])]
    for node in nodes:
        subject = f"node/{node.name}"
        ordered += per_node[node.name] + by_subject.pop(subject, [])
    for rest in by_subject.values():
        ordered += rest
    return ordered


async def _cluster_side(
    client: DoctorClient, nodes: list[Node], config: DoctorConfig, readyz_path: str | None
) -> list[Finding]:
    findings: list[Finding] = []
    try:
        csrs = await _items(
            client,
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            {"fieldSelector": f"spec.signerName={cluster.KUBELET_SERVING}"},
        )
        findings += cluster.csr_findings(csrs, nodes)
    except ApiError as err:
        if err.code != 404:  # a cluster without the certificates API has no CSRs to wait on
            findings.append(
                warn(
                    "csr",
                    "cluster",
                    f"cannot list CSRs ({err.code} {err.reason}), pending kubelet-serving "
                    "requests are not checked",
                    "run doctor with credentials that may list certificatesigningrequests",
                )
            )
    except Unreachable:
        pass
    failing: set[str] = set()
    if readyz_path is not None:
        try:
            code, text = await client.text(readyz_path)
            if code in (200, 500):
                found, failing = cluster.readyz_findings(text)
                findings += found
        except Unreachable:
            pass
    now = dt.datetime.now(dt.UTC)
    try:
        reader = MetricsReader(client)
        node_metrics = await reader.nodes()
        pods = [pod_from_object(p) for p in await _items(client, "/api/v1/pods")]
        pod_metrics = await reader.pods(None)
    except ApiError as err:
        if err.code == 404 or err.code == 503:
            return findings  # the registration finding says why
        findings.append(
            fail(
                "metrics",
                "metrics.k8s.io",
                f"reading metrics failed: {err.code} {err.reason}: {err.message}",
                "use credentials allowed to list pods and metrics.k8s.io nodes and pods",
            )
        )
        return findings
    except (Unreachable, ObjectError) as err:
        findings.append(fail("metrics", "metrics.k8s.io", f"reading metrics failed: {err}", ""))
        return findings
    findings += cluster.metrics_findings(
        nodes, node_metrics, pods, pod_metrics, config.resolution, now, failing
    )
    findings += cluster.node_timestamp_findings(node_metrics, now, SKEW_WARN_SECONDS)
    return findings
